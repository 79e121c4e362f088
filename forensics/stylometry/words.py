"""The word families of stylometry, streamed: the most frequent words and text-distorted n-grams.

Why streamed: at a million exchanges the token ids of every answer held together, and the n-gram arrays
built from them, take several times the memory of the text itself. Here each source's answers are
tokenised once, a slice at a time, into a temporary folder (:class:`TokenSpill`: int32 ids under one
shared vocabulary); every later pass reads one slice back, and n-grams get case-wide identities from
sorted key tables (:class:`GramTable`), so slices and sources agree without being held together. Counts
are summed under the prompt weights as each slice is read (:class:`~forensics.stylometry.ngrams.PooledBlock`).

The features chosen and every pooled value are those of counting the whole case at once: a feature's
score is computed from exact integer counts, and the choice (:func:`~forensics.stylometry.ngrams._top_columns`)
depends on scores and feature texts only, never on the order in which n-grams were met.
"""

from __future__ import annotations

import array
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from forensics.stylometry.distortion import distort
from forensics.stylometry.ngrams import PooledBlock, _top_columns, pool_slice
from forensics.stylometry.params import StyloParams
from forensics.stylometry.tokens import is_word, tokenize

#: Answers tokenised, written and read back at a time (memory: a few arrays of one slice's tokens).
SLICE = 8192

_EMPTY = np.zeros(0, dtype=np.int64)


def _punctuation_tokens(text: str) -> list[str]:
    return tokenize(text, punctuation=True)


class TokenSpill:
    """Token ids of lists of texts (each source's answers, the prompts), by slice, in ``folder``.

    The word families read the tokens once per pass (the words, each n-gram order, the counts) and the
    marker phrases once per phrase order and once more; tokenising is the slow part and a million answers'
    ids held at once are what would not fit, so each slice is tokenised once (by ``tokenizer``; default the
    punctuation-keeping :func:`tokenize`), written as int32 ``.npy`` and read back one at a time. Every
    list shares one vocabulary. File names hold the list's position, never its key (source names are case
    input).
    """

    def __init__(self, folder: Path, tokenizer: Callable[[str], list[str]] = _punctuation_tokens) -> None:
        self.folder = folder
        self.tokenizer = tokenizer
        self.vocab: dict[str, int] = {}
        self._slices: dict[Hashable, list[tuple[int, int, Path]]] = {}

    def add(self, key: Hashable, texts: Sequence[str]) -> None:
        """Tokenise ``texts`` (in prompt order) slice by slice, to be read back under ``key``."""
        setdefault = self.vocab.setdefault
        bounds = []
        for lo in range(0, len(texts), SLICE):
            hi = min(lo + SLICE, len(texts))
            ids, lengths = array.array("q"), array.array("q")
            for text in texts[lo:hi]:
                toks = self.tokenizer(text)
                ids.extend([setdefault(t, len(self.vocab)) for t in toks])
                lengths.append(len(toks))
            if len(self.vocab) >= 2 ** 31:
                raise ValueError("more than 2**31 distinct tokens: beyond what int32 ids hold")
            path = self.folder / f"{len(self._slices):04d}-{lo:010d}.npy"
            lengths_np = np.frombuffer(lengths, dtype=np.int64) if len(lengths) else _EMPTY
            ids_np = np.frombuffer(ids, dtype=np.int64) if len(ids) else _EMPTY
            np.save(path, np.concatenate([lengths_np, ids_np]).astype(np.int32))
            bounds.append((lo, hi, path))
        self._slices[key] = bounds

    def read(self, key: Hashable) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
        """``(first answer, end answer, token ids, slice-local answer of each token)`` per slice."""
        for lo, hi, path in self._slices[key]:
            packed = np.load(path).astype(np.int64)
            lengths, tok = packed[:hi - lo], packed[hi - lo:]
            yield lo, hi, tok, np.repeat(np.arange(hi - lo, dtype=np.int64), lengths)

    def tokens(self) -> list[str]:
        """The vocabulary, id order (first appearance)."""
        return list(self.vocab)


class GramTable:
    """Case-wide identities of n-grams over a symbol stream: per order, the sorted keys of the n-grams kept.

    Order 1's key is the symbol; order k's is ``id(first k-1 symbols) * B + id(last symbol)`` with B the
    number of order-1 ids, so a key stays below (occurrences x symbols) and never overflows int64. An
    n-gram's id is its key's position in its order's table: the same in every slice and source. Tables are
    filled an order at a time (:meth:`add`), each from every slice's keys of that order. A table may keep
    every n-gram seen (the stylometric families) or only some (the marker phrases keep those frequent in a
    teacher): an n-gram whose first k-1 symbols or last symbol is not in the tables is not one of order k.
    """

    def __init__(self) -> None:
        self.keys: list[np.ndarray] = []

    @property
    def known(self) -> int:
        """Orders whose table is complete."""
        return len(self.keys)

    def occurrences(self, sym: np.ndarray, seg: np.ndarray,
                    max_order: int) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray | None]]:
        """``(order, starts, keys, ids)`` for each order up to ``max_order`` and the first order without a
        table (the last yielded, with ``ids`` None): the start of each occurrence (never spanning two
        segments) whose first k-1 symbols and last symbol are in the tables, its key and its id (-1 where
        the table lacks it)."""
        starts = np.arange(len(sym), dtype=np.int64)
        keys = sym.astype(np.int64)
        first = prev = _EMPTY
        for order in range(1, max_order + 1):
            if order > 1:
                m = max(len(sym) - order + 1, 0)
                last = first[order - 1:order - 1 + m]
                ok = (prev[:m] >= 0) & (last >= 0) & (seg[:m] == seg[order - 1:order - 1 + m])
                starts = np.flatnonzero(ok)
                keys = prev[starts] * len(self.keys[0]) + last[starts]
            if order > self.known:
                yield order, starts, keys, None
                return
            ids = lookup(self.keys[order - 1], keys)
            yield order, starts, keys, ids
            if order == 1:
                first = ids
            prev = np.full(max(len(sym) - order + 1, 0), -1, dtype=np.int64)
            prev[starts] = ids

    def add(self, keys: np.ndarray) -> None:
        """The next order's table, from every key of that order (any order, repeats allowed)."""
        self.keys.append(sorted_unique(keys))

    def symbols(self, order: int, ids: np.ndarray) -> np.ndarray:
        """``(len(ids), order)``: the symbols of each n-gram."""
        return self.key_symbols(order, self.keys[order - 1][ids])

    def key_symbols(self, order: int, keys: np.ndarray) -> np.ndarray:
        """``(len(keys), order)``: the symbols of the n-grams of these keys."""
        if not len(keys):
            return np.zeros((0, order), dtype=np.int64)
        if order == 1:
            return keys[:, None]
        prefix, last = np.divmod(keys, len(self.keys[0]))
        return np.hstack([self.symbols(order - 1, prefix), self.keys[0][last][:, None]])


def lookup(table: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Position of each key in the sorted ``table``, -1 where absent."""
    if not len(table):
        return np.full(len(keys), -1, dtype=np.int64)
    at = np.minimum(np.searchsorted(table, keys), len(table) - 1)
    return np.where(table[at] == keys, at, -1)


def sorted_unique(keys: np.ndarray) -> np.ndarray:
    """``np.unique`` of an int64 array by sorting (numpy's hash-based unique is several times slower on the
    tens of millions of keys a large case has)."""
    keys = np.sort(keys)
    if len(keys) > 1:
        first = np.empty(len(keys), dtype=bool)
        first[0] = True
        np.not_equal(keys[1:], keys[:-1], out=first[1:])
        keys = keys[first]
    return keys


def merge_counts(parts: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique keys and their summed counts, from ``(keys, counts)`` parts (each part's keys
    distinct; counts of shape (k,) or (k, c): several counts per key)."""
    if not parts:
        return _EMPTY, _EMPTY
    uniq, inv = np.unique(np.concatenate([u for u, _ in parts]), return_inverse=True)
    counts = np.concatenate([c for _, c in parts]).astype(np.float64)
    if counts.ndim == 1:
        return uniq, np.bincount(inv.ravel(), weights=counts, minlength=len(uniq)).astype(np.int64)
    return uniq, np.stack([np.bincount(inv.ravel(), weights=counts[:, j], minlength=len(uniq))
                           for j in range(counts.shape[1])], axis=1).astype(np.int64)


def _add_scores(scores: np.ndarray | None, sums: np.ndarray, per_doc: np.ndarray) -> np.ndarray:
    """A source's relative frequencies added to the running scores (sources in case order)."""
    rel = sums.astype(np.float64) / max(float(np.sum(per_doc.astype(np.float64))), 1.0)
    return rel if scores is None else scores + rel


def word_families(spill: TokenSpill, sources: Sequence[str], n: int, weights: np.ndarray,
                  p: StyloParams) -> tuple[dict[str, np.ndarray], PooledBlock, PooledBlock]:
    """Words per answer, the MFW family and the distorted n-gram family of the spilled answers."""
    vocab = spill.tokens()
    word_of = np.array([is_word(v) for v in vocab], dtype=bool)
    lengths, scores = _word_counts(spill, sources, n, word_of)

    def words_named(cols: np.ndarray) -> list[str]:
        return [vocab[c] for c in cols]

    mfw_cols = _top_columns(scores / len(sources), p.mfw, words_named)
    keep_cols = mfw_cols if p.distortion_keep <= p.mfw else _top_columns(
        scores / len(sources), p.distortion_keep, words_named)
    grams = _distorted_grams(spill, sources, n, vocab, frozenset(words_named(keep_cols[: p.distortion_keep])), p)
    d_cols = _top_columns(grams.scores(sources) / len(sources), p.distortion_top, grams.column_names)
    mfw_num, d_num = _pool_words(spill, sources, weights, word_of, mfw_cols, grams, d_cols)
    mfw = PooledBlock(names=words_named(mfw_cols), num=mfw_num,
                      den={s: weights @ lengths[s].astype(np.float64) for s in sources}, rows=weights.shape[0])
    distorted = PooledBlock(names=grams.column_names(d_cols), num=d_num,
                            den={s: weights @ grams.totals[s].astype(np.float64) for s in sources},
                            rows=weights.shape[0])
    return lengths, mfw, distorted


def _pool_words(spill: TokenSpill, sources: Sequence[str], weights: np.ndarray, word_of: np.ndarray,
                mfw_cols: np.ndarray, grams: DistortedGrams,
                d_cols: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The chosen words' and distorted n-grams' counts, each slice's summed under the weights at once."""
    col_of_word = np.full(len(word_of), -1, dtype=np.int64)
    col_of_word[mfw_cols] = np.arange(len(mfw_cols))
    col_of_gram = np.full(grams.n_columns, -1, dtype=np.int64)
    col_of_gram[d_cols] = np.arange(len(d_cols))
    mfw_num, d_num = {}, {}
    for s in sources:
        mfw_num[s] = np.zeros((weights.shape[0], len(mfw_cols)))
        d_num[s] = np.zeros((weights.shape[0], len(d_cols)))
        for lo, hi, tok, doc in spill.read(s):
            w = word_of[tok]
            col, row = col_of_word[tok[w]], doc[w]
            hit = col >= 0
            mfw_num[s] += pool_slice(weights, lo, row[hit], col[hit], hi - lo, len(mfw_cols))
            for starts, gram in grams.columns(tok, doc):
                col = col_of_gram[gram]
                hit = col >= 0
                d_num[s] += pool_slice(weights, lo, doc[starts[hit]], col[hit], hi - lo, len(d_cols))
    return mfw_num, d_num


def _word_counts(spill: TokenSpill, sources: Sequence[str], n: int,
                 word_of: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Words per answer per source, and each word's score (mean over sources of its relative frequency)."""
    lengths: dict[str, np.ndarray] = {}
    scores = None
    for s in sources:
        sums = np.zeros(len(word_of), dtype=np.int64)
        per_doc = np.zeros(n, dtype=np.int64)
        for lo, hi, tok, doc in spill.read(s):
            w = word_of[tok]
            sums += np.bincount(tok[w], minlength=len(word_of))
            per_doc[lo:hi] = np.bincount(doc[w], minlength=hi - lo)
        lengths[s] = per_doc
        scores = _add_scores(scores, sums, per_doc)
    assert scores is not None
    return lengths, scores


@dataclass(frozen=True)
class DistortedGrams:
    """The distorted answers' n-grams: which symbol each vocabulary entry becomes (``codes``, texts
    ``names``), their case-wide ids (``table``), and for each wanted order the occurrences per source by id
    (``sums``) and the wanted n-grams per answer (``totals``). Columns: the wanted orders' ids side by side."""

    codes: np.ndarray
    names: list[str]
    orders: tuple[int, ...]
    table: GramTable
    sums: dict[int, dict[str, np.ndarray]]
    totals: dict[str, np.ndarray]

    @property
    def offsets(self) -> np.ndarray:
        return np.cumsum([0] + [len(self.table.keys[k - 1]) for k in self.orders])

    @property
    def n_columns(self) -> int:
        return int(self.offsets[-1])

    def scores(self, sources: Sequence[str]) -> np.ndarray:
        """Summed over sources in case order: each column's relative frequency."""
        scores = None
        for s in sources:
            scores = _add_scores(scores, np.concatenate([self.sums[k][s] for k in self.orders]), self.totals[s])
        assert scores is not None
        return scores

    def column_names(self, cols: np.ndarray) -> list[str]:
        offsets, out = self.offsets, []
        for c in cols:
            i = int(np.searchsorted(offsets, c, side="right")) - 1
            syms = self.table.symbols(self.orders[i], np.array([c - offsets[i]]))[0]
            out.append(" ".join(self.names[x] for x in syms))
        return out

    def columns(self, tok: np.ndarray, doc: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Per wanted order: the start of each occurrence in a slice and its column."""
        offsets = self.offsets
        for order, starts, _, ids in self.table.occurrences(self.codes[tok], doc, max(self.orders)):
            if order in self.orders:
                yield starts, offsets[self.orders.index(order)] + ids


def _distorted_grams(spill: TokenSpill, sources: Sequence[str], n: int, vocab: Sequence[str],
                     keep: frozenset[str], p: StyloParams) -> DistortedGrams:
    """Text distortion at the vocabulary level (one entry at a time, identical to :func:`distort`), then
    the n-gram tables of the distorted answers, an order per pass, counting the wanted orders."""
    d_codes, d_vocab = pd.factorize(np.array([distort([v], keep, p.distortion_mode)[0] for v in vocab],
                                             dtype=object))
    codes = d_codes.astype(np.int64)
    orders = tuple(sorted(set(p.distortion_orders)))
    table = GramTable()
    sums: dict[int, dict[str, np.ndarray]] = {}
    totals = {s: np.zeros(n, dtype=np.int64) for s in sources}
    for order in range(1, max(orders) + 1):
        parts: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for s in sources:
            chunks = []
            for lo, hi, tok, doc in spill.read(s):
                *_, (_, starts, key, _) = table.occurrences(codes[tok], doc, order)
                chunks.append(np.unique(key, return_counts=True))
                if order in orders:
                    totals[s][lo:hi] += np.bincount(doc[starts], minlength=hi - lo)
            parts[s] = merge_counts(chunks)
        table.add(np.concatenate([u for u, _ in parts.values()]) if parts else _EMPTY)
        if order in orders:
            sums[order] = {}
            for s, (uniq, cnt) in parts.items():
                col = np.zeros(len(table.keys[order - 1]), dtype=np.int64)
                col[np.searchsorted(table.keys[order - 1], uniq)] = cnt
                sums[order][s] = col
    return DistortedGrams(codes=codes, names=[str(v) for v in d_vocab], orders=orders, table=table, sums=sums,
                          totals=totals)
