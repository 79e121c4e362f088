"""N-gram machinery and the character n-gram family; feature blocks and their pooling.

Everything here is exact (no hashing) and streamed, so memory grows with the kept features, not the text.
The marker phrases count every n-gram of a slice with :func:`ngram_occurrences`; n-grams shared across
slices and sources get their ids from :class:`forensics.stylometry.words.GramTable`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse

from forensics.stylometry.tokens import normalise


def _first_positions(ids: np.ndarray, starts: np.ndarray, n_ids: int) -> np.ndarray:
    first = np.full(n_ids, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first, ids, starts)
    return first


def ngram_occurrences(tok: np.ndarray, seg: np.ndarray,
                      max_order: int) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
    """Every n-gram occurrence of orders 1..max_order in a flat token stream, exactly (no hashing).

    ``tok`` holds token ids 0..V-1, ``seg`` a non-decreasing segment id per token; an n-gram never spans
    two segments. Yields ``(order, starts, ids, first)``: the start position of each occurrence, its
    n-gram id (order 1: the token id; higher orders: dense ids in order of first appearance) and, per
    id, the start of its first occurrence (to decode the text; int64 max for a token id never seen).
    Order k is built from order k-1 by pairing its id with the next token (key = id * V + token), so
    keys stay below ``T * V`` and never overflow int64, whatever the vocabulary.
    """
    tok = np.asarray(tok, dtype=np.int64)
    seg = np.asarray(seg, dtype=np.int64)
    n_tok = len(tok)
    base = int(tok.max()) + 1 if n_tok else 1
    prev = tok
    valid = np.ones(n_tok, dtype=bool)
    for order in range(1, max_order + 1):
        m = n_tok - order + 1
        if m <= 0:
            empty = np.zeros(0, dtype=np.int64)
            yield order, empty, empty, empty
            continue
        if order == 1:
            starts = np.arange(n_tok, dtype=np.int64)
            yield order, starts, tok, _first_positions(tok, starts, base)
            del starts  # (the caller may drop its reference before the next order: nothing held here)
            continue
        valid = valid[:m] & (seg[:m] == seg[order - 1:])
        starts = np.flatnonzero(valid)
        key = prev[starts]
        key *= base
        key += tok[starts + order - 1]
        codes, uniques = pd.factorize(key)
        n_ids = len(uniques)
        del key, uniques
        codes = codes.astype(np.int64, copy=False)
        dense = np.full(m, -1, dtype=np.int64)
        dense[starts] = codes
        prev = dense
        del dense
        yield order, starts, codes, _first_positions(codes, starts, n_ids)
        del starts, codes


def _count_matrix(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> sparse.csr_matrix:
    """Occurrence counts; ``rows`` must be non-decreasing (tokens are laid out document by document),
    which lets the CSR be built directly and only the columns within each row be sorted and summed."""
    indptr = np.zeros(shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=shape[0]), out=indptr[1:])
    data = np.ones(len(cols), dtype=np.float64)
    mat = sparse.csr_matrix((data, cols.astype(np.int64), indptr), shape=shape)
    mat.sum_duplicates()
    return mat



@dataclass(frozen=True)
class FeatureBlock:
    """One family's per-response features, every source on the same columns.

    ``counts[s]``: CSR (n x F) numerators; ``totals[s]``: the denominators, shape (n,) when every feature
    shares one (all tokens of the response, for relative frequencies) or (n, F) when each has its own
    (formatting: responses, words or sentences). Pooled profile = ``(w @ counts) / (w @ totals)``.
    """

    names: list[str]
    counts: dict[str, sparse.csr_matrix]
    totals: dict[str, np.ndarray]
    scale: np.ndarray | float = 1.0  # multiplies the pooled ratio (per 1,000 words etc.); display only


@dataclass(frozen=True)
class PooledBlock:
    """One family's profiles pooled for each row of a weight matrix (row 0 the full corpus, then the
    bootstrap resamples: :func:`forensics.scoring.all_weights`).

    ``num[s]``: (m, F) summed numerators; ``den[s]``: (m,) or (m, F) summed denominators. This is all the
    similarities and tables need of a family, and it does not grow with the case: per-response counts are
    summed into it a slice at a time (:func:`pool_slice`) and never held together, which is what keeps a
    million-exchange case within memory. Counts and weights are integers, so the sums are exact in
    float64 and do not depend on how the responses were sliced.
    """

    names: list[str]
    num: dict[str, np.ndarray]
    den: dict[str, np.ndarray]
    rows: int
    scale: np.ndarray | float = 1.0  # multiplies the pooled ratio (per 1,000 words etc.); display only

    def profiles(self, sources: Sequence[str]) -> np.ndarray:
        """``(m, S, F)`` pooled ratios: ``num / den`` (0 where nothing was pooled), times ``scale``.

        Pooling (sum of counts over the sum of denominators) rather than averaging per-response ratios: a
        source's profile is what its whole sample of text says, as with stylo's concatenated texts (Eder
        2015: profiles need thousands of words to be stable).
        """
        out = np.empty((self.rows, len(sources), len(self.names)), dtype=np.float64)
        for j, s in enumerate(sources):
            den = self.den[s]
            if den.ndim == 1:
                den = den[:, None]
            out[:, j, :] = self.num[s] / np.where(den > 0, den, 1.0)
        return out * self.scale


def pool(block: FeatureBlock, sources: Sequence[str], weights: np.ndarray) -> PooledBlock:
    """A per-response block pooled for each weight row: ``(w @ counts)`` and ``(w @ totals)``."""
    weights = np.asarray(weights, dtype=np.float64)
    return PooledBlock(names=block.names,
                       num={s: np.asarray(block.counts[s].T @ weights.T).T for s in sources},
                       den={s: weights @ block.totals[s] for s in sources},
                       rows=weights.shape[0], scale=block.scale)


def pooled_profiles(block: FeatureBlock, sources: Sequence[str], weights: np.ndarray) -> np.ndarray:
    """Pooled profiles for each weight vector: ``(m, n)`` weights -> ``(m, S, F)`` ratios."""
    return pool(block, sources, weights).profiles(sources)


def pool_slice(weights: np.ndarray, first: int, rows: np.ndarray, cols: np.ndarray, n_rows: int,
               n_cols: int) -> np.ndarray:
    """``(m, n_cols)``: one slice's occurrence counts (responses ``first .. first + n_rows - 1``; ``rows``
    slice-local and non-decreasing, ``cols`` the feature of each occurrence) summed under each weight row."""
    counts = _count_matrix(rows, cols, (n_rows, n_cols))
    return np.asarray(counts.T @ weights[:, first:first + n_rows].T).T


def _top_columns(scores: np.ndarray, k: int, name_of: Callable[[np.ndarray], list[str]]) -> np.ndarray:
    """The k columns of highest score (> 0), ties broken alphabetically by feature text.

    The score of a feature is its mean relative frequency across sources (each source weighs the same, so
    a verbose source does not choose the features alone); only the columns at or above the k-th score are
    decoded.
    """
    present = np.flatnonzero(scores > 0)
    if len(present) <= k:
        cand = present
    else:
        kth = np.partition(scores[present], len(present) - k)[len(present) - k]
        cand = present[scores[present] >= kth]
    names = name_of(cand)
    order = sorted(range(len(cand)), key=lambda i: (-scores[cand[i]], names[i]))[:k]
    return cand[np.array(order, dtype=np.int64)] if order else np.zeros(0, dtype=np.int64)


#: Responses per slice in the streaming passes of :func:`char_block` (memory: a few int64 arrays of the
#: slice's characters, not of the whole case).
_CHAR_SLICE = 1024


def _char_slices(texts: list[str], lowercase: bool) -> Iterator[tuple[int, int, np.ndarray]]:
    """``(first row, end row, code points)`` per slice of responses: each response NFKC-normalised, whitespace
    runs collapsed, padded with a space, responses joined by ``\\x00`` (the separator)."""
    for start in range(0, len(texts), _CHAR_SLICE):
        parts = []
        for t in texts[start:start + _CHAR_SLICE]:
            t = normalise(t).replace("\x00", " ")
            t = t.lower() if lowercase else t
            parts.append(" " + " ".join(t.split()) + " ")
        yield start, start + len(parts), np.frombuffer(("\x00".join(parts)).encode("utf-32-le"), dtype=np.uint32)


def _char_codes(arr: np.ndarray, lut: np.ndarray, n: int, base: int, space: int,
                word_boundary: bool) -> tuple[np.ndarray, np.ndarray]:
    """Codes of the valid n-grams of one slice and the slice-local response index of each."""
    sym = lut[arr]
    m = len(sym) - n + 1
    code = np.zeros(max(m, 0), dtype=np.int64)
    for j in range(n):
        code = code * base + sym[j:j + m]
    is_sep = np.concatenate([[0], np.cumsum(sym == 0)])
    ok = (is_sep[n:n + m] - is_sep[:m]) == 0
    if word_boundary and n > 2:
        is_sp = np.concatenate([[0], np.cumsum(sym == space)])
        ok &= (is_sp[n - 1:n - 1 + m] - is_sp[1:1 + m]) == 0
    pos = np.flatnonzero(ok)
    return code[pos], is_sep[pos]  # separators before the position = response index


def char_block(texts_by_source: Mapping[str, list[str]], sources: Sequence[str], n: int, top: int,
               lowercase: bool, word_boundary: bool, weights: np.ndarray) -> PooledBlock:
    """Character n-grams, vectorised over code points (a pure-Python loop would take a minute a case).

    Text is NFKC-normalised, whitespace runs become one space, and each response is padded with a space
    so that word-initial and word-final n-grams exist. With ``word_boundary`` an n-gram may hold a space
    only as its first or last character (as scikit-learn's ``char_wb``).

    Three streaming passes over slices of responses, so that memory grows with the kept features, not
    with the text: character frequencies (the alphabet), n-gram totals per source (the choice of the
    ``top``), then counts of the kept n-grams only, summed under each row of ``weights`` slice by slice
    (:class:`PooledBlock`).
    """
    n_rows = len(next(iter(texts_by_source.values())))
    freq = np.zeros(0x110000, dtype=np.int64)
    for s in sources:
        for _, _, arr in _char_slices(texts_by_source[s], lowercase):
            freq += np.bincount(arr, minlength=0x110000)
    # Alphabet: every character seen, by frequency; beyond what keeps codes below 2**62, rare characters
    # share one symbol (only matters for texts in scripts with thousands of characters and n >= 4).
    max_symbols = int(math.floor(2 ** (62 / n))) - 2
    seen = np.flatnonzero(freq)
    seen = seen[seen != 0]
    seen = seen[np.lexsort((seen, -freq[seen]))]
    lut = np.full(0x110000, 1, dtype=np.int64)  # 0 = separator, 1 = rare
    kept = seen[:max_symbols]
    lut[kept] = np.arange(2, len(kept) + 2)
    lut[0] = 0
    alphabet = np.full(len(kept) + 2, "\ufffd", dtype=object)
    alphabet[2:] = [chr(c) for c in kept]
    base = len(kept) + 2
    space = int(lut[ord(" ")]) if freq[ord(" ")] else -1
    del freq

    # Pass 2: per source, the total of each n-gram code and the n-grams per response.
    code_totals: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    totals: dict[str, np.ndarray] = {}
    for s in sources:
        part_codes, part_counts = [], []
        per_row = np.zeros(n_rows, dtype=np.int64)
        for start, stop, arr in _char_slices(texts_by_source[s], lowercase):
            code, rows = _char_codes(arr, lut, n, base, space, word_boundary)
            uniq, cnt = np.unique(code, return_counts=True)
            part_codes.append(uniq)
            part_counts.append(cnt)
            per_row[start:stop] = np.bincount(rows, minlength=stop - start)
        codes = np.concatenate(part_codes) if part_codes else np.zeros(0, dtype=np.int64)
        uniq, inv = np.unique(codes, return_inverse=True)
        part_total = np.concatenate(part_counts).astype(np.float64) if part_counts else np.zeros(0)
        cnt = np.bincount(inv.ravel(), weights=part_total, minlength=len(uniq)).astype(np.int64)
        code_totals[s] = (uniq, cnt)
        totals[s] = per_row.astype(np.float64)
    all_codes = np.unique(np.concatenate([u for u, _ in code_totals.values()]))
    # Scores as :func:`_top_columns` expects them, computed as from the full count matrices (integer column
    # sums over integer totals, summed over sources in order).
    scores = None
    for s in sources:
        uniq, cnt = code_totals[s]
        col = np.zeros(len(all_codes), dtype=np.float64)
        col[np.searchsorted(all_codes, uniq)] = cnt
        rel = col / max(float(np.sum(totals[s])), 1.0)
        scores = rel if scores is None else scores + rel
    del code_totals

    def name_of(cols: np.ndarray) -> list[str]:
        out = []
        for c in all_codes[cols]:
            chars = []
            for _ in range(n):
                c, r = divmod(int(c), base)
                chars.append(alphabet[r])
            out.append("".join(reversed(chars)))
        return out

    assert scores is not None
    cols = _top_columns(scores / len(sources), top, name_of)
    names = name_of(cols)
    # Pass 3: counts of the kept n-grams only, each slice's summed under the weights at once; columns in
    # the chosen order.
    kept_codes = all_codes[np.sort(cols)]
    column = np.empty(len(cols), dtype=np.int64)
    column[np.searchsorted(kept_codes, all_codes[cols])] = np.arange(len(cols))
    num: dict[str, np.ndarray] = {}
    for s in sources:
        num[s] = np.zeros((weights.shape[0], len(cols)))
        for start, stop, arr in _char_slices(texts_by_source[s], lowercase):
            code, rows = _char_codes(arr, lut, n, base, space, word_boundary)
            at = np.searchsorted(kept_codes, code)
            hit = at < len(kept_codes)
            hit[hit] = kept_codes[at[hit]] == code[hit]
            num[s] += pool_slice(weights, start, rows[hit], column[at[hit]], stop - start, len(cols))
    return PooledBlock(names=names, num=num, den={s: weights @ totals[s] for s in sources},
                       rows=weights.shape[0])


#: Placeholders of text distortion. A literal ``*`` or ``#`` in the text is escaped so that it cannot be
