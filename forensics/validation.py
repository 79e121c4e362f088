"""Validation on labelled cases: leave-one-lineage-out, with the error rates every report quotes.

A labelled benchmark is a folder of exchange files plus ``LABELS.csv`` with at least the columns
``file``, ``role`` (``teacher``, ``student``, ``control`` or ``reference``) and ``trained_on_outputs_of``
(the teacher(s) a student learned from; anything for others); an optional ``lineage`` column groups
derivatives of one model (sizes, versions, re-tunes), otherwise the first word of the file name does.

An optional ``family`` column groups teachers that are snapshots or versions of one model line; a
teacher without one is a family of its own.

Every student and control becomes a case: the teachers are the candidates, and the panel is every
reference and control outside the suspect's lineage. The case is scored with exactly the functions the
pipeline uses, on every **prompt set**: all prompts, each prompt source separately when the files say
where each prompt comes from (a ``dataset`` field), and seeded random samples of 150 and 300 prompts
(:data:`SAMPLE_SIZES`), so cases of the sizes investigators hold are seen. On the all-prompts set and the
samples, each case is also scored with a few seeded sub-panels of 2 and 3 of its panel's models
(:data:`PANEL_SIZES`): investigators often hold only a few references, and the panel-relative z is
estimated from them. Samples and sub-panels are only tested, and reported per case size and per panel
size: every calibration is fitted on the full panels of the all-prompts set and the prompt sources (a
cross-source fold: of its sources and their union, below). Three
calibrations are fitted (:mod:`forensics.calibration`: teacher, family, candidate-vs-candidate), and
two validation schemes give every pair a likelihood ratio from calibrations that never saw it:

- **leave one lineage out** (``lolo``): a lineage's pairs, on every prompt set, get LRs from calibrations
  fitted without that lineage, so a model's siblings never calibrate it;
- **across prompt sources** (``cross_source``): additionally, the pairs measured on one prompt source
  get LRs from calibrations fitted only on the other sources, so the figures predict unseen prompts. Each
  such calibration is built as the shipped one is, from the data its fold may see: the shipped one fits the
  all-prompts set and each source, so a fold fits each other source and their union (the prompt set
  ``all-but-<source>``, :data:`ALL_BUT`, scored where there are at least three sources). The union sets are
  fitted only by the fold that holds their missing source out; leave-one-lineage-out tests them as another
  case size and never fits them.

Nothing here names a model: roles, teachers and families come from the labels file.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from forensics import weighing
from forensics.calibration import (
    DEFAULT_CALIBRATION,
    LEVELS,
    Calibration,
    CalibrationSet,
    answer_fingerprints,
    cllr,
    family_level,
    supports,
)
from forensics.case import MIN_PANEL_FAMILIES, Parameters, family_groups, panel_families
from forensics.custody import atomic_write_json, atomic_write_text, sha256_file
from forensics.errors import InputError
from forensics.exchanges import AlignedCorpus
from forensics.results import LineScores
from forensics.scoring import DECIMALS, all_weights, rounded

if TYPE_CHECKING:
    from forensics.semantic import SemanticMatrices

REQUIRED_COLUMNS = ("file", "role", "trained_on_outputs_of")
SUSPECT_ROLES = ("student", "control")
PANEL_ROLES = ("reference", "control")
#: Bumped whenever the scoring or the decision changes, so an old calibration file (and the validation
#: figures it carries) is recognisably stale.
METHOD_VERSION = "panel-relative-fused-v11"
#: The prompt set holding every prompt; the others are named after their prompt source, or are samples.
ALL_PROMPTS = "all"
#: Random prompt samples validated besides the prompt sources, at sizes real cases have (a case holds from
#: about 150 prompts up), a few seeded draws each where the benchmark has at least twice as many prompts.
#: Their pairs are tested (held out like every pair) but never fitted on: they re-use the all-prompts
#: set's answers, so fitting on them would count the same models' evidence again.
SAMPLE_SIZES = (150, 300)
SAMPLE_DRAWS = 3
SAMPLE_PREFIX = "sample-"
#: The prefix of the prompt sets holding every prompt source but one (``all-but-<source>``): the cross-source
#: fold that holds ``<source>`` out fits on it where the shipped calibration fits on the all-prompts set.
ALL_BUT = "all-but-"
SCHEMES = ("lolo", "cross_source")
#: Sub-panel sizes validated besides each case's full panel, with up to :data:`PANEL_DRAWS` seeded draws of
#: each (distinct subsets of the full panel), on the all-prompts set and every random sample. Tested, never
#: fitted on; a sub-panel case's prompt set is named ``<prompt set>~panel-<size>-<draw>``.
PANEL_SIZES = (2, 3)
PANEL_DRAWS = 4
PANEL_MARK = "~panel-"
#: A decision rule with :func:`forensics.weighing.decide`'s signature (the shipped one, or a variant a
#: benchmark measures against it).
DecisionRule = Callable[..., dict[str, Any]]


@dataclass
class Benchmark:
    labels: pd.DataFrame
    prompt_keys: list[str]
    prompts: list[str]
    responses: dict[str, list[str]]
    data_sha256: str
    files: dict[str, str] = field(default_factory=dict)  # file name -> sha256, as read
    origins: list[str] = field(default_factory=list)  # each prompt's source (the ``dataset`` field)
    openings: dict[str, np.ndarray] = field(default_factory=dict)

    def prompt_sets(self) -> dict[str, np.ndarray]:
        """Prompt indices per prompt set: every prompt, each prompt source when there are at least two, the
        union of every source but one (``all-but-<source>``) when there are at least three, and
        :data:`SAMPLE_DRAWS` seeded random samples of each of :data:`SAMPLE_SIZES` prompts (sorted indices;
        named ``sample-<size>-<draw>``) where the benchmark holds at least twice that many."""
        n = len(self.prompt_keys)
        sets = {ALL_PROMPTS: np.arange(n)}
        origins = np.asarray(self.origins if len(self.origins) == n else [""] * n)
        named = sorted(set(origins.tolist()) - {""})
        if len(named) > 1:
            for origin in named:
                sets[origin] = np.flatnonzero(origins == origin)
        if len(named) > 2:
            for origin in named:
                sets[ALL_BUT + origin] = np.flatnonzero(np.isin(origins, [o for o in named if o != origin]))
        for size in SAMPLE_SIZES:
            if 2 * size > n:
                continue
            for draw in range(1, SAMPLE_DRAWS + 1):
                chosen = np.random.default_rng([size, draw]).choice(n, size=size, replace=False)
                sets[f"{SAMPLE_PREFIX}{size}-{draw}"] = np.sort(chosen)
        return sets


def is_sample(prompt_set: str) -> bool:
    """Whether a prompt set is a random sample (tested, never fitted on; see :data:`SAMPLE_SIZES`)."""
    return prompt_set.startswith(SAMPLE_PREFIX)


def is_subpanel(prompt_set: str) -> bool:
    """Whether a case was scored with a sub-panel of its references (tested only; :data:`PANEL_SIZES`)."""
    return PANEL_MARK in prompt_set


def subpanel_size(prompt_set: str) -> int:
    """The number of references of a sub-panel case (from its name ``<set>~panel-<size>-<draw>``)."""
    return int(prompt_set.split(PANEL_MARK, 1)[1].split("-", 1)[0])


def is_all_but(prompt_set: str) -> bool:
    """Whether a prompt set is the union of every prompt source but one (:data:`ALL_BUT`)."""
    return prompt_set.startswith(ALL_BUT)


def never_fitted(frame: pd.DataFrame) -> pd.Series:
    """Which rows of a pair or case table are only tested, never fitted on: random samples and sub-panels."""
    return frame["set"].map(lambda s: is_sample(s) or is_subpanel(s)).astype(bool)


def pooled(frame: pd.DataFrame) -> pd.Series:
    """Which rows the pooled figures and the shipped calibration take: the all-prompts set and the prompt
    sources (samples, sub-panels and the ``all-but-<source>`` sets re-use their answers)."""
    return ~never_fitted(frame) & ~frame["set"].map(is_all_but).astype(bool)


def size_group(prompt_set: str) -> str:
    """The name a prompt set is reported under: its own, or ``sample-<size>`` for every draw of a size."""
    return prompt_set.rsplit("-", 1)[0] if is_sample(prompt_set) else prompt_set


def prompt_sources(prompt_sets: list[str]) -> list[str]:
    """The prompt sets that are prompt sources (neither every prompt, a union of sources, a random sample nor a
    sub-panel)."""
    return sorted(s for s in prompt_sets
                  if s != ALL_PROMPTS and not is_all_but(s) and not is_sample(s) and not is_subpanel(s))


def subpanels(panel: list[str], seed: int) -> list[tuple[str, list[str]]]:
    """(name suffix, members) of the seeded sub-panels a case is also scored with (:data:`PANEL_SIZES`).

    Up to :data:`PANEL_DRAWS` distinct subsets of each size smaller than the full panel, drawn with ``seed``
    (the suspect's row in the labels) so every prompt set of one case uses the same sub-panels.
    """
    out = []
    for size in PANEL_SIZES:
        if size >= len(panel):
            continue
        subsets = list(itertools.combinations(panel, size))
        rng = np.random.default_rng([size, seed])
        chosen = sorted(rng.choice(len(subsets), size=min(PANEL_DRAWS, len(subsets)), replace=False))
        out += [(f"{PANEL_MARK}{size}-{draw}", list(subsets[i])) for draw, i in enumerate(chosen, start=1)]
    return out


# ----------------------------------------------------------------------------------------- loading

def lineage_of(row: pd.Series) -> str:
    """The lineage label: the ``lineage`` column if given, else the first word of the file name."""
    given = row.get("lineage")
    if isinstance(given, str) and given.strip():
        return given.strip().lower()
    return re.split(r"[-_.\s]", Path(str(row["file"])).stem.lower())[0]


def teacher_matches(label: str, teacher_name: str) -> bool:
    """Whether a documented teacher (``"x-4"``, ``"mixed: a and b"``) names this teacher.

    ``teacher_name`` holds the teacher's aliases separated by ``|`` (see :func:`teacher_aliases`). A label
    names a teacher when an alias equals it or extends it with a version suffix (label ``x-4`` matches
    ``x-4-0314`` but not ``x-40``).
    """
    aliases = [a for a in str(teacher_name).lower().split("|") if a]
    for part in re.split(r"[,:;]|\band\b|\bor\b", str(label).lower()):
        part = part.strip()
        if part and any(a == part or a.startswith(part + "-") or a.startswith(part + "_") for a in aliases):
            return True
    return False


def teacher_aliases(model: str, stem: str) -> str:
    """Names a teacher may be documented under: the file's stem and every word-suffix of the model column.

    ``"Vendor Model 2"`` in file ``model-2.json`` gives ``model-2|vendor-model-2|model-2|2``: a label
    ``model-2`` then matches whichever way the labels file spells the model.
    """
    words = str(model).split()
    suffixes = ["-".join(words[i:]).lower() for i in range(len(words))]
    return "|".join(dict.fromkeys([stem.lower(), *suffixes]))


def load_labels(labels_csv: Path) -> pd.DataFrame:
    if not labels_csv.exists():
        raise InputError("labels file not found", path=labels_csv, fix="give the path of LABELS.csv")
    labels = pd.read_csv(labels_csv, dtype=str, keep_default_na=False)
    missing = [c for c in REQUIRED_COLUMNS if c not in labels.columns]
    if missing:
        raise InputError(f"missing column(s) {', '.join(missing)}", path=labels_csv, line=1,
                         fix=f"the header needs {', '.join(REQUIRED_COLUMNS)}")
    labels["name"] = [Path(f).stem for f in labels["file"]]
    labels["lineage"] = [lineage_of(r) for _, r in labels.iterrows()]
    model_col = labels["model"] if "model" in labels.columns else labels["name"]
    labels["teacher_name"] = [teacher_aliases(m, n) for m, n in zip(model_col, labels["name"], strict=True)]
    return labels.sort_values("name", kind="stable").reset_index(drop=True)


def load_benchmark(labels_csv: Path, max_response_chars: int = 20000) -> Benchmark:
    """Read every labelled file and join them on the normalised prompt (prompts all answered, non-empty)."""
    from forensics.exchanges import read_exchanges, text_prompt_key

    labels = load_labels(labels_csv)
    folder = labels_csv.parent
    frames, origins, files = {}, {}, {}
    digest = hashlib.sha256(METHOD_VERSION.encode())
    digest.update(labels_csv.read_bytes())
    for _, row in labels.iterrows():
        read = read_exchanges(folder / row["file"], max_response_chars=max_response_chars)
        digest.update(read.sha256.encode())
        files[row["file"]] = read.sha256
        frame = read.frame[~read.frame["empty"].astype(bool)]
        frames[row["name"]] = dict(zip(frame["prompt_norm"], zip(frame["prompt"], frame["response"], strict=True),
                                       strict=True))
        if "dataset" in frame.columns:
            for prompt, origin in zip(frame["prompt_norm"], frame["dataset"], strict=True):
                if isinstance(origin, str) and origin:
                    origins.setdefault(prompt, origin)
    common = sorted(set.intersection(*(set(f) for f in frames.values())), key=text_prompt_key)
    keys = [text_prompt_key(p) for p in common]
    first = labels["name"].iloc[0]
    return Benchmark(labels=labels, prompt_keys=keys, prompts=[frames[first][p][0] for p in common],
                     responses={n: [f[p][1] for p in common] for n, f in frames.items()},
                     data_sha256=digest.hexdigest(), files=dict(sorted(files.items())),
                     origins=[origins.get(p, "") for p in common])


def embed_benchmark(bench: Benchmark, model: str | None = None, opening_words: int | None = None,
                    backend: str | None = None) -> None:
    """Embed every labelled answer's opening, as the pipeline's step 01 does (the semantic line's input).

    Whole answers are not embedded: the fused score does not use them (the pipeline reports them beside
    the line), and they are most of the embedding cost. ``backend`` defaults to the one the pipeline
    embeds openings with whatever the case's backend (:data:`forensics.embeddings.OPENINGS_BACKEND`);
    another is for what-if measurements (``benchmarks/bench_onnx.py``).
    """
    from forensics.embeddings import OPENINGS_BACKEND, Embedder, corpus_texts, split_by_source

    embedder = Embedder(model, backend=backend or OPENINGS_BACKEND)
    names = sorted(bench.responses)
    every = AlignedCorpus(bench.prompt_keys, bench.prompts, {n: bench.responses[n] for n in names},
                          names[0], [], names[1:])
    texts = corpus_texts(every, opening_words) if opening_words else corpus_texts(every)
    bench.openings = split_by_source(every, embedder.embed(texts, progress="embedding the benchmark"))
    print(embedder.stats_line(), file=sys.stderr)


# ----------------------------------------------------------------------------------------- scoring

def family_of_teachers(labels: pd.DataFrame) -> dict[str, str]:
    """Teacher name -> its family (the ``family`` column; a teacher without one is its own family)."""
    teachers = labels[labels["role"] == "teacher"]
    column = teachers["family"] if "family" in teachers.columns else pd.Series("", index=teachers.index)
    return {n: (f.strip() if isinstance(f, str) and f.strip() else n)
            for n, f in zip(teachers["name"], column, strict=True)}


def benchmark_cases(bench: Benchmark, prompts: np.ndarray | None = None) -> list[AlignedCorpus]:
    """One case per student and control, on the given prompt indices (default: every prompt)."""
    return [corpus for _, corpus in benchmark_panels(bench, prompts)]


def benchmark_panels(bench: Benchmark, prompts: np.ndarray | None = None,
                     with_subpanels: bool = False) -> list[tuple[str, AlignedCorpus]]:
    """(suffix, case): :func:`benchmark_cases` with its full panel (suffix ``""``) and, with
    ``with_subpanels``, each case again with each of its :func:`subpanels`."""
    labels = bench.labels
    idx = np.arange(len(bench.prompt_keys)) if prompts is None else np.asarray(prompts)
    keys, texts = [bench.prompt_keys[i] for i in idx], [bench.prompts[i] for i in idx]
    teachers = list(labels.loc[labels["role"] == "teacher", "name"])
    cases = []
    for seed, (_, row) in enumerate(labels.iterrows()):
        if row["role"] not in SUSPECT_ROLES:
            continue
        panel = list(labels.loc[labels["role"].isin(PANEL_ROLES) & (labels["lineage"] != row["lineage"])
                                & (labels["name"] != row["name"]), "name"])
        for suffix, members in [("", panel), *(subpanels(panel, seed) if with_subpanels else [])]:
            sources = [row["name"], *teachers, *members]
            cases.append((suffix, AlignedCorpus(keys, texts, {s: [bench.responses[s][i] for i in idx]
                                                              for s in sources}, row["name"], teachers, members)))
    return cases


def score_case(corpus: AlignedCorpus, openings: dict[str, np.ndarray], params: Parameters) -> LineScores:
    """The pipeline's scoring (steps 02-04 and 06) applied in memory to one benchmark case: every line.

    No bootstrap: the decision rests on calibrated LRs, not on resampling, so the validation skips the
    replicates a case run draws for its intervals.
    """
    from forensics.evidence import score_lines
    from forensics.markers import marker_rates
    from forensics.stylometry import stylometric_similarities
    from forensics.wording import measure

    no_boot = np.empty((0, len(corpus.prompt_keys)), dtype=int)
    semantic = semantic_measurement(corpus, openings, params, no_boot)
    stylo = {"sources": corpus.sources, "families": stylometric_similarities(corpus, None, params)}
    markers = {"teachers": marker_rates(corpus, None, params)}
    wording = measure(corpus, no_boot, params.opening_words)
    return score_lines(semantic, stylo, markers, wording, corpus.suspect, corpus.teachers, corpus.references)


def semantic_measurement(corpus: AlignedCorpus, openings: dict[str, np.ndarray], params: Parameters,
                         boot_idx: np.ndarray | None = None) -> SemanticMatrices:
    """Step 02's measurement in memory: the openings' similarity matrices of one benchmark case (without
    ``boot_idx``, no replicates)."""
    from forensics.semantic import paired_similarity, semantic_matrices

    boot_idx = np.empty((0, len(corpus.prompt_keys)), dtype=int) if boot_idx is None else boot_idx
    per_prompt = paired_similarity(openings, corpus)
    return semantic_matrices(corpus, per_prompt, boot_idx, opening_words=params.opening_words)


def formatting_matrices(bench: Benchmark) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per source: the formatting features of every answer (numerators, denominators), computed once.

    A response's formatting features depend on that response and its prompt alone, so every case and
    prompt set of the benchmark can share them (the other stylometric families choose their features
    from each case's corpus and cannot).
    """
    from forensics.stylometry import formatting_matrix

    return {s: formatting_matrix(bench.responses[s], bench.prompts) for s in sorted(bench.responses)}


def wording_overlap(bench: Benchmark, opening_words: int | None) -> BenchmarkOverlap:
    """Every two labelled sources' per-prompt overlap of answer openings (:mod:`forensics.wording`), once.

    An answer's term set depends on that answer alone, so a case's raw overlaps are a selection of these
    (:meth:`BenchmarkOverlap.for_case`); the panel consensus is removed per case, as the pipeline does.
    """
    from forensics.wording import opening_terms, per_prompt_overlap

    names = sorted(bench.responses)
    terms = [[opening_terms(text, opening_words) for text in bench.responses[n]] for n in names]
    return BenchmarkOverlap(names=names, per_prompt=per_prompt_overlap(terms))


@dataclass
class BenchmarkOverlap:
    """(S, S, n) per-prompt overlaps of every labelled source (sorted names), before consensus removal."""

    names: list[str]
    per_prompt: np.ndarray

    def for_case(self, corpus: AlignedCorpus, idx: np.ndarray) -> np.ndarray:
        """The raw overlaps of one case's sources (case order) on its prompts."""
        pos = [self.names.index(s) for s in corpus.sources]
        return self.per_prompt[np.ix_(pos, pos, np.asarray(idx))]


def score_fused_lines(corpus: AlignedCorpus, openings: dict[str, np.ndarray],
                      formatting: dict[str, tuple[np.ndarray, np.ndarray]], overlap: np.ndarray,
                      params: Parameters, boot_idx: np.ndarray | None = None,
                      semantic: SemanticMatrices | None = None) -> LineScores:
    """The fused lines only (semantic, wording and formatting), with the pipeline's functions: the same z,
    bootstrap replicates and fused scores as :func:`score_case`, at a fraction of the cost (tested equal).

    ``overlap``: the case's raw per-prompt overlaps of openings (:meth:`BenchmarkOverlap.for_case`).
    ``semantic``: the case's :func:`semantic_measurement` with the same ``boot_idx``, when the caller has
    already made it (it is also what candidates are compared with).
    """
    from scipy import sparse

    from forensics import stylometry
    from forensics.wording import overlap_matrices

    sources, n = corpus.sources, len(corpus.prompt_keys)
    boot_idx = np.empty((0, n), dtype=int) if boot_idx is None else boot_idx
    measured = semantic if semantic is not None else semantic_measurement(corpus, openings, params, boot_idx)
    embedding = weighing.embedding_lines(measured)
    names = [f.name for f in stylometry.FORMATTING_FEATURES]
    block = stylometry.FeatureBlock(names=names, counts={s: sparse.csr_matrix(formatting[s][0]) for s in sources},
                                    totals={s: formatting[s][1] for s in sources},
                                    scale=stylometry.format_scale(stylometry.FORMATTING_FEATURES))
    weights = all_weights(boot_idx, n)
    pooled = stylometry.pooled_profiles(block, sources, weights)
    sim = -stylometry.cosine_delta(stylometry.zscore(pooled, stylometry.StyloParams().z_ddof))
    stylo = weighing.stylometry_lines({"sources": sources, "families": {"formatting": {"sim": sim[0],
                                                                                      "boot": sim[1:]}}},
                                      corpus.suspect, corpus.teachers, corpus.references)
    words = overlap_matrices(corpus, overlap, boot_idx, params.opening_words)
    wording = weighing.wording_lines(words, corpus.suspect, corpus.teachers, corpus.references)
    from forensics.evidence import assemble

    return assemble({"embedding": embedding, "wording": wording, "stylometry": stylo}, corpus.teachers)


def scored_cases(bench: Benchmark) -> Iterator[tuple[str, np.ndarray, AlignedCorpus]]:
    """(prompt set, its prompt indices, case) for every case the validation scores: each prompt set with
    full panels, and the all-prompts set and the samples again with each sub-panel (``<set>~panel-k-d``)."""
    for base_set, idx in bench.prompt_sets().items():
        subpanel_sets = base_set == ALL_PROMPTS or is_sample(base_set)
        for suffix, corpus in benchmark_panels(bench, idx, with_subpanels=subpanel_sets):
            yield base_set + suffix, idx, corpus


def benchmark_tables(bench: Benchmark, params: Parameters, every_line: bool = True
                     ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(pairs, preferences): the tables `forensics calibrate` fits and decides on, in one pass over
    :func:`scored_cases`, each case's semantic measurement made once for both.

    ``pairs``: one row per (prompt set, suspect, teacher): label, lineage, family, line z, the fused score.
    Every prompt set gets the fused lines; with ``every_line``, the all-prompts set also every reported line
    (markers, word and character families), for the diagnosis of misses (:func:`line_leanings`).
    ``preferences``: one row per (prompt set, suspect, candidate a, candidate b), every ordered pair of
    candidates: the comparison statistic (:func:`forensics.weighing.comparison_statistic`), as the pipeline
    computes it from step 02's measurement and the scoring panel.
    """
    labels = bench.labels.set_index("name")
    family = family_of_teachers(bench.labels)
    formatting = formatting_matrices(bench)
    overlap = wording_overlap(bench, params.opening_words)
    rows, preferences = [], []
    for prompt_set, idx, corpus in scored_cases(bench):
        if "~" not in prompt_set:
            print(f"scoring {corpus.suspect} on {prompt_set} ({len(idx)} prompts)", file=sys.stderr)
        openings = {s: bench.openings[s][idx] for s in corpus.sources}
        fmt = {s: (formatting[s][0][idx], formatting[s][1][idx]) for s in corpus.sources}
        measured = semantic_measurement(corpus, openings, params)
        scored = score_fused_lines(corpus, openings, fmt, overlap.for_case(corpus, idx), params, semantic=measured)
        every = score_case(corpus, openings, params) if every_line and prompt_set == ALL_PROMPTS else None
        documented = labels.loc[corpus.suspect, "trained_on_outputs_of"]
        role = labels.loc[corpus.suspect, "role"]
        panel_lines = panel_families(corpus.references, {r: labels.loc[r, "lineage"] for r in corpus.references})
        for t in corpus.teachers:
            row = {"set": prompt_set, "n_prompts": len(idx), "suspect": corpus.suspect, "teacher": t,
                   "family": family[t], "role": role, "lineage": labels.loc[corpus.suspect, "lineage"],
                   "hp": int(role == "student" and teacher_matches(documented, labels.loc[t, "teacher_name"])),
                   **{f"z_{line}": scored.line_z[line][t] for line in sorted(scored.line_z)},
                   "score": scored.fused[t], "n_panel": len(corpus.references),
                   "n_panel_lines": panel_lines}
            if every is not None:
                row["z_markers"] = every.line_z["markers"][t]
                row.update({f"z_family_{fam}": v["z"]
                            for fam, v in sorted(every.stylometry[t]["families"].items())})
            rows.append(row)
        preferences += [{"set": prompt_set, "suspect": corpus.suspect, "a": a, "b": b,
                         "statistic": weighing.comparison_statistic(measured, scored.fused, a, b)}
                        for a, b in itertools.permutations(corpus.teachers, 2)]
    return (with_rival_leads(pd.DataFrame(rows)),
            pd.DataFrame(preferences, columns=["set", "suspect", "a", "b", "statistic"]))


def with_rival_leads(pairs: pd.DataFrame) -> pd.DataFrame:
    """``pairs`` with each pair's ``rival_lead`` (:func:`forensics.weighing.rival_leads`, the candidates
    grouped into families as the pipeline groups them), which the calibration's rival discount weighs."""
    leads = pd.Series(np.nan, index=pairs.index, dtype=float)
    for _, group in pairs.groupby(["set", "suspect"], sort=True):
        teachers = list(group["teacher"])
        found = weighing.rival_leads(dict(zip(teachers, group["score"], strict=True)),
                                     family_groups(teachers, dict(zip(teachers, group["family"], strict=True))))
        leads[group.index] = [found[t][0] for t in teachers]
    return pairs.assign(rival_lead=leads)


def pair_table(bench: Benchmark, params: Parameters, every_line: bool = True) -> pd.DataFrame:
    """The pairs of :func:`benchmark_tables`: one row per (prompt set, suspect, teacher)."""
    return benchmark_tables(bench, params, every_line)[0]


def family_table(pairs: pd.DataFrame) -> pd.DataFrame:
    """One row per (prompt set, suspect, family): the best member's score and rival lead (as the pipeline
    scores families)."""
    rows = []
    for (prompt_set, suspect), group in pairs.groupby(["set", "suspect"], sort=True):
        scores = dict(zip(group["teacher"], group["score"], strict=True))
        groups = family_groups(list(group["teacher"]), dict(zip(group["teacher"], group["family"],
                                                                             strict=True)))
        hp = dict(zip(group["teacher"], group["hp"], strict=True))
        leads = dict(zip(group["teacher"], group["rival_lead"], strict=True))
        first = group.iloc[0]
        for fam, (score, best) in weighing.family_scores(scores, groups).items():
            rows.append({"set": prompt_set, "n_prompts": first["n_prompts"], "suspect": suspect, "family": fam,
                         "members": ", ".join(groups[fam]), "n_members": len(groups[fam]), "best_member": best,
                         "role": first["role"],
                         "lineage": first["lineage"], "hp": int(any(hp[m] for m in groups[fam])),
                         "score": score, "rival_lead": leads[best]})
    return pd.DataFrame(rows)


def preference_lookup(preferences: pd.DataFrame) -> dict[tuple[str, str, str, str], float]:
    """(set, suspect, a, b) -> the comparison statistic."""
    keys = zip(preferences["set"], preferences["suspect"], preferences["a"], preferences["b"], strict=True)
    return dict(zip(keys, preferences["statistic"].astype(float), strict=True))


def comparison_table(families: pd.DataFrame, preferences: pd.DataFrame) -> pd.DataFrame:
    """Candidate-vs-candidate pairs: for each student, each documented family A against each other family B.

    The statistic of A's best member against B's (as the pipeline compares families) is an Hp pair of the
    comparison ("trained on A rather than B"), and the mirror (B's against A's, the same with the sign
    changed) an Hd pair, so the fitted calibration is antisymmetric. A mixed student's two documented
    families are not compared with each other (both are right). Pairs without a statistic (a panel with no
    spread of the semantic preference) are left out, as the pipeline reads them as no evidence.
    """
    statistic = preference_lookup(preferences)
    rows = []
    students = families[families["role"] == "student"]
    for (prompt_set, suspect), group in students.groupby(["set", "suspect"], sort=True):
        documented = group[group["hp"] == 1]
        others = group[group["hp"] == 0]
        for a in documented.itertuples():
            for b in others.itertuples():
                base = {"set": prompt_set, "n_prompts": a.n_prompts, "suspect": suspect, "role": a.role,
                        "lineage": a.lineage}
                forward = statistic[(prompt_set, suspect, a.best_member, b.best_member)]
                backward = statistic[(prompt_set, suspect, b.best_member, a.best_member)]
                if np.isfinite(forward) and np.isfinite(backward):
                    rows.append({**base, "a": a.family, "b": b.family, "statistic": forward, "hp": 1})
                    rows.append({**base, "a": b.family, "b": a.family, "statistic": backward, "hp": 0})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------- calibration

@dataclass
class LevelTables:
    """The labelled pairs of each calibrated level (:data:`forensics.calibration.LEVELS`)."""

    teacher: pd.DataFrame
    family: pd.DataFrame
    comparison: pd.DataFrame
    #: every case's comparison statistic between every two candidates (:func:`benchmark_tables`): what the
    #: decisions compare candidates with, labelled or not
    preferences: pd.DataFrame

    def tables(self) -> dict[str, tuple[pd.DataFrame, str]]:
        return {"teacher": (self.teacher, "score"), "family": (self.family, "score"),
                "comparison": (self.comparison, "statistic")}


def fit_levels(tables: LevelTables, keep: Callable[[pd.DataFrame], pd.Series]) -> dict[str, Calibration]:
    """One calibration per level on the rows ``keep`` selects, random samples and sub-panels excepted (they
    are tested, never fitted on); ELUB bounds from one prompt set's worth. ``keep`` decides about the
    ``all-but-<source>`` sets (:func:`folds`; the shipped fit keeps :func:`pooled` rows).

    The family calibration is fitted on every family, those of one member included, although it weighs
    only families of several (:func:`transform_level`): a one-member family's score is the same best-member
    statistic, and fitting without them (tried) left the family level fewer labelled pairs and a higher
    Cllr (``benchmarks/bench_decision_variants.py``). The teacher and family levels fit the rival discount
    on the rows' rival leads (:func:`rival_leads_of`)."""
    out = {}
    for level, (frame, column) in tables.tables().items():
        train = frame[keep(frame) & ~never_fitted(frame)]
        out[level] = Calibration.fit(train[column].to_numpy(), train["hp"].to_numpy(),
                                     leads=rival_leads_of(train, level), groups=train["set"].to_numpy())
    return out


def rival_leads_of(frame: pd.DataFrame, level: str) -> np.ndarray | None:
    """The rows' rival leads, which the teacher and family levels weigh (the comparison level compares two
    candidates directly and has none)."""
    return None if level == "comparison" else frame["rival_lead"].to_numpy(dtype=float)


def transform_level(frame: pd.DataFrame, level: str, column: str, cals: dict[str, Calibration]) -> np.ndarray:
    """log10 LRs of a level's rows, as the pipeline weighs them: a family of one member carries its member's
    teacher-level LR (:func:`forensics.calibration.family_level`), every other row its level's."""
    values = frame[column].to_numpy(dtype=float)
    leads = rival_leads_of(frame, level)
    if level != "family":
        return cals[level].transform(values, leads)
    weighed_at = np.array([family_level(int(n)) for n in frame["n_members"]], dtype=object)
    out = np.empty(len(values))
    for lvl in sorted(set(weighed_at)):
        mask = weighed_at == lvl
        out[mask] = cals[lvl].transform(values[mask], None if leads is None else leads[mask])
    return out


def folds(tables: LevelTables, scheme: str) -> list[tuple[Callable[[pd.DataFrame], pd.Series],
                                                          Callable[[pd.DataFrame], pd.Series]]]:
    """(train, test) row selectors of a validation scheme (module docstring): leave-one-lineage-out fits on
    the other lineages' all-prompts set and prompt sources, as the shipped calibration fits; a cross-source
    fold on the other lineages' other sources and their union (where scored)."""
    lineages = sorted(tables.teacher["lineage"].unique())
    sources = prompt_sources(list(tables.teacher["set"].unique()))
    out = []
    for lineage in lineages:
        if scheme == "lolo":
            out.append((lambda f, lin=lineage: (f["lineage"] != lin) & pooled(f),
                        lambda f, lin=lineage: f["lineage"] == lin))
            continue
        for held in sources:
            seen = [s for s in sources if s != held] + [ALL_BUT + held]
            out.append((lambda f, lin=lineage, s=seen: (f["lineage"] != lin) & f["set"].isin(s),
                        lambda f, lin=lineage, h=held: (f["lineage"] == lin) & (f["set"] == h)))
    return out


def held_out(tables: LevelTables, scheme: str, band: tuple[float, float],
             rule: DecisionRule = weighing.decide) -> tuple[LevelTables, pd.DataFrame]:
    """Every tested row with ``log10_lr`` and ``supports`` from calibrations fitted without it, and each
    tested case's conclusion, decided with those same calibrations (as the pipeline decides; ``rule`` is
    :func:`forensics.weighing.decide` unless a benchmark measures another rule against it)."""
    parts: dict[str, list[pd.DataFrame]] = {level: [] for level in LEVELS}
    cases = []
    for train, test in folds(tables, scheme):
        cals = fit_levels(tables, train)
        tested = {}
        for level, (frame, column) in tables.tables().items():
            rows = frame[test(frame)].copy()
            rows["log10_lr"] = transform_level(rows, level, column, cals)
            rows["supports"] = [supports(v, band) for v in rows["log10_lr"]]
            rows["scheme"] = scheme
            parts[level].append(rows)
            tested[level] = rows
        cases += case_outcomes(tested["teacher"], tested["family"], cals["comparison"], band, tables.preferences,
                               rule)
    done = LevelTables(*(pd.concat(parts[level], ignore_index=True) for level in LEVELS),
                       preferences=tables.preferences)
    return done, pd.DataFrame(cases).sort_values(["set", "suspect"], kind="stable").reset_index(drop=True)


def case_outcomes(teachers: pd.DataFrame, families: pd.DataFrame, comparison: Calibration,
                  band: tuple[float, float], preferences: pd.DataFrame,
                  rule: DecisionRule = weighing.decide) -> list[dict[str, Any]]:
    """Per (prompt set, suspect): the pipeline's decision and whether it matches the documented truth.

    A student is right at family level when the attributed family is one it is documented to have learned
    from (either one, for a mixed student), and at teacher level when the attributed teacher is; a control
    is right when nothing is attributed, and "clean" when no teacher and no family is even supported.
    """
    statistic = preference_lookup(preferences)
    rows = []
    for (prompt_set, suspect), group in teachers.groupby(["set", "suspect"], sort=True):
        def compare(a: str, b: str, key: tuple[str, str] = (prompt_set, suspect)) -> float:
            return comparison.log10_lr_or_zero(statistic[(*key, a, b)])

        fams = families[(families["set"] == prompt_set) & (families["suspect"] == suspect)]
        t_entries = [{"name": r.teacher, "score": r.score, "supports": r.supports} for r in group.itertuples()]
        f_entries = [{"name": r.family, "score": r.score, "supports": r.supports, "best_member": r.best_member,
                      "members": r.members.split(", ")} for r in fams.itertuples()]
        decision = rule(t_entries, f_entries, compare, band,
                        enough_references=int(group["n_panel_lines"].iloc[0]) >= MIN_PANEL_FAMILIES)
        documented_t = set(group.loc[group["hp"] == 1, "teacher"])
        documented_f = set(fams.loc[fams["hp"] == 1, "family"])
        first = group.iloc[0]
        student = first["role"] == "student"
        clean = not decision["candidates_supported"] and not decision["families_supported"]
        rows.append({
            "scheme": first["scheme"], "set": prompt_set, "n_prompts": int(first["n_prompts"]),
            "suspect": suspect, "role": first["role"], "lineage": first["lineage"],
            "n_panel": int(first["n_panel"]), "n_panel_lines": int(first["n_panel_lines"]),
            "documented": ", ".join(sorted(documented_t)) or "none",
            "documented_family": ", ".join(sorted(documented_f)) or "none",
            "attributed": decision["attributed_teacher"] or "none",
            "attributed_family": decision["attributed_family"] or "none", "outcome": decision["outcome"],
            "supported": ", ".join(sorted(decision["candidates_supported"])) or "none",
            "families_supported": ", ".join(sorted(decision["families_supported"])) or "none",
            "correct": decision["attributed_teacher"] in documented_t if student
            else decision["attributed_teacher"] is None,
            "correct_family": decision["attributed_family"] in documented_f if student
            else decision["attributed_family"] is None,
            "documented_supported": bool(documented_f & set(decision["families_supported"])) if student else clean,
        })
    return rows


def line_leanings(pairs: pd.DataFrame) -> pd.DataFrame:
    """Per student and per line of evidence (fused or not): the candidate that line ranks first.

    When a student is not attributed to its documented teacher, this shows whether one line disagrees (a
    weakness of the method) or every line prefers another candidate (the outputs look like that teacher's:
    the label may be incomplete, or the student learned from a snapshot or sibling the case lacks).
    """
    lines = [c for c in pairs.columns if c.startswith("z_")]
    rows = []
    for suspect, group in pairs[pairs["role"] == "student"].groupby("suspect", sort=True):
        documented = set(group.loc[group["hp"] == 1, "teacher"])
        row: dict[str, Any] = {"suspect": suspect, "documented": ", ".join(sorted(documented))}
        for line in lines:
            values = group[line].astype(float)
            row[line.removeprefix("z_")] = group["teacher"].iloc[int(np.nanargmax(values))] \
                if values.notna().any() else ""
        top = [row[line.removeprefix("z_")] for line in lines]
        row["lines_favouring_documented"] = f"{sum(t in documented for t in top)} of {len(top)}"
        rows.append(row)
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------- summary

def level_metrics(rows: pd.DataFrame, column: str) -> dict[str, Any]:
    """Discrimination and calibration of one level's held-out LRs: AUC, Cllr, misleading rates, range.

    ``pair_auc`` is the AUC of the LRs as reported (held out, with the rival discount and the bounds: ties at
    a bound count half), ``pair_auc_score`` that of the statistic alone (``column``); until
    panel-relative-fused-v11 the LR was a monotone map of the statistic and only the latter was quoted."""
    from sklearn.metrics import roc_auc_score

    hp, hd = rows[rows["hp"] == 1], rows[rows["hp"] == 0]
    c, c_min = cllr(rows["log10_lr"].to_numpy(), rows["hp"].to_numpy())
    return {"n_pairs": len(rows), "n_hp_pairs": len(hp), "n_hd_pairs": len(hd),
            "pair_auc": rounded(roc_auc_score(rows["hp"], rows["log10_lr"])),
            "pair_auc_score": rounded(roc_auc_score(rows["hp"], rows[column])),
            "cllr": rounded(c), "cllr_min": rounded(c_min),
            "rate_misleading_hp": rounded((hp["log10_lr"] < 0).mean()),
            "rate_misleading_hd": rounded((hd["log10_lr"] > 0).mean()),
            "max_log10_lr": rounded(rows["log10_lr"].max()),
            "min_log10_lr": rounded(rows["log10_lr"].min())}


def case_metrics(cases: pd.DataFrame) -> dict[str, Any]:
    students, controls = cases[cases["role"] == "student"], cases[cases["role"] == "control"]
    return {
        "n_cases": len(cases), "n_students": len(students), "n_controls": len(controls),
        "students_attributed_correctly": int(students["correct"].sum()),
        "students_family_attributed_correctly": int(students["correct_family"].sum()),
        "students_documented_family_supported": int(students["documented_supported"].sum()),
        "students_misattributed_family": int(((students["attributed_family"] != "none")
                                              & ~students["correct_family"]).sum()),
        "false_attributions_controls": int(((controls["attributed"] != "none")
                                            | (controls["attributed_family"] != "none")).sum()),
        "controls_with_a_supported_teacher_or_family": int((~controls["documented_supported"]).sum()),
    }


def summarise_scheme(tables: LevelTables, cases: pd.DataFrame) -> dict[str, Any]:
    """A scheme's figures: per level and per case over the all-prompts set and the prompt sources, then per
    prompt set (case size; full panels), the draws of one sample size together under ``sample-<size>``
    (``n_draws`` says how many; 1 for the other sets), then per sub-panel size over every prompt set
    scored with sub-panels (``per_panel_size``; empty where the scheme tests none)."""
    out: dict[str, Any] = {"levels": {level: level_metrics(frame[pooled(frame)], column)
                                      for level, (frame, column) in tables.tables().items()},
                           "cases": case_metrics(cases[pooled(cases)]), "per_prompt_set": {}, "per_panel_size": {}}
    sub = cases["set"].map(is_subpanel).astype(bool)
    for name, group in cases[~sub].groupby(cases.loc[~sub, "set"].map(size_group), sort=True):
        out["per_prompt_set"][name] = {"n_prompts": int(group["n_prompts"].iloc[0]),
                                       "n_draws": group["set"].nunique(), **_group_metrics(tables, group)}
    full_sizes = tables.teacher.loc[~tables.teacher["set"].map(is_subpanel), "n_panel"] if sub.any() else None
    one_line = cases.loc[sub, "n_panel_lines"] < MIN_PANEL_FAMILIES
    for (size, single), group in cases[sub].groupby([cases.loc[sub, "set"].map(subpanel_size), one_line],
                                                    sort=True):
        out["per_panel_size"][panel_size_key(int(size), bool(single))] = {
            "n_panel": int(size), "one_line": bool(single),
            "full_panels": [int(full_sizes.min()), int(full_sizes.max())],
            "prompt_sets": sorted({size_group(s.split(PANEL_MARK)[0]) for s in group["set"]}),
            **_group_metrics(tables, group)}
    return out


def panel_size_key(n_panel: int, one_line: bool) -> str:
    """The key of a sub-panel size in ``per_panel_size``: its size, and whether its references are all of
    one model line (too few lines to name a candidate, :data:`forensics.case.MIN_PANEL_FAMILIES`)."""
    return f"{n_panel} of one line" if one_line else str(n_panel)


def _group_metrics(tables: LevelTables, cases: pd.DataFrame) -> dict[str, Any]:
    """Case outcomes of a group of cases, with the family level's pair AUC and Cllr on exactly their pairs
    (by prompt set and suspect: one sub-panel's prompt-set name is shared by cases whose sub-panels are of one
    model line and cases whose are of two, which are grouped apart)."""
    keys = set(zip(cases["set"], cases["suspect"], strict=True))
    family = tables.family
    fam = level_metrics(family[[k in keys for k in zip(family["set"], family["suspect"], strict=True)]], "score")
    return {**case_metrics(cases), "family_pair_auc": fam["pair_auc"], "family_cllr": fam["cllr"]}


def summarise(schemes: dict[str, tuple[LevelTables, pd.DataFrame]], bench: Benchmark,
              final: dict[str, Calibration]) -> dict[str, Any]:
    first = next(iter(schemes.values()))[0].teacher
    return {
        "method": METHOD_VERSION,
        "n_prompts": len(bench.prompt_keys),
        "prompt_sets": {k: len(v) for k, v in bench.prompt_sets().items()},
        "n_lineages": int(first["lineage"].nunique()),
        "n_suspects": int(first["suspect"].nunique()),
        "data_sha256": bench.data_sha256,
        "files": bench.files,
        "calibration": {level: {"lower": rounded(c.lower), "upper": rounded(c.upper), "n_hp": c.n_hp,
                                "n_hd": c.n_hd, "rival_slope": rounded(c.rival_slope)}
                        for level, c in final.items()},
        "schemes": {name: summarise_scheme(tables, cases) for name, (tables, cases) in schemes.items()},
    }


def headline(summary: dict[str, Any], scheme: str = "lolo", prompt_set: str = ALL_PROMPTS) -> dict[str, Any]:
    """The figures a report quotes: the scheme's teacher and family levels on one prompt set."""
    sch = summary["schemes"][scheme]
    cases = sch["per_prompt_set"].get(prompt_set, sch["cases"]) if scheme == "lolo" else sch["cases"]
    return {"scheme": scheme, "prompt_set": prompt_set if scheme == "lolo" else "each source held out",
            "teacher": sch["levels"]["teacher"], "family": sch["levels"]["family"],
            "comparison": sch["levels"]["comparison"], "cases": cases}


@dataclass
class ValidationReport:
    summary: dict[str, Any]
    schemes: dict[str, tuple[LevelTables, pd.DataFrame]]
    calibration: CalibrationSet

    def summary_lines(self) -> list[str]:
        s = self.summary
        out = [f"validation ({s['method']}): {s['n_suspects']} labelled suspects, {s['n_lineages']} lineages, "
               f"{s['n_prompts']} prompts; prompt sets: "
               + ", ".join(f"{k} ({v}{f' x{n}' if n > 1 else ''})" for k, (v, n) in _sizes(s["prompt_sets"]).items())]
        for name, sch in s["schemes"].items():
            title = {"lolo": "leave one lineage out", "cross_source": "leave one lineage out, each prompt "
                     "source held out (calibrated on the other sources and their union)"}.get(name, name)
            out.append(f"== {title} ==")
            for level, m in sch["levels"].items():
                out.append(f"{level:>10}: {m['n_pairs']} pairs ({m['n_hp_pairs']} Hp), AUC {m['pair_auc']:.3f} "
                           f"(of the score alone {m['pair_auc_score']:.3f}), "
                           f"Cllr {m['cllr']:.3f} (min {m['cllr_min']:.3f}), misleading {m['rate_misleading_hp']:.1%} "
                           f"of Hp / {m['rate_misleading_hd']:.1%} of Hd, log10 LR "
                           f"[{m['min_log10_lr']:+.2f}, {m['max_log10_lr']:+.2f}]")
            for prompt_set, c in sch["per_prompt_set"].items():
                draws = f", {c['n_draws']} random draws" if c.get("n_draws", 1) > 1 else ""
                out.append(f"{prompt_set:>20} ({c['n_prompts']} prompts{draws}): students -> documented family "
                           f"{c['students_family_attributed_correctly']}/{c['n_students']}, -> documented "
                           f"teacher {c['students_attributed_correctly']}/{c['n_students']}, wrong family "
                           f"{c['students_misattributed_family']}; controls attributed "
                           f"{c['false_attributions_controls']}/{c['n_controls']}, with anything supported "
                           f"{c['controls_with_a_supported_teacher_or_family']}/{c['n_controls']}; family AUC "
                           f"{c['family_pair_auc']:.3f}")
            for size, c in sch.get("per_panel_size", {}).items():
                out.append(f"{'panel of ' + size:>20} (sub-panels of the full {c['full_panels'][0]}-"
                           f"{c['full_panels'][1]}, on {', '.join(c['prompt_sets'])}): students -> documented "
                           f"family {c['students_family_attributed_correctly']}/{c['n_students']}, wrong family "
                           f"{c['students_misattributed_family']}; controls attributed "
                           f"{c['false_attributions_controls']}/{c['n_controls']}, with anything supported "
                           f"{c['controls_with_a_supported_teacher_or_family']}/{c['n_controls']}; family AUC "
                           f"{c['family_pair_auc']:.3f}")
        for level, c in s["calibration"].items():
            out.append(f"shipped {level} calibration: log10 LR bounded to [{c['lower']:+.2f}, {c['upper']:+.2f}] "
                       f"({c['n_hp']} Hp / {c['n_hd']} Hd pairs over the all-prompts set and each prompt "
                       f"source)")
        return out


def _sizes(prompt_sets: dict[str, int]) -> dict[str, tuple[int, int]]:
    """Prompt set sizes as reported: each sample size once, with its number of draws."""
    out: dict[str, tuple[int, int]] = {}
    for name, n in prompt_sets.items():
        out[size_group(name)] = (n, out.get(size_group(name), (n, 0))[1] + 1)
    return out


def validate(labels_csv: Path, params: Parameters | None = None, model: str | None = None) -> ValidationReport:
    params = params or Parameters()
    bench = load_benchmark(Path(labels_csv), params.max_response_chars)
    embed_benchmark(bench, model, params.opening_words)
    pairs, preferences = benchmark_tables(bench, params)
    families = family_table(pairs)
    tables = LevelTables(pairs, families, comparison_table(families, preferences), preferences)
    band = params.inconclusive_band
    schemes = {scheme: held_out(tables, scheme, band) for scheme in SCHEMES
               if scheme == "lolo" or len(prompt_sources(list(bench.prompt_sets()))) >= 2}
    final = fit_levels(tables, pooled)
    summary = summarise(schemes, bench, final)
    cal = CalibrationSet(levels=final, data_sha256=bench.data_sha256,
                         description=f"{METHOD_VERSION}; fitted on every labelled pair of {labels_csv.name} "
                                     f"over the all-prompts set and each prompt source")
    fam = schemes["lolo"][0].family
    fam = fam[fam["set"] == ALL_PROMPTS]
    tippett = {"level": "family", "hp": [rounded(v) for v in sorted(fam.loc[fam["hp"] == 1, "log10_lr"])],
               "hd": [rounded(v) for v in sorted(fam.loc[fam["hp"] == 0, "log10_lr"])]}
    quoted = ("n_controls", "false_attributions_controls", "controls_with_a_supported_teacher_or_family",
              "n_students", "students_family_attributed_correctly", "students_misattributed_family")
    lolo = summary["schemes"]["lolo"]
    # reports quote the size nearest a case's: the unions of all sources but one are single, non-random
    # draws of the benchmark's prompts, so reports keep to the all-prompts set, the sources and the samples
    sizes = {k: {f: v[f] for f in ("n_prompts", *quoted)} for k, v in lolo["per_prompt_set"].items()
             if not is_all_but(k)}
    panels = {k: {f: v[f] for f in ("n_panel", "one_line", "full_panels", *quoted)}
              for k, v in lolo["per_panel_size"].items()}
    cal.metrics = {"summary": {**headline(summary), "tippett": tippett, "per_prompt_set": sizes,
                               "per_panel_size": panels},
                   "cross_source": headline(summary, "cross_source") if "cross_source" in summary["schemes"]
                   else None,
                   "labelled_answers": answer_fingerprints({name: (role, bench.responses[name]) for name, role
                                                            in zip(bench.labels["name"], bench.labels["role"],
                                                                   strict=True)})}
    return ValidationReport(summary, schemes, cal)


#: The files :func:`write_report` writes into the validation folder.
VALIDATION_FILES = ("pairs.csv", "families.csv", "comparisons.csv", "cases.csv", "leanings.csv",
                    "summary.json", "summary.txt", "tippett.png")


def write_report(report: ValidationReport, out_dir: Path) -> None:
    from forensics import figures

    out_dir.mkdir(parents=True, exist_ok=True)
    tables = {level: pd.concat([t.tables()[level][0] for t, _ in report.schemes.values()], ignore_index=True)
              for level in LEVELS}
    names = {"teacher": "pairs.csv", "family": "families.csv", "comparison": "comparisons.csv"}
    for level, frame in tables.items():
        atomic_write_text(out_dir / names[level], frame.round(DECIMALS).to_csv(index=False))
    cases = pd.concat([c for _, c in report.schemes.values()], ignore_index=True)
    atomic_write_text(out_dir / "cases.csv", cases.to_csv(index=False))
    lolo = report.schemes["lolo"][0].teacher
    atomic_write_text(out_dir / "leanings.csv",
                      line_leanings(lolo[lolo["set"] == ALL_PROMPTS]).to_csv(index=False))
    atomic_write_json(out_dir / "summary.json", report.summary)
    atomic_write_text(out_dir / "summary.txt", "\n".join(report.summary_lines()) + "\n")
    tippett = report.calibration.metrics["summary"]["tippett"]
    figures.tippett_plot(tippett["hp"], tippett["hd"]).savefig(out_dir / "tippett.png", dpi=120,
                                                               metadata={"Software": None})


def read_validation(out_dir: Path) -> dict[str, Any]:
    """What :func:`write_report` wrote, read back for the validation notebook (no re-computation)."""
    out_dir = Path(out_dir)
    missing = [n for n in VALIDATION_FILES if not (out_dir / n).is_file()]
    if missing:
        raise InputError(f"the validation folder lacks {', '.join(missing)}", path=out_dir,
                         fix="run `forensics validate LABELS.csv --out DIR` (or `make calibrate`) first")
    return {"summary": json.loads((out_dir / "summary.json").read_text(encoding="utf-8")),
            "summary_text": (out_dir / "summary.txt").read_text(encoding="utf-8"),
            "pairs": pd.read_csv(out_dir / "pairs.csv"), "families": pd.read_csv(out_dir / "families.csv"),
            "cases": pd.read_csv(out_dir / "cases.csv"), "leanings": pd.read_csv(out_dir / "leanings.csv"),
            "tippett": out_dir / "tippett.png"}


def run_validation(labels_csv: Path, out_dir: Path) -> ValidationReport:
    report = validate(labels_csv)
    write_report(report, out_dir)
    return report


def refit_calibration(labels_csv: Path, out: Path | None = None, out_dir: Path | None = None) -> Path:
    """Validate, then fit on every pair and write the calibration file (with the validation summary)."""
    report = validate(labels_csv)
    if out_dir is not None:
        write_report(report, out_dir)
    target = out or DEFAULT_CALIBRATION
    report.calibration.save(target)
    print(json.dumps({"sha256": sha256_file(target)}), file=sys.stderr)
    return target
