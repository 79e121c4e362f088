"""Line 2 of evidence: stylometry (how the sources write, not what they say).

Five families of style features, each turned into a source-by-source similarity matrix, with bootstrap
replicates over prompts, for the evidence engine (``evidence.py``), which does the panel-relative scoring:

=====================  ==================================================================================
family                 what it measures
=====================  ==================================================================================
``mfw_cosine_delta``   the ``mfw`` most frequent words of the case, relative frequencies, z-scored across
                       every source of the case, cosine distance ("Cosine Delta", Smith & Aldridge 2011;
                       best of the Delta family in Evert et al. 2017; R ``stylo``'s "wurzburg")
``mfw_burrows_delta``  the same z-scores, mean absolute difference (Burrows 2002; ``stylo``'s "delta");
                       reported as a check on the cosine variant, not as an independent line
``char_ngrams``        character n-grams (default 3, not spanning a word boundary), top-k, Cosine Delta
``distorted_ngrams``   text distortion (Stamatatos 2017): the case's most frequent words are kept, every
                       other word masked, word 2-3-grams of the masked text: a tagger-free stand-in for
                       part-of-speech templates, the best closed-set teacher cue in Wadhwa et al. 2025
``formatting``         markdown and discourse habits (headers, bullets, bold, openings, closings,
                       refusals, ...; :data:`FORMATTING_FEATURES`), z-scored, Cosine Delta
=====================  ==================================================================================

Every similarity is **the negative distance** (``sim = -delta``), so higher means more alike and the
diagonal is 0, the maximum. Distances of different families are on different scales; the evidence
engine only ever compares a pair against the panel within one family.

Design (so that the bootstrap is cheap): each family is (1) a per-response count matrix per source
(``scipy.sparse`` CSR, rows aligned with ``corpus.prompt_keys``, identical columns across sources),
computed once; (2) a pooled profile per source for any prompt-weight vector -- a bootstrap resample is an
integer weight vector, so pooled counts are ``weights @ counts``; (3) a similarity matrix from the pooled
profiles, z-scored across all sources *of each replicate* (the population the z-scores are taken over is
part of what is resampled). Features (which words, which n-grams) are chosen once, on the full corpus;
the bootstrap expresses sampling uncertainty of the profiles, not of the feature choice.

Z-scores use the sample standard deviation (``ddof=1``), as ``stylo`` does (R's ``scale()``). A feature
that is constant across the sources gets z = 0 (it carries no information; ``scale()`` would give NaN).

Response length is a confound, not evidence (terse models look alike whatever their lineage): it is
exposed per response (:func:`response_lengths`) and per source (:func:`mean_log_length`,
:func:`length_profiles`) so that the engine can control for it.
"""

from __future__ import annotations

import array
import itertools
import math
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, TypeVar

import numpy as np
import pandas as pd
from scipy import sparse

from forensics.exchanges import CorpusLike

__all__ = [
    "FAMILIES",
    "FORMATTING_FEATURES",
    "CorpusLike",
    "FeatureBlock",
    "FormatFeature",
    "StyloFeatures",
    "StyloParams",
    "bootstrap_weights",
    "burrows_delta",
    "cosine_delta",
    "distort",
    "encode_texts",
    "encode_tokens",
    "formatting_matrix",
    "is_word",
    "jsonable",
    "length_profiles",
    "mean_log_length",
    "ngram_occurrences",
    "normalise",
    "params_from",
    "pooled_profiles",
    "response_lengths",
    "stylometric_features",
    "stylometric_similarities",
    "stylometric_tables",
    "summarise_stylometry",
    "tokenize",
    "zscore",
]

#: The families :func:`stylometric_similarities` returns, in this order.
FAMILIES: tuple[str, ...] = (
    "mfw_cosine_delta",
    "mfw_burrows_delta",
    "char_ngrams",
    "distorted_ngrams",
    "formatting",
)


# ----------------------------------------------------------------------------------------- parameters

P = TypeVar("P")


def params_from(cls: type[P], params: Any) -> P:
    """Build a parameter dataclass from ``None``, an instance, a mapping or any object with attributes.

    Only the names the dataclass knows are read, so the case's ``Parameters`` (which has ``mfw``, ``seed``
    and much else) can be passed as it is.
    """
    if params is None:
        return cls()
    if isinstance(params, cls):
        return params
    names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    if isinstance(params, Mapping):
        values = {k: params[k] for k in names if k in params}
    else:
        values = {k: getattr(params, k) for k in names if hasattr(params, k)}
    for key, value in list(values.items()):
        if isinstance(value, list):
            values[key] = tuple(value)
    return cls(**values)


@dataclass(frozen=True)
class StyloParams:
    """Stylometry parameters; every default is a literature default, none was tuned on the benchmark.

    - ``mfw``: most frequent words kept (stylo's classic 100-1000 range; Evert et al. 2017 found Cosine
      Delta stable from a few hundred MFW up).
    - ``z_ddof``: standard deviation of z-scores; 1 = sample sd, as stylo (R ``scale()``).
    - ``char_n``, ``char_top``: character n-gram order and how many of the most frequent are kept;
      ``char_lowercase`` False keeps capitalisation, itself a habit ("Sure!" vs "sure");
      ``char_word_boundary`` True drops n-grams spanning two words (a space may only be first or last).
    - ``distortion_keep``: the k most frequent words left visible by text distortion (Stamatatos 2017
      used 100-300); ``distortion_orders`` the word n-gram orders taken of the distorted text;
      ``distortion_top`` how many n-grams are kept; ``distortion_mode`` "single" (every other word
      becomes one ``*``, DV-SA) or "multi" (each of its characters becomes ``*``, DV-MA).
    - ``report_top``: rows of the per-source tables for the report.
    """

    mfw: int = 300
    z_ddof: int = 1
    char_n: int = 3
    char_top: int = 1000
    char_lowercase: bool = False
    char_word_boundary: bool = True
    distortion_keep: int = 100
    distortion_orders: tuple[int, ...] = (2, 3)
    distortion_top: int = 1000
    distortion_mode: str = "single"
    report_top: int = 50

    def __post_init__(self) -> None:
        if self.mfw < 2 or self.char_top < 2 or self.distortion_top < 2:
            raise ValueError("mfw, char_top and distortion_top must be at least 2")
        if self.z_ddof not in (0, 1):
            raise ValueError("z_ddof must be 0 or 1")
        if not 1 <= self.char_n <= 6:
            raise ValueError("char_n must be between 1 and 6")
        if self.distortion_mode not in ("single", "multi"):
            raise ValueError("distortion_mode must be 'single' or 'multi'")
        if not self.distortion_orders or min(self.distortion_orders) < 1:
            raise ValueError("distortion_orders must be positive integers")


# ----------------------------------------------------------------------------------------- tokenizer

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\u02b9": "'"})
#: A word: letters/digits of any script, possibly joined by apostrophes ("don't", "o'clock").
WORD_PATTERN = r"[^\W_]+(?:'[^\W_]+)*"
_WORD_RE = re.compile(WORD_PATTERN)
#: A token: a word, or one punctuation/symbol character (so "**" is two tokens, "?!" two).
_TOKEN_RE = re.compile(WORD_PATTERN + r"|[^\w\s]|_")


def normalise(text: str) -> str:
    """NFKC, and typographic apostrophes folded to ``'`` (models differ in which one they emit; the
    choice shows in character n-grams and formatting, not in words)."""
    return unicodedata.normalize("NFKC", text).translate(_APOSTROPHES)


def tokenize(text: str, *, punctuation: bool = False) -> list[str]:
    """Deterministic regex tokenizer: NFKC, lowercase, words kept whole with inner apostrophes.

    ``"Don't panic -- it's 42!"`` gives ``["don't", "panic", "it's", "42"]``; with ``punctuation=True``
    every non-space, non-word character is its own token: ``["don't", "panic", "-", "-", "it's", "42",
    "!"]``. Hyphenated words split ("well-known" -> "well", "-", "known"); a quote that does not join two
    word characters is punctuation. No tagger, no language model: the same text always gives the same
    tokens on every machine.
    """
    lowered = normalise(text).lower()
    return (_TOKEN_RE if punctuation else _WORD_RE).findall(lowered)


def is_word(token: str) -> bool:
    """Whether a :func:`tokenize` token is a word (not punctuation): punctuation tokens are single
    non-alphanumeric characters, so this is ``token.isalnum()`` for one character and true beyond."""
    return len(token) > 1 or token.isalnum()


def response_lengths(corpus: CorpusLike) -> dict[str, np.ndarray]:
    """Words (:func:`tokenize` tokens) per response, per source, aligned with ``corpus.prompt_keys``."""
    return {s: np.array([len(tokenize(t)) for t in corpus.responses[s]], dtype=np.int64)
            for s in corpus.sources}


def mean_log_length(corpus: CorpusLike, lengths: Mapping[str, np.ndarray] | None = None) -> dict[str, float]:
    """Per-source mean of ``log(1 + words)``: the length confound on a scale where a model twice as
    verbose is a constant shift, and one very long answer does not dominate."""
    lengths = response_lengths(corpus) if lengths is None else lengths
    return {s: float(np.mean(np.log1p(lengths[s]))) for s in corpus.sources}


def length_profiles(corpus: CorpusLike, boot_idx: np.ndarray | None = None,
                    lengths: Mapping[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Mean log-length per source on the full corpus (``"value"``, shape (S,)) and on each bootstrap
    resample (``"boot"``, shape (B, S)), in ``corpus.sources`` order, for the engine's length control."""
    lengths = response_lengths(corpus) if lengths is None else lengths
    n = len(corpus.prompt_keys)
    weights = _all_weights(boot_idx, n)
    logs = np.stack([np.log1p(lengths[s]).astype(float) for s in corpus.sources], axis=1)  # (n, S)
    pooled = (weights @ logs) / weights.sum(axis=1, keepdims=True)
    return {"value": pooled[0], "boot": pooled[1:]}


# ----------------------------------------------------------------------------------------- n-grams


def encode_tokens(docs: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Token ids (in order of first appearance), the document index of each token, the id -> token list.

    Hash-based (pandas.factorize), so ids do not depend on anything but the token sequence.
    """
    flat = np.fromiter(itertools.chain.from_iterable(docs), dtype=object, count=sum(len(d) for d in docs))
    codes, uniques = pd.factorize(flat)
    doc = np.repeat(np.arange(len(docs), dtype=np.int64), [len(d) for d in docs])
    return codes.astype(np.int64), doc, [str(u) for u in uniques]


def encode_texts(texts: Iterable[str],
                 tokenizer: Callable[[str], list[str]]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """:func:`encode_tokens` of ``[tokenizer(t) for t in texts]``, streamed: each text is tokenised and
    its tokens turned into ids at once (ids in order of first appearance, as ``pandas.factorize``), so
    the token strings of the whole corpus are never held together. Same three results, same values."""
    ids: dict[str, int] = {}
    setdefault = ids.setdefault
    buf = array.array("q")
    lengths = array.array("q")
    for text in texts:
        toks = tokenizer(text)
        buf.extend([setdefault(t, len(ids)) for t in toks])
        lengths.append(len(toks))
    tok = np.frombuffer(buf, dtype=np.int64).copy() if len(buf) else np.zeros(0, dtype=np.int64)
    del buf
    n_docs = len(lengths)
    doc = np.repeat(np.arange(n_docs, dtype=np.int64),
                    np.frombuffer(lengths, dtype=np.int64) if n_docs else np.zeros(0, dtype=np.int64))
    return tok, doc, list(ids)


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


def _decode(tok: np.ndarray, vocab: Sequence[str], starts: np.ndarray, order: int,
            sep: str = " ") -> list[str]:
    return [sep.join(vocab[t] for t in tok[p:p + order]) for p in starts]


def _count_matrix(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> sparse.csr_matrix:
    """Occurrence counts; ``rows`` must be non-decreasing (tokens are laid out document by document),
    which lets the CSR be built directly and only the columns within each row be sorted and summed."""
    indptr = np.zeros(shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=shape[0]), out=indptr[1:])
    data = np.ones(len(cols), dtype=np.float64)
    mat = sparse.csr_matrix((data, cols.astype(np.int64), indptr), shape=shape)
    mat.sum_duplicates()
    return mat


# ----------------------------------------------------------------------------------------- features


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


def pooled_profiles(block: FeatureBlock, sources: Sequence[str], weights: np.ndarray) -> np.ndarray:
    """Pooled profiles for each weight vector: ``(m, n)`` weights -> ``(m, S, F)`` ratios.

    Pooling (sum of counts over the sum of denominators) rather than averaging per-response ratios: a
    source's profile is what its whole sample of text says, as with stylo's concatenated texts (Eder 2015:
    profiles need thousands of words to be stable).
    """
    weights = np.asarray(weights, dtype=np.float64)
    out = np.empty((weights.shape[0], len(sources), len(block.names)), dtype=np.float64)
    for j, s in enumerate(sources):
        num = np.asarray(block.counts[s].T @ weights.T).T  # (m, F)
        den = weights @ block.totals[s]
        if den.ndim == 1:
            den = den[:, None]
        out[:, j, :] = num / np.where(den > 0, den, 1.0)
    return out * block.scale


def _select_top(block_counts: Mapping[str, sparse.csr_matrix], totals: Mapping[str, np.ndarray], k: int,
                name_of: Callable[[np.ndarray], list[str]]) -> np.ndarray:
    """Columns of the k features with the highest mean relative frequency across sources.

    Each source weighs the same (mean of per-source relative frequencies, not pooled counts), so a
    verbose source does not choose the features alone. Ties are broken alphabetically by feature text;
    only the columns at or above the k-th score are decoded.
    """
    scores = None
    for s, mat in block_counts.items():
        rel = np.asarray(mat.sum(axis=0)).ravel() / max(float(np.sum(totals[s])), 1.0)
        scores = rel if scores is None else scores + rel
    assert scores is not None
    return _top_columns(scores / len(block_counts), k, name_of)


def _top_columns(scores: np.ndarray, k: int, name_of: Callable[[np.ndarray], list[str]]) -> np.ndarray:
    """The k columns of highest score (> 0), ties broken alphabetically by feature text (:func:`_select_top`)."""
    present = np.flatnonzero(scores > 0)
    if len(present) <= k:
        cand = present
    else:
        kth = np.partition(scores[present], len(present) - k)[len(present) - k]
        cand = present[scores[present] >= kth]
    names = name_of(cand)
    order = sorted(range(len(cand)), key=lambda i: (-scores[cand[i]], names[i]))[:k]
    return cand[np.array(order, dtype=np.int64)] if order else np.zeros(0, dtype=np.int64)


def _word_block(tok: np.ndarray, doc: np.ndarray, vocab: Sequence[str], sources: Sequence[str], n: int,
                orders: Sequence[int], top: int, sep: str = " ") -> FeatureBlock:
    """Word n-gram counts of an encoded stream (documents source-major: source i owns rows i*n..i*n+n-1)
    for the orders given, restricted to the ``top`` features (:func:`_select_top`).

    Columns are the orders' n-gram ids side by side (order by order); the choice is made from per-source
    column sums (``np.bincount``), exactly the scores :func:`_select_top` takes of the full count matrices,
    and a count matrix is built only for the chosen columns.
    """
    n_src = len(sources)
    n_docs = n * n_src
    decoders: list[tuple[int, int, np.ndarray]] = []  # (column offset, order, first starts)
    col_sums: list[np.ndarray] = []  # per order: (S, ids) occurrences per source
    total = np.zeros(n_docs, dtype=np.int64)
    offset = 0
    wanted = set(orders)
    for order, starts, ids, first in ngram_occurrences(tok, doc, max(orders)):
        if order not in wanted:
            continue
        key = doc[starts]
        n_ids = len(first)
        total += np.bincount(key, minlength=n_docs)
        key //= n  # source of each occurrence, then (source, id) in place
        key *= n_ids
        key += ids
        col_sums.append(np.bincount(key, minlength=n_src * n_ids).reshape(n_src, n_ids))
        del key, starts, ids
        decoders.append((offset, order, first))
        offset += n_ids
    sums = np.hstack(col_sums) if col_sums else np.zeros((n_src, 0), dtype=np.int64)
    del col_sums
    totals = {s: total[i * n:(i + 1) * n].astype(np.float64) for i, s in enumerate(sources)}

    def name_of(cols: np.ndarray) -> list[str]:
        out = []
        for c in cols:
            for off, order, first in reversed(decoders):
                if c >= off:
                    out.append(_decode(tok, vocab, first[c - off:c - off + 1], order, sep)[0])
                    break
        return out

    scores = None
    for i, s in enumerate(sources):
        rel = sums[i].astype(np.float64) / max(float(np.sum(totals[s])), 1.0)
        scores = rel if scores is None else scores + rel
    del sums
    assert scores is not None
    cols = _top_columns(scores / n_src, top, name_of)
    del scores
    # Counts of the chosen columns only, in column order (each order's block, side by side, as the full
    # matrix has them), then put in the chosen order (the same column indexing as on the full matrix, so
    # the CSR is laid out identically).
    kept = np.sort(cols)
    order_of = np.searchsorted(kept, cols)
    col_of = np.full(offset, -1, dtype=np.int64)
    col_of[kept] = np.arange(len(kept))
    blocks = []
    occurrences = ((st, i) for o, st, i, _ in ngram_occurrences(tok, doc, max(orders)) if o in wanted)
    for (off, _, first), (starts, ids) in zip(decoders, occurrences, strict=True):
        lo, hi = np.searchsorted(kept, [off, off + len(first)])
        c = col_of[off + ids]
        sel = c >= 0
        c = c[sel]
        c -= lo
        blocks.append(_count_matrix(doc[starts[sel]], c, (n_docs, int(hi - lo))))
        del c, sel, starts, ids
    del col_of
    mat = sparse.hstack(blocks, format="csr") if blocks else sparse.csr_matrix((n_docs, 0))
    del blocks
    return FeatureBlock(names=name_of(cols),
                        counts={s: mat[i * n:(i + 1) * n][:, order_of].tocsr() for i, s in enumerate(sources)},
                        totals=totals)


#: Responses per slice in the streaming passes of :func:`_char_block` (memory: a few int64 arrays of the
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


def _char_block(texts_by_source: Mapping[str, list[str]], sources: Sequence[str], n: int, top: int,
                lowercase: bool, word_boundary: bool) -> FeatureBlock:
    """Character n-grams, vectorised over code points (a pure-Python loop would take a minute a case).

    Text is NFKC-normalised, whitespace runs become one space, and each response is padded with a space
    so that word-initial and word-final n-grams exist. With ``word_boundary`` an n-gram may hold a space
    only as its first or last character (as scikit-learn's ``char_wb``).

    Three streaming passes over slices of responses, so that memory grows with the kept features, not
    with the text: character frequencies (the alphabet), n-gram totals per source (the choice of the
    ``top``), then counts of the kept n-grams only.
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
        weights = np.concatenate(part_counts).astype(np.float64) if part_counts else np.zeros(0)
        cnt = np.bincount(inv.ravel(), weights=weights, minlength=len(uniq)).astype(np.int64)
        code_totals[s] = (uniq, cnt)
        totals[s] = per_row.astype(np.float64)
    all_codes = np.unique(np.concatenate([u for u, _ in code_totals.values()]))
    # Scores exactly as :func:`_select_top` computes them from the full count matrices (integer column
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
    # Pass 3: counts of the kept n-grams only, columns in code order, then put in the chosen order
    # (the same column indexing as on the full matrix, so the CSR is laid out identically).
    kept_codes = all_codes[np.sort(cols)]
    order = np.searchsorted(kept_codes, all_codes[cols])
    counts: dict[str, sparse.csr_matrix] = {}
    for s in sources:
        row_parts, col_parts = [], []
        for start, _, arr in _char_slices(texts_by_source[s], lowercase):
            code, rows = _char_codes(arr, lut, n, base, space, word_boundary)
            at = np.searchsorted(kept_codes, code)
            hit = at < len(kept_codes)
            hit[hit] = kept_codes[at[hit]] == code[hit]
            row_parts.append(rows[hit] + start)
            col_parts.append(at[hit])
        rows = np.concatenate(row_parts) if row_parts else np.zeros(0, dtype=np.int64)
        cols_s = np.concatenate(col_parts) if col_parts else np.zeros(0, dtype=np.int64)
        mat = _count_matrix(rows, cols_s, (n_rows, len(kept_codes)))
        counts[s] = mat[:, order].tocsr()
    return FeatureBlock(names=names, counts=counts, totals=totals)


#: Placeholders of text distortion. A literal ``*`` or ``#`` in the text is escaped so that it cannot be
#: confused with a masked word (markdown uses both).
MASK_WORD = "*"
MASK_DIGITS = "#"


def distort(tokens: Sequence[str], keep: set[str] | frozenset[str], mode: str = "single") -> list[str]:
    """Text distortion (Stamatatos 2017) of a punctuation-keeping token list (:func:`tokenize`).

    Words in ``keep`` (the case's most frequent words: function words) stay; any other word becomes
    ``*`` ("single", DV-SA) or one ``*`` per character ("multi", DV-MA); a word of digits only becomes
    ``#`` (or one per digit). Punctuation stays, because its placement is syntax. So
    ``tokenize("The cat sat on 2 mats.", punctuation=True)`` with keep={"the", "on"} distorts to
    ``["the", "*", "*", "on", "#", "*", "."]``: what remains is the sentence's template, not its topic.
    """
    out: list[str] = []
    for t in tokens:
        if t in keep:
            out.append(t)
        elif is_word(t):
            mask = MASK_DIGITS if t.isdigit() else MASK_WORD
            out.append(mask if mode == "single" else mask * len(t))
        elif t in (MASK_WORD, MASK_DIGITS):
            out.append("\\" + t)
        else:
            out.append(t)
    return out


# ----------------------------------------------------------------------------------------- formatting


@dataclass(frozen=True)
class FormatFeature:
    """One formatting habit.

    ``unit``: "share" (share of responses showing it), "per_1k_words" (pooled occurrences per 1,000
    words), "per_100_words", or "words_per_sentence". ``pattern`` is a regex applied, multiline, to the
    NFKC-normalised *lowercased* response, or only to a ``region`` of it: "head" (first 300 characters),
    "tail" (last 400), "last_line" (last non-empty line); ``hint`` lists literal substrings of which one
    must occur for the regex to be tried at all (speed only; never changes a result).
    """

    name: str
    unit: str
    why: str
    pattern: str | None = None
    region: str = "all"
    hint: tuple[str, ...] = ()


_OPEN = r"\A[\s#>*_\-\"'`]*"  # a response's first characters, after markup and quotes
_LAST = r"[^\n]*\Z"  # ... and the rest of the final line

#: The formatting habits measured, each with why it can carry a teacher's style. Markdown structure and
#: discourse framing (how an answer opens and closes, how it refuses) are learnt from the training data's
#: answers and are largely independent of the topic (FIELD.md, "Stylometry").
FORMATTING_FEATURES: tuple[FormatFeature, ...] = (
    FormatFeature("markdown_headers", "per_1k_words", "section headings: a layout habit of chat-tuned models",
                  r"^[ \t]{0,3}#{1,6}[ \t]+\S", hint=("#",)),
    FormatFeature("any_header", "share", "whether an answer is sectioned at all",
                  r"^[ \t]{0,3}#{1,6}[ \t]+\S", hint=("#",)),
    FormatFeature("numbered_items", "per_1k_words", "enumerations: list-heavy answering style",
                  r"^[ \t]*\d{1,3}[.)][ \t]+\S"),
    FormatFeature("bullet_dash", "per_1k_words", "'-' bullets: which bullet character is a model habit",
                  r"^[ \t]*-[ \t]+\S", hint=("-",)),
    FormatFeature("bullet_star", "per_1k_words", "'*' bullets", r"^[ \t]*\*[ \t]+\S", hint=("*",)),
    FormatFeature("bullet_plus", "per_1k_words", "'+' bullets", r"^[ \t]*\+[ \t]+\S", hint=("+",)),
    FormatFeature("bullet_unicode", "per_1k_words", "typographic bullets (\u2022 \u25cf ...)",
                  r"^[ \t]*[\u2022\u25cf\u25aa\u25e6\u2023\u2043][ \t]*\S"),
    FormatFeature("list_intro_colon", "per_1k_words", "a line ending in ':' that introduces a list",
                  r":[ \t]*\n(?=[ \t]*(?:\d{1,3}[.)]|[-*+\u2022])[ \t])", hint=(":",)),
    FormatFeature("bold", "per_1k_words", "**bold** emphasis (lead-in labels in list items)",
                  r"(?:\*\*|__)(?=\S)[^*\n]{1,200}?(?<=\S)(?:\*\*|__)", hint=("**", "__")),
    FormatFeature("italics", "per_1k_words", "*italic* emphasis",
                  r"(?<![*\w])\*(?=[^\s*])[^*\n]{1,200}?(?<=[^\s*])\*(?![*\w])"
                  r"|(?<![_\w])_(?=\S)[^_\n]{1,200}?(?<=\S)_(?![_\w])", hint=("*", "_")),
    FormatFeature("code_fences", "share", "fenced code blocks", r"^[ \t]*```", hint=("```",)),
    FormatFeature("code_fence_language", "share", "```python-style language tags", r"^[ \t]*```[ \t]*[a-z]",
                  hint=("```",)),
    FormatFeature("inline_code", "per_1k_words", "`inline code` spans", r"(?<!`)`[^`\n]{1,100}`(?!`)",
                  hint=("`",)),
    FormatFeature("tables", "share", "markdown tables (a header separator row)",
                  r"^[ \t]*\|?[ \t]*:?-{3,}:?[ \t]*(?:\|[ \t]*:?-{3,}:?[ \t]*)+\|?[ \t]*$", hint=("---",)),
    FormatFeature("emoji", "per_1k_words", "emoji and pictographs",
                  "[\U0001f300-\U0001faff\u2600-\u27bf\u2b50\u2b55]"),
    FormatFeature("exclamations", "per_1k_words", "'!': enthusiasm register", r"!(?!=)", hint=("!",)),
    FormatFeature("questions", "per_1k_words", "'?': rhetorical or clarifying questions", r"\?", hint=("?",)),
    FormatFeature("em_dashes", "per_1k_words", "\u2014 and -- as punctuation", r"\u2014|(?<=\w) ?-- ?(?=\w)",
                  hint=("\u2014", "--")),
    FormatFeature("semicolons", "per_1k_words", "';' use", r";", hint=(";",)),
    FormatFeature("parentheses", "per_1k_words", "parenthetical asides", r"\(", hint=("(",)),
    FormatFeature("curly_quotes", "per_1k_words", "typographic double quotes: an output-pipeline habit",
                  "[\u201c\u201d]"),
    FormatFeature("ellipses", "per_1k_words", "'...' or '\u2026'", r"\.\.\.|\u2026", hint=("...", "\u2026")),
    FormatFeature("line_breaks", "per_100_words", "how much an answer is broken into lines"),
    FormatFeature("paragraph_breaks", "per_100_words", "blank-line paragraphing"),
    FormatFeature("mean_sentence_length", "words_per_sentence", "sentence length: a classic style marker"),
    FormatFeature("open_sure", "share", "opens 'Sure' / 'Of course' / 'Absolutely'",
                  _OPEN + r"(?:sure|of course|absolutely)\b", "head"),
    FormatFeature("open_certainly", "share", "opens 'Certainly'", _OPEN + r"certainly\b", "head"),
    FormatFeature("open_yes_no", "share", "opens with a bare 'Yes'/'No'", _OPEN + r"(?:yes|no)\b", "head"),
    FormatFeature("open_here_is", "share", "opens 'Here is/are/'s ...'",
                  _OPEN + r"here(?:'s| is| are)\b", "head"),
    FormatFeature("open_as_ai", "share", "opens 'As an AI ...'",
                  _OPEN + r"as an? (?:ai|artificial intelligence|language model|large language model)\b",
                  "head"),
    FormatFeature("open_thanks_greeting", "share", "opens with thanks, a greeting or praise of the question",
                  _OPEN + r"(?:hi|hello|hey|thank you|thanks|great question|good question|what a)\b", "head"),
    FormatFeature("open_restates_question", "share",
                  "first sentence mostly reuses the prompt's content words (restating the question)"),
    FormatFeature("close_offer_help", "share", "ends offering more help ('Let me know if ...')",
                  r"(?:let me know|feel free to|(?:don't|do not) hesitate|happy to help|glad to help|"
                  r"if you (?:have|need) any (?:other |more |further |additional )?(?:questions|help)|"
                  r"(?:can|may) i help you with)" + _LAST, "tail"),
    FormatFeature("close_hope_helps", "share", "ends 'I hope this helps'",
                  r"\bhope (?:this|that|it|these) (?:helps|was helpful|is helpful|answers|information)"
                  + _LAST, "tail", hint=("hope",)),
    FormatFeature("close_summary", "share", "last paragraph opens 'In conclusion/Overall/In summary'",
                  r"\A[ \t#*>]*(?:in conclusion|overall|in summary|to summarize|to summarise|to sum up|"
                  r"in short|ultimately|all in all)\b", "last_line"),
    FormatFeature("close_well_wishes", "share", "ends 'Good luck' / 'Enjoy' / 'Have fun'",
                  r"\b(?:good luck|best of luck|enjoy|have fun|happy \w+)\b[^\n]{0,60}\Z", "tail"),
    FormatFeature("ends_with_question", "share", "ends on a question to the user", r"\?[\s*_\"')]*\Z", "tail",
                  hint=("?",)),
    FormatFeature("caveat_important", "share", "'it is important/worth noting' caveats",
                  r"\b(?:it is|it's) (?:important|worth|crucial|essential) "
                  r"(?:to (?:note|remember|consider)|noting)\b",
                  hint=("it is ", "it's ")),
    FormatFeature("refusal_sorry", "share", "refusal template 'I'm sorry, but I ...' / 'I apologize, but'",
                  r"\b(?:i'm|i am) (?:very |so |really )?sorry,? but\b|\bi apologi[sz]e,? but\b",
                  hint=("sorry", "apologi")),
    FormatFeature("refusal_cannot", "share", "refusal template 'I cannot/can't help|provide|...'",
                  r"\bi(?: can't| cannot| can not| am unable to|'m unable to| am not able to|'m not able to"
                  r"| won't) "
                  r"(?:help|assist|provide|fulfil|fulfill|comply|answer|do that|create|generate|write|give)",
                  hint=("i can", "i am", "i'm", "i won")),
    FormatFeature("refusal_as_ai", "share", "refusal template 'As an AI (language model), I cannot/don't'",
                  r"\bas an? (?:ai|artificial intelligence)(?: language model| assistant| model)?,? i "
                  r"(?:cannot|can't|don't|do not|am not|have no|'m not)\b", hint=("as a",)),
)

_SENT_SPLIT = re.compile(r"(?<=[.!?])\s+|\n+")
_FIRST_SENT = re.compile(r"[^.!?:\n]+")
_PARA_BREAK = re.compile(r"\n[ \t]*\n")


def _restates(low: str, prompt_words: set[str]) -> bool:
    """First sentence whose content words (>= 4 letters, a tagger-free proxy) are mostly the prompt's."""
    m = _FIRST_SENT.search(low)
    if not m:
        return False
    content = [w for w in _WORD_RE.findall(m.group(0))[:40] if len(w) >= 4]
    if len(content) < 3:
        return False
    return sum(w in prompt_words for w in content) / len(content) >= 0.6


def _region(low: str, region: str) -> str:
    if region == "head":
        return low[:300]
    if region == "tail":
        return low[-400:]
    if region == "last_line":
        lines = [ln for ln in low.splitlines() if ln.strip()]
        return lines[-1].strip() if lines else ""
    return low


def formatting_matrix(responses: Sequence[str], prompts: Sequence[str],
                      features: Sequence[FormatFeature] = FORMATTING_FEATURES,
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Per-response numerators and denominators, both (n, F), for the features given.

    share: (1 if shown, 1); per_1k_words and per_100_words: (count, words); words_per_sentence: (words,
    sentences). The unit's multiplier is applied when profiles are pooled (:class:`FeatureBlock`).
    """
    compiled = [re.compile(f.pattern, re.MULTILINE) if f.pattern else None for f in features]
    num = np.zeros((len(responses), len(features)))
    den = np.zeros((len(responses), len(features)))
    for i, (text, prompt) in enumerate(zip(responses, prompts, strict=True)):
        low = normalise(text).strip().lower()
        words = len(_WORD_RE.findall(low))
        for j, (feat, rx) in enumerate(zip(features, compiled, strict=True)):
            if feat.name == "line_breaks":
                num[i, j], den[i, j] = low.count("\n"), words
            elif feat.name == "paragraph_breaks":
                num[i, j], den[i, j] = len(_PARA_BREAK.findall(low)), words
            elif feat.name == "mean_sentence_length":
                sents = sum(1 for s in _SENT_SPLIT.split(low) if _WORD_RE.search(s))
                num[i, j], den[i, j] = words, sents
            elif feat.name == "open_restates_question":
                num[i, j], den[i, j] = float(_restates(low, set(tokenize(prompt)))), 1.0
            elif rx is None:
                raise ValueError(f"formatting feature {feat.name!r} has no pattern and no rule")
            else:
                part = _region(low, feat.region)
                shown = not feat.hint or any(h in part for h in feat.hint)
                if feat.unit == "share":
                    num[i, j], den[i, j] = float(shown and rx.search(part) is not None), 1.0
                else:
                    num[i, j], den[i, j] = (len(rx.findall(part)) if shown else 0), words
    return num, den


def format_scale(features: Sequence[FormatFeature]) -> np.ndarray:
    unit = {"share": 1.0, "per_1k_words": 1000.0, "per_100_words": 100.0, "words_per_sentence": 1.0}
    return np.array([unit[f.unit] for f in features])


# ----------------------------------------------------------------------------------------- the families


@dataclass(frozen=True)
class StyloFeatures:
    """Everything computed once per case; the bootstrap only re-weights it."""

    sources: list[str]
    n_prompts: int
    lengths: dict[str, np.ndarray]
    mfw: FeatureBlock
    char: FeatureBlock
    distorted: FeatureBlock
    formatting: FeatureBlock
    params: StyloParams


def stylometric_features(corpus: CorpusLike, params: Any = None) -> StyloFeatures:
    """Tokenise every response once and build the four feature blocks (see the module docstring)."""
    p = params_from(StyloParams, params)
    sources = list(corpus.sources)
    n = len(corpus.prompt_keys)
    if n == 0:
        raise ValueError("the corpus has no prompts")
    for s in sources:
        if len(corpus.responses[s]) != n:
            raise ValueError(f"source {s!r} has {len(corpus.responses[s])} responses for {n} prompts")
    tok, doc, vocab = encode_texts((t for s in sources for t in corpus.responses[s]),
                                   lambda t: tokenize(t, punctuation=True))
    word_of = np.array([is_word(v) for v in vocab], dtype=bool)
    is_w = word_of[tok]
    words_tok, words_doc = tok[is_w], doc[is_w]
    counts_per_doc = np.bincount(words_doc, minlength=n * len(sources))
    lengths = {s: counts_per_doc[i * n:(i + 1) * n].astype(np.int64) for i, s in enumerate(sources)}
    mfw = _word_block(words_tok, words_doc, vocab, sources, n, (1,), p.mfw)
    keep_list = mfw.names if p.distortion_keep <= p.mfw else _word_block(
        words_tok, words_doc, vocab, sources, n, (1,), p.distortion_keep).names
    keep = frozenset(keep_list[: p.distortion_keep])
    del words_tok, words_doc, is_w
    # Text distortion at the vocabulary level (one entry at a time, identical to :func:`distort`).
    d_codes, d_vocab = pd.factorize(np.array([distort([v], keep, p.distortion_mode)[0] for v in vocab],
                                             dtype=object))
    d_tok = d_codes.astype(np.int64)[tok]
    del tok
    distorted = _word_block(d_tok, doc, [str(v) for v in d_vocab], sources, n,
                            tuple(sorted(set(p.distortion_orders))), p.distortion_top)
    del d_tok, doc
    char = _char_block(corpus.responses, sources, p.char_n, p.char_top, p.char_lowercase,
                       p.char_word_boundary)
    fmt_counts, fmt_totals = {}, {}
    for s in sources:
        num, den = formatting_matrix(corpus.responses[s], corpus.prompts)
        fmt_counts[s] = sparse.csr_matrix(num)
        fmt_totals[s] = den
    formatting = FeatureBlock(names=[f.name for f in FORMATTING_FEATURES], counts=fmt_counts,
                              totals=fmt_totals, scale=format_scale(FORMATTING_FEATURES))
    return StyloFeatures(sources=sources, n_prompts=n, lengths=lengths, mfw=mfw, char=char,
                         distorted=distorted, formatting=formatting, params=p)


def bootstrap_weights(boot_idx: np.ndarray | None, n: int) -> np.ndarray:
    """(B, n) integer weights from (B, m) resampled prompt indices: how often each prompt was drawn."""
    if boot_idx is None:
        return np.zeros((0, n), dtype=np.int64)
    idx = np.asarray(boot_idx)
    if idx.ndim != 2:
        raise ValueError(f"boot_idx must be a (B, n) array of prompt indices, got shape {idx.shape}")
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise ValueError(f"boot_idx holds indices outside 0..{n - 1}")
    b = idx.shape[0]
    flat = (np.arange(b, dtype=np.int64)[:, None] * n + idx.astype(np.int64)).ravel()
    return np.bincount(flat, minlength=b * n).reshape(b, n)


def _all_weights(boot_idx: np.ndarray | None, n: int) -> np.ndarray:
    """Row 0: the full corpus (every prompt once); rows 1..B: the resamples."""
    return np.vstack([np.ones((1, n)), bootstrap_weights(boot_idx, n).astype(np.float64)])


def zscore(table: np.ndarray, ddof: int = 1) -> np.ndarray:
    """Z-score each feature (last axis) across the sources (second-to-last axis).

    ``ddof=1`` (sample sd) follows stylo (R ``scale()``). Features constant across sources get 0. The
    population is every source given -- for a case, all of them (suspect, teachers, references), never a
    pair: with two sources every z-score is +-0.71 and Delta degenerates (the pystylometry flaw).
    """
    table = np.asarray(table, dtype=np.float64)
    mean = table.mean(axis=-2, keepdims=True)
    sd = table.std(axis=-2, ddof=ddof, keepdims=True)
    ok = sd > 1e-12 * np.maximum(np.abs(mean), 1e-300)
    return np.where(ok, (table - mean) / np.where(ok, sd, 1.0), 0.0)


def burrows_delta(z: np.ndarray) -> np.ndarray:
    """Burrows' Delta: mean absolute difference of z-scores, (..., S, F) -> (..., S, S) distances."""
    z = np.asarray(z, dtype=np.float64)
    n_src = z.shape[-2]
    out = np.empty(z.shape[:-1] + (n_src,), dtype=np.float64)
    for s in range(n_src):
        out[..., s, :] = np.abs(z[..., s:s + 1, :] - z).mean(axis=-1)
    return out


def cosine_delta(z: np.ndarray) -> np.ndarray:
    """Cosine Delta (stylo "wurzburg"): 1 - cosine of z-score vectors, (..., S, F) -> (..., S, S).

    A source whose z-vector is all zero is at distance 1 (cosine 0) from every other, 0 from itself.
    """
    z = np.asarray(z, dtype=np.float64)
    norm = np.linalg.norm(z, axis=-1, keepdims=True)
    unit = z / np.where(norm > 0, norm, 1.0)
    dist = 1.0 - unit @ np.swapaxes(unit, -1, -2)
    dist = np.clip(dist, 0.0, 2.0)
    idx = np.arange(z.shape[-2])
    dist[..., idx, idx] = 0.0
    return dist


def stylometric_similarities(corpus: CorpusLike, boot_idx: np.ndarray | None = None, params: Any = None, *,
                             features: StyloFeatures | None = None) -> dict[str, dict[str, np.ndarray]]:
    """Source-by-source similarities (``sim = -distance``) per family, full corpus and bootstrap.

    ``boot_idx``: (B, n) prompt indices drawn by the caller (the same resamples for every line);
    ``None`` gives B = 0. Returns ``{family: {"sim": (S, S), "boot": (B, S, S)}}`` for the families in
    :data:`FAMILIES`, in ``corpus.sources`` order. Pass ``features`` (from :func:`stylometric_features`)
    to reuse the tokenisation across calls.
    """
    feats = stylometric_features(corpus, params) if features is None else features
    if list(corpus.sources) != feats.sources:
        raise ValueError("features were computed for other sources than this corpus")
    weights = _all_weights(boot_idx, feats.n_prompts)
    ddof = feats.params.z_ddof
    out: dict[str, dict[str, np.ndarray]] = {}

    def put(name: str, dist: np.ndarray) -> None:
        sim = -dist
        out[name] = {"sim": sim[0], "boot": sim[1:]}

    z = zscore(pooled_profiles(feats.mfw, feats.sources, weights), ddof)
    put("mfw_cosine_delta", cosine_delta(z))
    put("mfw_burrows_delta", burrows_delta(z))
    for name, block in (("char_ngrams", feats.char), ("distorted_ngrams", feats.distorted),
                        ("formatting", feats.formatting)):
        put(name, cosine_delta(zscore(pooled_profiles(block, feats.sources, weights), ddof)))
    return {name: out[name] for name in FAMILIES}


def stylometric_tables(features: StyloFeatures, top: int | None = None) -> dict[str, pd.DataFrame]:
    """Per-source tables for the report (full corpus), sources as columns in case order.

    ``mfw_z`` / ``mfw_per_1k``: the top MFW, z-scores and rates per 1,000 words; ``char_ngrams_z`` and
    ``distorted_ngrams_z``: the most frequent features' z-scores; ``formatting``: each habit in its unit
    (share of responses, per 1,000 or 100 words, words per sentence), with ``unit`` and ``why`` columns;
    ``length``: words per response (mean, median) and mean log(1 + words).
    """
    top = features.params.report_top if top is None else top
    src = features.sources
    one = np.ones((1, features.n_prompts))
    ddof = features.params.z_ddof

    def table(block: FeatureBlock, k: int | None, z: bool, scale: float = 1.0) -> pd.DataFrame:
        prof = pooled_profiles(block, src, one)[0]
        vals = zscore(prof, ddof) if z else prof * scale
        k = len(block.names) if k is None else min(k, len(block.names))
        df = pd.DataFrame(vals[:, :k].T, index=pd.Index(block.names[:k], name="feature"), columns=src)
        return df

    fmt = table(features.formatting, None, False)
    fmt.insert(0, "unit", [f.unit for f in FORMATTING_FEATURES])
    fmt.insert(1, "why", [f.why for f in FORMATTING_FEATURES])
    lengths = pd.DataFrame({
        "mean_words": [float(np.mean(features.lengths[s])) for s in src],
        "median_words": [float(np.median(features.lengths[s])) for s in src],
        "mean_log_length": [float(np.mean(np.log1p(features.lengths[s]))) for s in src],
    }, index=pd.Index(src, name="source"))
    return {
        "mfw_z": table(features.mfw, top, True),
        "mfw_per_1k": table(features.mfw, top, False, 1000.0),
        "char_ngrams_z": table(features.char, top, True),
        "distorted_ngrams_z": table(features.distorted, top, True),
        "formatting": fmt,
        "length": lengths,
    }


# ----------------------------------------------------------------------------------------- summary


def jsonable(x: Any) -> Any:
    """JSON-able copy: floats rounded to 6 decimals, numpy scalars/arrays to Python, keys sorted."""
    if isinstance(x, Mapping):
        return {str(k): jsonable(x[k]) for k in sorted(x, key=str)}
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if isinstance(x, list | tuple):
        return [jsonable(v) for v in x]
    if isinstance(x, bool | np.bool_):
        return bool(x)
    if isinstance(x, int | np.integer):
        return int(x)
    if isinstance(x, float | np.floating):
        v = float(x)
        return round(v, 6) if math.isfinite(v) else None
    return x


def _frame(df: pd.DataFrame) -> dict[str, Any]:
    """A table as ``{"index": [...], "columns": [...], "data": [[...]]}`` (order kept: it is meaningful)."""
    return {"index": [str(i) for i in df.index], "columns": [str(c) for c in df.columns],
            "data": jsonable(df.to_numpy().tolist())}


def summarise_stylometry(corpus: CorpusLike, sims: Mapping[str, Mapping[str, np.ndarray]],
                         tables: Mapping[str, pd.DataFrame] | None = None, *,
                         include_boot: bool = True) -> dict[str, Any]:
    """JSON-able content of ``artifacts/stylometry.json``.

    ``families[f]``: ``sim`` (S x S nested lists), ``boot`` (B x S x S, when ``include_boot``: the engine
    reads the replicates from here), ``boot_sd``; ``sources`` gives the matrix order; ``similarity``
    states the sign convention; ``tables`` holds :func:`stylometric_tables` as index/columns/data.
    """
    fams: dict[str, Any] = {}
    for name in sorted(sims):
        entry: dict[str, Any] = {"sim": sims[name]["sim"]}
        boot = np.asarray(sims[name]["boot"])
        entry["n_boot"] = int(boot.shape[0])
        entry["boot_sd"] = boot.std(axis=0, ddof=1) if boot.shape[0] > 1 else np.zeros_like(sims[name]["sim"])
        if include_boot:
            entry["boot"] = boot
        fams[name] = entry
    out: dict[str, Any] = {
        "sources": list(corpus.sources),
        "suspect": corpus.suspect,
        "teachers": list(corpus.teachers),
        "references": list(corpus.references),
        "n_prompts": len(corpus.prompt_keys),
        "similarity": "negative distance (sim = -delta): higher = more alike, 0 on the diagonal",
        "families": fams,
    }
    if tables is not None:
        out["tables"] = {k: _frame(tables[k]) for k in sorted(tables)}
    return jsonable(out)


# ----------------------------------------------------------------------------------------- step 03

STEP = "03_stylometry"
ARTIFACT = "artifacts/stylometry.json"


def run_step(case: Any, run: Any) -> dict[str, Any]:
    """Step 03: stylometric similarities (full + prompt bootstrap), per-source tables and figures."""
    from forensics import figures
    from forensics.exchanges import load_corpus
    from forensics.scoring import case_bootstrap

    corpus = load_corpus(run, case)
    params = case.parameters
    boot_idx = case_bootstrap(corpus, params)
    feats = stylometric_features(corpus, params)
    sims = stylometric_similarities(corpus, boot_idx, params, features=feats)
    summary = summarise_stylometry(corpus, sims, stylometric_tables(feats))
    run.write_json(ARTIFACT, summary, step=STEP)
    sources = list(corpus.sources)
    distance = pd.DataFrame(-np.asarray(sims["mfw_cosine_delta"]["sim"]), index=sources, columns=sources)
    roles = figures.Roles.of(corpus)
    dendrogram = figures.stylometric_dendrogram(distance, roles)
    run.write_figure("figures/stylometric_dendrogram", dendrogram, step=STEP)
    return {"families": sorted(sims), "n_prompts": len(corpus.prompt_keys), "bootstrap": int(len(boot_idx))}
