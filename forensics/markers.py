"""Line 3 of evidence: teacher marker phrases, identity leakage, canaries.

**Marker phrases.** A teacher has verbal habits ("I hope this helps", "it's important to note", "here
are some") that a student trained on its outputs picks up. Phrases are word n-grams (default 2-4) that do
not cross punctuation or a line break, counted **once per response** (document frequency: one long
answer that repeats a phrase cannot dominate), and never counted in a response whose own prompt contains
the phrase (a phrase copied from the prompt is the prompt's, not the teacher's). A teacher's markers are
the phrases it over-uses relative to a panel, by the log-odds ratio with an informative Dirichlet prior
(Monroe, Colaresi & Quinn 2008, "Fightin' Words"; :func:`fightin_words`).

**No selection bias.** Measuring the suspect on phrases chosen with the suspect's own text would inflate
its rate; measuring a reference on phrases chosen against it would deflate the panel's. So:

- the suspect's rate is measured on markers of the teacher against the whole reference panel, prior =
  every source but the suspect: the suspect's text is never used to choose any marker;
- each reference R is measured on markers of the teacher against the panel without R, prior = every
  source but the suspect and R: R is measured on phrases chosen without it, exactly as the suspect.

The rate is **marker occurrences per 100 words** (hits in a response / its words, pooled over prompts:
``100 * sum(w * hits) / sum(w * words)`` for prompt weights w), so a bootstrap resample is a weight
vector and a verbose source is not credited for length alone. A "hit" is a marker phrase present in
the response (once per response) and absent from that response's prompt; nested markers ("i hope this",
"hope this helps") each count.

**Identity leakage**: a model naming itself or its maker ("As an AI language model developed by
OpenAI", "I'm Claude"), counted only on prompts that do not themselves bring up AI, models or vendors
(:data:`PROMPT_FILTER_PATTERNS`), per vendor. **Canaries**: investigator-supplied strings, exact and
case-sensitive after NFKC, counted per source.
"""

from __future__ import annotations

import dataclasses
import re
import tempfile
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import sparse

from forensics.errors import CaseFileError
from forensics.exchanges import CorpusLike
from forensics.scoring import all_weights, jsonable, percentile_interval
from forensics.stylometry import is_word, ngram_occurrences, params_from, tokenize
from forensics.stylometry.words import GramTable, TokenSpill, lookup, merge_counts, sorted_unique

if TYPE_CHECKING:
    from forensics.case import Case
    from forensics.custody import RunFolder

__all__ = [
    "IDENTITY_PATTERNS",
    "PROMPT_FILTER_PATTERNS",
    "MarkerParams",
    "PhraseTable",
    "canary_hits",
    "eligible_for_identity",
    "fightin_words",
    "identity_leaks",
    "marker_rates",
    "phrase_table",
    "summarise_markers",
    "teacher_markers",
]

LINE_BREAK = "\n"  # a non-word token: phrases never span it


@dataclass(frozen=True)
class MarkerParams:
    """Marker parameters; defaults are a priori choices, not tuned on the benchmark.

    - ``orders``: phrase lengths in words (2-4: long enough to be a habit, short enough to recur).
    - ``top_k``: at most this many markers per teacher (highest z first).
    - ``min_z``: a marker's log-odds z-score must reach this (3.0: one-sided p ~ 0.001 per phrase).
    - ``alpha0``: prior strength in phrase-response incidences (1000 ~ the phrases of 2-5 responses).
    - ``min_teacher_df``: a marker occurs in at least this many of the teacher's responses: a habit,
      not one topic.
    - ``contrast_teachers``: also put the other candidate teachers in every selection panel (for
      markers that separate one teacher from its siblings); off by default.
    - ``report_top``: marker rows kept in the report table.
    """

    orders: tuple[int, ...] = (2, 3, 4)
    top_k: int = 200
    min_z: float = 3.0
    alpha0: float = 1000.0
    min_teacher_df: int = 5
    contrast_teachers: bool = False
    report_top: int = 30

    def __post_init__(self) -> None:
        fix = "correct the marker parameter (see docs/ARCHITECTURE.md)"
        if not self.orders or min(self.orders) < 1:
            raise CaseFileError("orders must be positive integers", fix=fix)
        if self.top_k < 1 or self.alpha0 <= 0 or self.min_teacher_df < 1:
            raise CaseFileError("top_k, alpha0 and min_teacher_df must be positive", fix=fix)


# ----------------------------------------------------------------------------------------- phrases


def _phrase_tokens(text: str) -> list[str]:
    """Punctuation-keeping tokens with a line-break token between lines (both break phrases)."""
    out: list[str] = []
    for line in text.splitlines():
        toks = tokenize(line, punctuation=True)
        if toks:
            if out:
                out.append(LINE_BREAK)
            out.extend(toks)
    return out


@dataclass(frozen=True)
class PhraseTable:
    """Per-response phrase presence, every source on the same columns.

    ``hits[s]``: binary CSR (n x P, int8): phrase present in the response and absent from its prompt.
    ``names``: the P phrases (kept: those in at least ``min_teacher_df`` responses of some teacher);
    ``order``: words per phrase; ``totals[s]``: phrase-response incidences over *all* phrases (before the
    vocabulary was cut), the "n" of the log-odds; ``words[s]``: words per response; ``dfs[s]``: each
    phrase's document frequency (column sums of ``hits[s]``).
    """

    sources: list[str]
    names: list[str]
    order: np.ndarray
    hits: dict[str, sparse.csr_matrix]
    totals: dict[str, float]
    words: dict[str, np.ndarray]
    n_prompts: int
    dfs: dict[str, np.ndarray]

    def df(self, source: str) -> np.ndarray:
        """Document frequency per phrase: how many of the source's responses contain it."""
        return self.dfs[source]

    def hit_counts(self, source: str, cols: np.ndarray) -> np.ndarray:
        """Per response: how many of the phrases ``cols`` it contains (each once)."""
        chosen = np.zeros(len(self.names))
        chosen[cols] = 1.0
        return np.asarray(self.hits[source] @ chosen).ravel()


#: The spill's key for the prompts (source names are strings).
_PROMPTS = ("prompts",)


def phrase_table(corpus: CorpusLike, params: Any = None) -> PhraseTable:
    """Extract the phrases of every response and prompt (exact, vectorised n-grams), a slice at a time.

    Tokens are spilled once to a temporary folder (``TMPDIR``; :class:`TokenSpill`). The phrases a teacher
    could have as markers (in ``min_teacher_df`` of its responses) are found first, an order at a time,
    among n-grams whose first words already are frequent in that teacher (:class:`PhraseIndex`); then each
    source is read once for their presence, its phrase totals and its words. Memory grows with the
    candidate phrases and the presence of the kept ones, not with the text.
    """
    p = params_from(MarkerParams, params)
    sources = list(corpus.sources)
    n = len(corpus.prompt_keys)
    with tempfile.TemporaryDirectory(prefix="forensics-phrases-") as folder:
        spill = TokenSpill(Path(folder), _phrase_tokens)
        spill.add(_PROMPTS, corpus.prompts)
        for s in sources:
            spill.add(s, corpus.responses[s])
        vocab = spill.tokens()
        word_of = np.array([is_word(v) for v in vocab], dtype=bool)
        index = _teacher_phrases(spill, list(corpus.teachers), word_of, p)
        hits, totals, words = {}, {}, {}
        for s in sources:
            hits[s], totals[s], words[s] = _source_phrases(spill, s, n, word_of, index, p)
    return PhraseTable(sources=sources, names=index.names(vocab), order=index.column_orders(), hits=hits,
                       totals=totals, words=words, n_prompts=n,
                       dfs={s: np.bincount(hits[s].indices, minlength=index.n_columns).astype(np.float64)
                            for s in sources})


def _word_streams(spill: TokenSpill, source: str,
                  word_of: np.ndarray) -> Iterator[tuple[int, int, np.ndarray, np.ndarray, np.ndarray]]:
    """Per slice ``(first, end, words, document, segment)``: the slice's responses (documents 0..h-1) then
    their prompts (h..2h-1), word tokens only; a new segment at every punctuation or line-break token and
    every document start, so that no phrase spans them."""
    for (lo, hi, tok, doc), (_, _, p_tok, p_doc) in zip(spill.read(source), spill.read(_PROMPTS), strict=True):
        tok = np.concatenate([tok, p_tok])
        doc = np.concatenate([doc, p_doc + (hi - lo)])
        is_w = word_of[tok]
        starts_doc = np.ones(len(tok), dtype=bool)
        starts_doc[1:] = doc[1:] != doc[:-1]
        seg = np.cumsum(~is_w | starts_doc)
        yield lo, hi, tok[is_w], doc[is_w], seg[is_w]


class PhraseIndex:
    """Case-wide identities of the phrases some teacher uses often, found an order at a time.

    ``frequent``: the :class:`GramTable` of the words and phrases in at least ``min_teacher_df`` responses
    of some teacher (prompts not excluded). A phrase in ``min_teacher_df`` of a teacher's responses has its
    first k-1 words and its last word there too, so only the n-grams the table knows are ever candidates.
    ``kept[k]``: the sorted keys (the table's) of the marker candidates of order k (``min_teacher_df``
    responses of some teacher with the phrase absent from the prompt); the phrase table's columns are the
    kept keys, order by order.
    """

    def __init__(self, orders: Sequence[int]) -> None:
        self.orders = tuple(sorted(set(orders)))
        self.frequent = GramTable()
        self.kept: dict[int, np.ndarray] = {}

    @property
    def offsets(self) -> dict[int, int]:
        out, at = {}, 0
        for k in self.orders:
            out[k] = at
            at += len(self.kept.get(k, ()))
        return out

    @property
    def n_columns(self) -> int:
        return sum(len(self.kept.get(k, ())) for k in self.orders)

    def names(self, vocab: Sequence[str]) -> list[str]:
        return [" ".join(vocab[t] for t in row) for k in self.orders
                for row in self.frequent.key_symbols(k, self.kept.get(k, _EMPTY))]

    def column_orders(self) -> np.ndarray:
        return np.concatenate([np.full(len(self.kept.get(k, ())), k, dtype=np.int64) for k in self.orders]
                              + [np.zeros(0, dtype=np.int64)])


_EMPTY = np.zeros(0, dtype=np.int64)


def _teacher_phrases(spill: TokenSpill, teachers: Sequence[str], word_of: np.ndarray,
                     p: MarkerParams) -> PhraseIndex:
    """The :class:`PhraseIndex` of the teachers' responses: one pass over them per order."""
    index = PhraseIndex(p.orders)
    top = max(p.orders)
    for order in range(1, top + 1):
        frequent, kept = [], []
        for t in teachers:
            merged = (_EMPTY, np.zeros((0, 2), dtype=np.int64))
            for part in _slice_counts(spill, t, word_of, index, order):
                merged = merge_counts([merged, part])
            frequent.append(merged[0][merged[1][:, 0] >= p.min_teacher_df])
            kept.append(merged[0][merged[1][:, 1] >= p.min_teacher_df])
        if order < top:
            index.frequent.add(np.concatenate(frequent) if frequent else _EMPTY)
        if order in index.orders:
            index.kept[order] = sorted_unique(np.concatenate(kept)) if kept else _EMPTY
    return index
def _slice_counts(spill: TokenSpill, teacher: str, word_of: np.ndarray, index: PhraseIndex,
                  order: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Per slice of the teacher's responses: its candidate n-grams of ``order`` (sorted keys) with, per key,
    the responses containing it and those containing it while their prompt does not."""
    for lo, hi, tok, doc, seg in _word_streams(spill, teacher, word_of):
        *_, (_, starts, keys, _) = index.frequent.occurrences(tok, seg, order)
        local, ids = np.unique(keys, return_inverse=True)
        _, r_id, absent = _presence(doc[starts], ids.ravel(), len(local), hi - lo)
        counts = np.stack([np.bincount(r_id, minlength=len(local)),
                           np.bincount(r_id[absent], minlength=len(local))], axis=1)
        seen = counts[:, 0] > 0  # (n-grams only in prompts are nobody's markers)
        yield local[seen], counts[seen]


def _source_phrases(spill: TokenSpill, source: str, n: int, word_of: np.ndarray, index: PhraseIndex,
                    p: MarkerParams) -> tuple[sparse.csr_matrix, float, np.ndarray]:
    """One source's presence of the kept phrases (n x P), its phrase-response incidences over every phrase
    (prompt phrases removed: the log-odds' "n") and its words per response."""
    top = max(p.orders)
    offsets, n_cols = index.offsets, index.n_columns
    totals = np.zeros(n, dtype=np.int64)
    words = np.zeros(n, dtype=np.int64)
    rows, cols = [_EMPTY], [_EMPTY]
    for lo, hi, tok, doc, seg in _word_streams(spill, source, word_of):
        h = hi - lo
        words[lo:hi] = np.bincount(doc[doc < h], minlength=h)
        for order, starts, ids, first in ngram_occurrences(tok, seg, top):
            if order in index.orders:
                r_doc, _, absent = _presence(doc[starts], ids, len(first), h)
                totals[lo:hi] += np.bincount(r_doc[absent], minlength=h)
        for order, starts, keys, _ in index.frequent.occurrences(tok, seg, top):
            if order in index.orders:
                col = lookup(index.kept[order], keys)
                hit = col >= 0
                r_doc, r_col, absent = _presence(doc[starts[hit]], col[hit] + offsets[order], max(n_cols, 1), h)
                rows.append(r_doc[absent] + lo)
                cols.append(r_col[absent])
    row, col = np.concatenate(rows), np.concatenate(cols)
    hits = sparse.csr_matrix((np.ones(len(row), dtype=np.int8), (row, col)), shape=(n, n_cols))
    return hits, float(totals.sum()), words


def _presence(occ_doc: np.ndarray, ids: np.ndarray, n_ids: int,
              h: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each (response, phrase) pair once, sorted, and whether the phrase is absent from the response's own
    prompt. ``occ_doc``: the document of each occurrence (0..h-1 the responses, h + i the prompt of
    response i), ``ids`` its phrase (0..n_ids-1)."""
    keys = sorted_unique(occ_doc * n_ids + ids)
    split = int(np.searchsorted(keys, h * n_ids))
    prompt_keys = keys[split:]
    r_doc, r_id = np.divmod(keys[:split], n_ids)
    if not len(prompt_keys):
        return r_doc, r_id, np.ones(len(r_doc), dtype=bool)
    own = (r_doc + h) * n_ids + r_id  # the same phrase in the response's own prompt
    at = np.minimum(np.searchsorted(prompt_keys, own), len(prompt_keys) - 1)
    return r_doc, r_id, prompt_keys[at] != own


# ----------------------------------------------------------------------------------------- log-odds


def fightin_words(counts_a: np.ndarray, counts_b: np.ndarray, prior_counts: np.ndarray, alpha0: float, *,
                  n_a: float | None = None, n_b: float | None = None,
                  prior_total: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Log-odds ratio with an informative Dirichlet prior (Monroe, Colaresi & Quinn 2008, eq. 16-22).

    ``alpha_w = alpha0 * prior_w / prior_total`` (the prior's shape from background counts, its strength
    ``alpha0``);

    ``delta_w = log((y_a + alpha_w) / (n_a + alpha0 - y_a - alpha_w))
              - log((y_b + alpha_w) / (n_b + alpha0 - y_b - alpha_w))``,

    ``var(delta_w) ~ 1 / (y_a + alpha_w) + 1 / (y_b + alpha_w)``, ``z_w = delta_w / sqrt(var)``.
    Positive = over-used by a. ``n_a``, ``n_b``, ``prior_total`` default to the sums of the counts given;
    pass them when the counts cover only part of the vocabulary. Returns ``(delta, z)``.
    """
    y_a = np.asarray(counts_a, dtype=np.float64)
    y_b = np.asarray(counts_b, dtype=np.float64)
    prior = np.asarray(prior_counts, dtype=np.float64)
    n_a = float(y_a.sum()) if n_a is None else float(n_a)
    n_b = float(y_b.sum()) if n_b is None else float(n_b)
    prior_total = float(prior.sum()) if prior_total is None else float(prior_total)
    alpha = alpha0 * prior / prior_total
    with np.errstate(divide="ignore", invalid="ignore"):
        delta = (np.log((y_a + alpha) / (n_a + alpha0 - y_a - alpha))
                 - np.log((y_b + alpha) / (n_b + alpha0 - y_b - alpha)))
        z = delta / np.sqrt(1.0 / (y_a + alpha) + 1.0 / (y_b + alpha))
    return delta, z


def _select(table: PhraseTable, teacher: str, panel: Sequence[str], prior_sources: Sequence[str],
            p: MarkerParams) -> pd.DataFrame:
    """Markers of ``teacher`` against ``panel`` (pooled), ordered by z then phrase."""
    if not panel:
        raise ValueError(f"markers of {teacher!r} need at least one panel source")
    if teacher in panel:
        raise ValueError(f"teacher {teacher!r} cannot be in its own panel")
    y_a = table.df(teacher)
    y_b = np.sum([table.df(s) for s in panel], axis=0)
    prior = np.sum([table.df(s) for s in prior_sources], axis=0)
    delta, z = fightin_words(y_a, y_b, prior, p.alpha0, n_a=table.totals[teacher],
                             n_b=sum(table.totals[s] for s in panel),
                             prior_total=sum(table.totals[s] for s in prior_sources))
    ok = np.flatnonzero((y_a >= p.min_teacher_df) & (z >= p.min_z) & np.isfinite(z))
    ranked = sorted(ok.tolist(), key=lambda c: (-z[c], table.names[c]))[: p.top_k]
    cols = np.array(ranked, dtype=np.int64)
    n = table.n_prompts
    out = pd.DataFrame({
        "column": cols,
        "phrase": [table.names[c] for c in cols],
        "order": table.order[cols] if len(cols) else np.zeros(0, dtype=np.int64),
        "z": z[cols],
        "delta": delta[cols],
        "teacher_rate": y_a[cols] / n,
    })
    for s in panel:
        out[f"rate:{s}"] = table.df(s)[cols] / n
    return out


def teacher_markers(corpus: CorpusLike, teacher: str, panel: Sequence[str], top_k: int = 200,
                    min_z: float = 3.0, *, params: Any = None, table: PhraseTable | None = None,
                    prior_sources: Sequence[str] | None = None) -> pd.DataFrame:
    """Phrases ``teacher`` over-uses relative to the ``panel`` sources (pooled).

    Prior: every source of the case except the suspect, unless ``prior_sources`` says otherwise.
    Returns one row per marker, highest z first: ``phrase``, ``order`` (words), ``z``, ``delta``,
    ``teacher_rate`` (share of the teacher's responses containing it) and ``rate:<source>`` (the same
    share for each panel source: its base rate), plus ``column`` (index into ``table.names``).
    """
    p = params_from(MarkerParams, params)
    p = dataclasses.replace(p, top_k=top_k, min_z=min_z)
    table = phrase_table(corpus, p) if table is None else table
    if prior_sources is None:
        prior_sources = [s for s in corpus.sources if s != corpus.suspect]
    prior = list(prior_sources)
    return _select(table, teacher, list(panel), prior, p)


def _pooled_rate(table: PhraseTable, source: str, cols: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Marker hits per 100 words for each weight row: ``100 * (W @ hits) / (W @ words)``."""
    hits = table.hit_counts(source, cols)
    words = table.words[source].astype(np.float64)
    return 100.0 * (weights @ hits) / np.maximum(weights @ words, 1.0)


def marker_rates(corpus: CorpusLike, boot_idx: np.ndarray | None = None, params: Any = None, *,
                 table: PhraseTable | None = None) -> dict[str, dict[str, Any]]:
    """Per teacher: the suspect's and each reference's marker rate (per 100 words), with bootstrap.

    Returns ``{teacher: {"suspect": float, "references": {R: float}, "teacher": float,
    "boot_suspect": (B,), "boot_references": {R: (B,)}, "n_markers": int, "n_markers_references":
    {R: int}, "marker_phrases": [...], "reference_marker_phrases": {R: [...]}, "unit": str,
    "markers": DataFrame}}``; the phrase lists say exactly what each source was measured on.
    ``markers`` shows the suspect's top markers (chosen against the whole panel) with ``teacher_rate``,
    ``suspect_rate``, ``panel_rate`` (mean over the references) and ``rate:<R>`` per reference, ``z``.
    A reference is measured on its leave-one-out markers (module docstring); with a single reference
    that panel is empty and its rate is NaN.
    """
    p = params_from(MarkerParams, params)
    table = phrase_table(corpus, p) if table is None else table
    n = table.n_prompts
    weights = all_weights(boot_idx, n)
    refs = list(corpus.references)
    suspect = corpus.suspect
    out: dict[str, dict[str, Any]] = {}
    for teacher in corpus.teachers:
        extra = [t for t in corpus.teachers if t != teacher] if p.contrast_teachers else []
        prior = [s for s in corpus.sources if s != suspect]
        chosen = _select(table, teacher, refs + extra, prior, p)
        cols = chosen["column"].to_numpy(dtype=np.int64)
        s_rate = _pooled_rate(table, suspect, cols, weights)
        t_rate = _pooled_rate(table, teacher, cols, weights)
        ref_rate: dict[str, np.ndarray] = {}
        ref_n: dict[str, int] = {}
        ref_phrases: dict[str, list[str]] = {}
        for r in refs:
            loo_panel = [x for x in refs if x != r] + extra
            if not loo_panel:
                ref_rate[r] = np.full(weights.shape[0], np.nan)
                ref_n[r] = 0
                ref_phrases[r] = []
                continue
            loo_prior = [s for s in corpus.sources if s not in (suspect, r)]
            loo = _select(table, teacher, loo_panel, loo_prior, p)
            loo_cols = loo["column"].to_numpy(dtype=np.int64)
            ref_rate[r] = _pooled_rate(table, r, loo_cols, weights)
            ref_n[r] = len(loo_cols)
            ref_phrases[r] = loo["phrase"].tolist()
        shown = chosen.head(p.report_top).copy()
        scols = shown["column"].to_numpy(dtype=np.int64)
        shown.insert(shown.columns.get_loc("teacher_rate") + 1, "suspect_rate", table.df(suspect)[scols] / n)
        shown.insert(shown.columns.get_loc("suspect_rate") + 1, "panel_rate",
                     np.mean([table.df(r)[scols] / n for r in refs], axis=0) if refs else np.nan)
        for r in refs:
            if f"rate:{r}" not in shown:
                shown[f"rate:{r}"] = table.df(r)[scols] / n
        shown = shown[["phrase", "order", "z", "delta", "teacher_rate", "suspect_rate", "panel_rate"]
                      + [f"rate:{r}" for r in refs] + [f"rate:{t}" for t in extra]].reset_index(drop=True)
        out[teacher] = {
            "suspect": float(s_rate[0]),
            "references": {r: float(ref_rate[r][0]) for r in refs},
            "teacher": float(t_rate[0]),
            "boot_suspect": s_rate[1:],
            "boot_references": {r: ref_rate[r][1:] for r in refs},
            "n_markers": len(cols),
            "n_markers_references": ref_n,
            "marker_phrases": chosen["phrase"].tolist(),
            "reference_marker_phrases": ref_phrases,
            "unit": "teacher-marker phrases per 100 words (each phrase once per response, prompt phrases "
                    "excluded)",
            "markers": shown,
        }
    return out


# ----------------------------------------------------------------------------------------- identity

_SELF_NAME = r"(?:i(?:'m| am)|my name is|i(?:'m| am) (?:called|named))"
_MADE_BY = r"(?:developed|created|trained|made|built|designed|programmed|owned|fine-tuned|released)"

#: What each vendor's models are called, and what the vendor is called (lowercase regex fragments).
VENDOR_NAMES: dict[str, tuple[str, str]] = {
    "OpenAI": (r"chat ?gpt|gpt-?3(?:\.5)?(?:-turbo)?|gpt-?4(?:o)?|instructgpt|davinci", r"openai|open ai"),
    "Anthropic": (r"claude", r"anthropic"),
    "Google": (r"bard|gemini|palm(?: ?2)?|lamda", r"google(?: deepmind| ai| research| brain)?|deepmind"),
    "Meta": (r"llama(?: ?2| 3)?", r"meta(?: ai)?|facebook(?: ai)?"),
    "Cohere": (r"coral|command[- ]r\+?", r"cohere"),
    "Mistral AI": (r"mistral|mixtral", r"mistral ai"),
    "LMSYS": (r"vicuna", r"lmsys|large model systems organization"),
    "Microsoft": (r"bing(?: chat)?|copilot", r"microsoft"),
}


def _vendor_patterns(vendor: str, names: str, maker: str) -> list[tuple[str, str]]:
    return [
        # "I am ChatGPT", "I'm Claude", "my name is Bard", "I am called Vicuna"
        (vendor, rf"\b{_SELF_NAME}\s+(?:{names})\b"),
        # "I am a large language model, trained by Google", "I was created by OpenAI"
        (vendor, rf"\bi(?:'m| am| was|'ve been| have been)\b[^.!?\n]{{0,80}}?\b{_MADE_BY}\s+(?:by|at)\s+"
                 rf"(?:the\s+)?(?:[\w-]+\s+(?:at|from)\s+)?(?:{maker})\b"),
        # "As an AI language model developed by OpenAI"
        (vendor, rf"\bas an? (?:ai|artificial intelligence)\b[^.!?\n]{{0,60}}?\b{_MADE_BY}\s+by\s+"
                 rf"(?:the\s+)?(?:{maker})\b"),
        # "my creators at Anthropic", "my developers at OpenAI"
        (vendor, rf"\bmy (?:creators?|developers?|makers?|trainers?|programmers?|team)\s+(?:at|from)\s+"
                 rf"(?:{maker})\b"),
        # "OpenAI's content policy": a vendor's usage policy cited as binding the speaker
        (vendor, rf"\b(?:{maker})(?:'s)? (?:content|usage|use[- ]case) (?:policy|policies|guidelines)\b"),
    ]


#: (vendor, regex) pairs, case-insensitive: a model naming itself or its maker. "unnamed" is a model
#: calling itself an AI / language model without naming anyone: reported separately, never per vendor.
IDENTITY_PATTERNS: tuple[tuple[str, str], ...] = tuple(
    pat for vendor, (names, maker) in VENDOR_NAMES.items() for pat in _vendor_patterns(vendor, names, maker)
) + (
    ("unnamed", r"\bas an? (?:ai|artificial intelligence)(?: language)? (?:model|assistant|chatbot)\b"),
    ("unnamed", r"\bi(?:'m| am) (?:just |only |merely )?an? (?:ai|artificial intelligence)"
                r"(?: language)?(?: model| assistant| chatbot| program)?\b"),
    ("unnamed", r"\bi(?:'m| am) (?:just |only |merely )?a (?:large |text-based |computer )?language model\b"),
)

#: A prompt matching any of these (case-insensitive) brings up AI, models, vendors or the assistant's
#: identity, so a self-identification in the answer may be what the prompt asked for: such prompts are
#: not counted for identity leakage (FIELD.md, "Pitfalls").
PROMPT_FILTER_PATTERNS: tuple[str, ...] = (
    r"\b(?:ai|a\.i\.|artificial intelligence|chat ?bots?|bots?|language models?|llms?|gpt[\w.-]*|chat ?gpt|"
    r"openai|open ai|anthropic|claude|bard|gemini|palm|google|deepmind|llama|meta|facebook|cohere|"
    r"mistral|mixtral|vicuna|alpaca|lmsys|bing|copilot|microsoft|assistant|machine learning|"
    r"neural net\w*|deep learning|transformers?|siri|alexa|cortana|robots?)\b",
    r"\bwho (?:are|made|created|built|trained|developed|designed|programmed) you\b",
    r"\bwhat (?:are|is) you(?:r name)?\b",
    r"\byour (?:name|creators?|developers?|makers?|company|training|model|identity|purpose|programming)\b",
    r"\babout (?:you|yourself)\b",
    r"\bare you (?:an?|the|human|real|sentient|conscious|alive|self-aware|a person)\b",
    r"\bintroduce yourself\b",
    r"\b(?:call|name) you\b",
    r"\b(?:can|do|could) you (?:think|feel|learn|remember|dream|"
    r"have (?:feelings|emotions|a body|consciousness))\b",
    r"\b(?:how|what) do you (?:work|generate|learn)\b|\byou use to generate\b",
)

_IDENTITY = [(v, re.compile(rx, re.IGNORECASE)) for v, rx in IDENTITY_PATTERNS]
# Every identity pattern needs one of these words; responses with none are skipped (speed only).
_IDENTITY_HINT = re.compile(
    r"\b(?:ai|artificial intelligence|language model|"
    + "|".join(f"{names}|{maker}" for names, maker in VENDOR_NAMES.values()) + r")\b", re.IGNORECASE)
_PROMPT_FILTER = [re.compile(rx, re.IGNORECASE) for rx in PROMPT_FILTER_PATTERNS]


def eligible_for_identity(prompt: str) -> bool:
    """True when the prompt does not bring up AI, models, vendors or the assistant itself."""
    text = unicodedata.normalize("NFKC", prompt).replace("\u2019", "'")
    return not any(rx.search(text) for rx in _PROMPT_FILTER)


def identity_leaks(corpus: CorpusLike) -> dict[str, Any]:
    """Self-identifications per source on eligible prompts (:func:`eligible_for_identity`).

    Returns ``{"n_eligible": int, "eligible": bool array (n,), "sources": {source: {"responses": int
    (eligible responses with a named-vendor leak), "rate": float (that / n_eligible), "by_vendor":
    {vendor: responses}, "unnamed": int, "unnamed_rate": float}}, "transcripts": [{"source",
    "prompt_key", "prompt", "response", "vendor", "match"}], "per_prompt": {source: bool array (n,),
    True where an eligible response names a vendor}}``.
    A response naming two vendors counts once in ``responses`` and once for each vendor.
    """
    eligible = np.array([eligible_for_identity(p) for p in corpus.prompts], dtype=bool)
    n_el = int(eligible.sum())
    per_source: dict[str, Any] = {}
    per_prompt: dict[str, np.ndarray] = {}
    transcripts: list[dict[str, str]] = []
    for s in corpus.sources:
        by_vendor: dict[str, int] = {}
        named = np.zeros(len(eligible), dtype=bool)
        unnamed = 0
        for i in np.flatnonzero(eligible):
            text = unicodedata.normalize("NFKC", corpus.responses[s][i]).replace("\u2019", "'")
            vendors: dict[str, str] = {}
            if not _IDENTITY_HINT.search(text):
                continue
            for vendor, rx in _IDENTITY:
                if vendor not in vendors:
                    m = rx.search(text)
                    if m:
                        vendors[vendor] = m.group(0)
            if "unnamed" in vendors:
                unnamed += 1
            for vendor in sorted(v for v in vendors if v != "unnamed"):
                by_vendor[vendor] = by_vendor.get(vendor, 0) + 1
                named[i] = True
            for vendor in sorted(vendors):
                transcripts.append({"source": s, "prompt_key": corpus.prompt_keys[i],
                                    "prompt": corpus.prompts[i], "response": corpus.responses[s][i],
                                    "vendor": vendor, "match": vendors[vendor]})
        per_prompt[s] = named
        per_source[s] = {
            "responses": int(named.sum()),
            "rate": float(named.sum() / n_el) if n_el else 0.0,
            "by_vendor": dict(sorted(by_vendor.items())),
            "unnamed": unnamed,
            "unnamed_rate": float(unnamed / n_el) if n_el else 0.0,
        }
    return {"n_eligible": n_el, "eligible": eligible, "sources": per_source, "transcripts": transcripts,
            "per_prompt": per_prompt}


def canary_hits(corpus: CorpusLike, canaries: Sequence[str], context: int = 80) -> dict[str, Any]:
    """Occurrences of investigator-supplied strings, exact and case-sensitive after NFKC, per source.

    Returns ``{"canaries": [...], "counts": {source: {canary: occurrences}}, "responses": {source:
    {canary: responses containing it}}, "transcripts": [{"source", "prompt_key", "canary", "context"}]}``.
    """
    cans = list(dict.fromkeys(unicodedata.normalize("NFKC", c) for c in canaries))  # unique, in order
    if any(not c for c in cans):
        raise ValueError("a canary is empty")
    counts: dict[str, dict[str, int]] = {}
    responses: dict[str, dict[str, int]] = {}
    transcripts: list[dict[str, str]] = []
    for s in corpus.sources:
        counts[s] = dict.fromkeys(cans, 0)
        responses[s] = dict.fromkeys(cans, 0)
        for key, text in zip(corpus.prompt_keys, corpus.responses[s], strict=True):
            norm = unicodedata.normalize("NFKC", text)
            for c in cans:
                k = norm.count(c)
                if k:
                    counts[s][c] += k
                    responses[s][c] += 1
                    at = norm.index(c)
                    transcripts.append({"source": s, "prompt_key": key, "canary": c,
                                        "context": norm[max(0, at - context):at + len(c) + context]})
    return {"canaries": cans, "counts": counts, "responses": responses, "transcripts": transcripts}


# ----------------------------------------------------------------------------------------- summary


def _ci95(boot: np.ndarray) -> list[float | None] | None:
    """The 95% interval of a rate's replicates (one replicate gives a point); None without any."""
    interval = percentile_interval(boot, min_values=1)
    return None if interval[0] is None else interval


def summarise_markers(rates: Mapping[str, Mapping[str, Any]], identity: Mapping[str, Any] | None = None,
                      canaries: Mapping[str, Any] | None = None, *,
                      include_boot: bool = True) -> dict[str, Any]:
    """JSON-able content of ``artifacts/markers.json``: floats rounded to 6 decimals, keys sorted, no
    numpy types; NaN becomes null. Bootstrap replicates are kept (the engine reads them) with their 95%
    percentile intervals; marker tables become lists of records, in rank order."""
    teachers: dict[str, Any] = {}
    for t, r in rates.items():
        entry: dict[str, Any] = {
            "suspect": r["suspect"], "references": r["references"], "teacher": r["teacher"],
            "n_markers": r["n_markers"], "n_markers_references": r["n_markers_references"], "unit": r["unit"],
            "marker_phrases": r["marker_phrases"], "reference_marker_phrases": r["reference_marker_phrases"],
            "ci95_suspect": _ci95(r["boot_suspect"]),
            "ci95_references": {k: _ci95(v) for k, v in r["boot_references"].items()},
            "markers": [{str(k): v for k, v in row.items()}
                        for row in r["markers"].to_dict(orient="records")],
        }
        if include_boot:
            entry["boot_suspect"] = r["boot_suspect"]
            entry["boot_references"] = r["boot_references"]
        teachers[t] = entry
    out: dict[str, Any] = {"teachers": teachers}
    if identity is not None:
        out["identity"] = {
            "n_eligible": identity["n_eligible"],
            "sources": identity["sources"],
            "transcripts": sorted(identity["transcripts"], key=lambda d: (d["source"], d["prompt_key"],
                                                                           d["vendor"])),
            "patterns": [{"vendor": v, "regex": rx} for v, rx in IDENTITY_PATTERNS],
            "prompt_filter": list(PROMPT_FILTER_PATTERNS),
        }
    if canaries is not None:
        out["canaries"] = {
            "canaries": list(canaries["canaries"]),
            "counts": canaries["counts"],
            "responses": canaries["responses"],
            "transcripts": sorted(canaries["transcripts"], key=lambda d: (d["source"], d["prompt_key"],
                                                                           d["canary"])),
        }
    return jsonable(out)


# ----------------------------------------------------------------------------------------- step 04

STEP = "04_markers"
ARTIFACT = "artifacts/markers.json"


def run_step(case: Case, run: RunFolder) -> dict[str, Any]:
    """Step 04: teacher markers with leave-one-out panel rates, identity leaks, canaries."""
    from forensics.exchanges import load_corpus
    from forensics.scoring import case_bootstrap

    corpus = load_corpus(run, case)
    params = case.parameters
    boot_idx = case_bootstrap(corpus, params)
    rates = marker_rates(corpus, boot_idx, params)
    identity = identity_leaks(corpus)
    canaries = canary_hits(corpus, list(params.canaries)) if params.canaries else None
    summary = summarise_markers(rates, identity, canaries)
    run.write_json(ARTIFACT, summary, step=STEP)
    return {t: {"suspect": v["suspect"], "references": v["references"], "n_markers": v["n_markers"]}
            for t, v in summary["teachers"].items()}
