"""Line 4 of evidence: does the suspect's answer land in the teacher's cluster more often than the panel's?

All responses of all sources are embedded (one point per response), projected with UMAP and clustered
with HDBSCAN. Clusters mostly follow topic, so on its own "the suspect and the teacher share clusters"
means little: every model answering the same prompt tends to land in the same cluster. The evidence is
the *excess*: the rate at which the suspect's answer and the teacher's answer to the same prompt share a
cluster, compared with the same rate for each reference model, tested with a paired permutation test
over prompts (see :func:`co_clustering_test` for the null hypothesis).

Design decisions, and why:

* **Clustering runs on a separate 5-D UMAP projection, not on the 2-D map** (``cluster_dims=5``, with
  ``min_dist=0``). The 2-D map is drawn for people: its ``min_dist`` spreads points out so they are
  visible, and squeezing 384 dimensions into two tears and merges neighbourhoods. Density-based
  clustering wants the opposite (tightly packed, less distorted neighbourhoods), which is what the UMAP
  authors recommend for clustering. The second fit costs a few seconds at demo size (see
  ``benchmarks/bench_clustering.py``); ``cluster_dims=2`` clusters the map itself, for speed.
* **Whole prompts are sampled**, never single responses, so every sampled prompt keeps all its sources
  and the co-clustering comparison stays paired.
* **Determinism**: UMAP gets ``random_state=seed`` and ``n_jobs=1`` (single-threaded, reproducible),
  HDBSCAN ``core_dist_n_jobs=1``, and cluster ids are renumbered by size, so a rerun on the same machine
  gives identical coordinates and labels.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from forensics.errors import CaseFileError, InputError
from forensics.escaping import escaped_html
from forensics.exchanges import CorpusLike
from forensics.roles import roles_of
from forensics.scoring import (
    bootstrap_weights,
    groups_repeat,
    jsonable,
    percentile_interval,
    resample_indices,
    rounded,
)

if TYPE_CHECKING:
    import pandas as pd

    from forensics.case import Case
    from forensics.custody import RunFolder


STEP = "05_clusters"
NOISE = -1
_PERMUTATION_CELLS = 2_000_000  # permutations x prompts drawn per chunk: bounds memory to ~16 MB


@dataclass(frozen=True)
class ClusterParams:
    """Everything that changes the map or the clusters; recorded verbatim in ``clusters.json``.

    ``min_samples`` smaller than ``min_cluster_size`` makes HDBSCAN call fewer points noise, which
    matters because a response labelled noise can never co-cluster. ``cluster_dims=2`` clusters the
    2-D map instead of a separate projection (one UMAP fit instead of two).
    """

    n_neighbors: int = 15
    min_dist: float = 0.1
    cluster_dims: int = 5
    cluster_min_dist: float = 0.0
    min_cluster_size: int = 15
    min_samples: int | None = 5
    seed: int = 0
    umap_max_points: int = 4000
    permutations: int = 2000
    bootstrap: int = 500

    def __post_init__(self) -> None:
        if self.cluster_dims < 2:
            raise CaseFileError(f"cluster_dims must be at least 2, got {self.cluster_dims}",
                                fix="use 2 (cluster the map) or 5-10 (a separate projection)")
        if self.umap_max_points < 2 or self.permutations < 1 or self.min_cluster_size < 2:
            raise CaseFileError("umap_max_points, permutations and min_cluster_size must be positive",
                                fix="check the case file's parameters")


@dataclass(frozen=True)
class ClusterResult:
    """The map and the clusters of every response of the sampled prompts.

    ``coords`` has shape (n_sources, n_prompts, 2) and ``labels`` (n_sources, n_prompts), both indexed
    by ``sources`` (suspect, teachers, references) and ``prompt_keys`` (the sampled prompts, in corpus
    order). Label ``-1`` is HDBSCAN noise; clusters are numbered 0, 1, ... by decreasing size.
    """

    params: ClusterParams
    sources: list[str]
    prompt_keys: list[str]
    coords: np.ndarray
    labels: np.ndarray
    n_prompts_total: int

    @property
    def n_prompts(self) -> int:
        return len(self.prompt_keys)

    @property
    def n_points(self) -> int:
        return int(self.labels.size)

    @property
    def sampled(self) -> bool:
        return self.n_prompts < self.n_prompts_total

    @property
    def n_clusters(self) -> int:
        return int(self.labels.max()) + 1 if self.labels.size else 0

    @property
    def noise_share(self) -> float:
        return float(np.mean(self.labels == NOISE)) if self.labels.size else 0.0

    def labels_of(self, source: str) -> np.ndarray:
        return self.labels[self.sources.index(source)]

    def sample_statement(self) -> str:
        """One sentence saying what the map and clusters were computed on."""
        if not self.sampled:
            return (f"UMAP and HDBSCAN ran on all {self.n_prompts} prompts "
                    f"({self.n_points} responses from {len(self.sources)} sources).")
        return (f"UMAP and HDBSCAN ran on a seeded sample of {self.n_prompts} of {self.n_prompts_total} "
                f"prompts ({self.n_points} responses from {len(self.sources)} sources; every source of a "
                f"sampled prompt kept) because the full set exceeds umap_max_points="
                f"{self.params.umap_max_points}.")

    def frame(self, roles: Mapping[str, str] | None = None) -> pd.DataFrame:
        """Long table, one row per response: prompt_key, source, role, x, y, cluster."""
        import pandas as pd

        n_src, n = self.labels.shape
        sources = np.repeat(np.asarray(self.sources, dtype=object), n)
        return pd.DataFrame({
            "prompt_key": np.tile(np.asarray(self.prompt_keys, dtype=object), n_src),
            "source": sources,
            "role": [(roles or {}).get(s, "") for s in sources],
            "x": self.coords[..., 0].reshape(-1).astype(np.float32),
            "y": self.coords[..., 1].reshape(-1).astype(np.float32),
            "cluster": self.labels.reshape(-1).astype(np.int32),
        })


# --------------------------------------------------------------------------------------------------
# Projection and clustering


def sample_prompts(n_prompts: int, n_sources: int, max_points: int, seed: int) -> np.ndarray:
    """Indices of the prompts to map: all of them, or a seeded sample of whole prompts.

    Sampling prompts (not responses) keeps every source's answer to a sampled prompt, which the paired
    co-clustering statistic needs. The indices are sorted so the sample keeps corpus order.
    """
    if n_prompts * n_sources <= max_points:
        return np.arange(n_prompts)
    k = max_points // n_sources
    if k < 2:
        raise InputError(f"umap_max_points={max_points} leaves fewer than 2 prompts for {n_sources} sources",
                         fix="raise umap_max_points in the case file's parameters")
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_prompts, size=k, replace=False))


def fit_umap(x: np.ndarray, n_components: int, min_dist: float, params: ClusterParams) -> np.ndarray:
    """UMAP with cosine distance, seeded and single-threaded so reruns give identical coordinates."""
    import umap

    n_neighbors = max(2, min(params.n_neighbors, len(x) - 1))
    reducer = umap.UMAP(n_neighbors=n_neighbors, min_dist=min_dist, n_components=n_components,
                        metric="cosine", random_state=params.seed, n_jobs=1, transform_seed=params.seed)
    with warnings.catch_warnings():
        # Spectral initialisation on a disconnected graph falls back with a warning; results stay seeded.
        warnings.simplefilter("ignore", UserWarning)
        return np.asarray(reducer.fit_transform(x), dtype=np.float32)


def fit_hdbscan(y: np.ndarray, params: ClusterParams) -> np.ndarray:
    """HDBSCAN labels (``-1`` = noise), renumbered by decreasing cluster size for stable ids."""
    import hdbscan

    min_samples = None if params.min_samples is None else min(params.min_samples, len(y) - 1)
    clusterer = hdbscan.HDBSCAN(min_cluster_size=min(params.min_cluster_size, len(y)),
                                min_samples=min_samples, core_dist_n_jobs=1)
    return relabel_by_size(np.asarray(clusterer.fit_predict(y), dtype=np.int64))


def relabel_by_size(labels: np.ndarray) -> np.ndarray:
    """Renumber clusters 0..k-1 by decreasing size (ties: old id), keeping -1 for noise."""
    ids, counts = np.unique(labels[labels != NOISE], return_counts=True)
    order = ids[np.lexsort((ids, -counts))]
    mapping = {int(old): new for new, old in enumerate(order)}
    return np.array([mapping.get(int(v), NOISE) for v in labels], dtype=np.int64)


def _stack(vectors: Mapping[str, np.ndarray], sources: Sequence[str], n_prompts: int,
           idx: np.ndarray) -> np.ndarray:
    """Rows of every source for the chosen prompts, source-major (source 0's prompts first)."""
    blocks = []
    for source in sources:
        if source not in vectors:
            raise InputError(f"no embeddings for source {source!r}", fix="re-run the embeddings step")
        array = np.asarray(vectors[source], dtype=np.float32)
        if array.ndim != 2 or array.shape[0] != n_prompts:
            raise InputError(f"embeddings of {source!r} have shape {array.shape}, expected ({n_prompts}, d)",
                             fix="re-run the embeddings step for this corpus")
        blocks.append(array[idx])
    return np.concatenate(blocks, axis=0)


def project_and_cluster(vectors: Mapping[str, np.ndarray], corpus: CorpusLike,
                        params: ClusterParams | None = None) -> ClusterResult:
    """Map every response to 2-D and cluster them; deterministic for fixed params.

    ``vectors`` maps each source to an (n_prompts, d) array aligned with ``corpus.prompt_keys``.
    Above ``params.umap_max_points`` responses, a seeded sample of whole prompts is used (stated by
    :meth:`ClusterResult.sample_statement`). HDBSCAN runs on a separate ``cluster_dims``-D projection
    (see the module docstring for why), or on the map when ``cluster_dims == 2``.
    """
    params = params or ClusterParams()
    sources = list(corpus.sources)
    n_total = len(corpus.prompt_keys)
    if n_total < 3:
        raise InputError(f"only {n_total} prompts to cluster", fix="provide more shared prompts")
    idx = sample_prompts(n_total, len(sources), params.umap_max_points, params.seed)
    x = _stack(vectors, sources, n_total, idx)
    coords = fit_umap(x, 2, params.min_dist, params)
    if params.cluster_dims == 2:
        space = coords
    else:
        space = fit_umap(x, params.cluster_dims, params.cluster_min_dist, params)
    labels = fit_hdbscan(space, params)
    shape = (len(sources), len(idx))
    return ClusterResult(params=params, sources=sources, prompt_keys=[corpus.prompt_keys[i] for i in idx],
                         coords=coords.reshape(*shape, 2), labels=labels.reshape(shape),
                         n_prompts_total=n_total)


# --------------------------------------------------------------------------------------------------
# Co-clustering statistic and its permutation test


def co_clustered(a: np.ndarray, b: np.ndarray, include_noise: bool = False) -> np.ndarray:
    """Per prompt: do the two responses share a cluster?

    With ``include_noise=False`` (the reported statistic) two noise points never count as sharing a
    cluster: "HDBSCAN could not place either answer" is not evidence that the answers are alike, and
    counting it would reward sources whose answers are merely unusual. ``include_noise=True`` treats
    noise as one more cluster; it is reported alongside so a reader can see the choice does not matter.
    """
    a = np.asarray(a)
    b = np.asarray(b)
    same = a == b
    return same if include_noise else same & (b != NOISE)


def exchangeability_p_value(matches: np.ndarray, permutations: int, seed: int,
                            groups: Sequence[str] | None = None) -> float:
    """One-sided p-value that row 0 of ``matches`` (k+1 rows x n prompts, bool) is exchangeable with the rest.

    Each replicate picks, independently for every prompt, which of the k+1 sources plays the suspect,
    and counts that source's co-clustered prompts. p = (1 + #{replicate >= observed}) / (1 + B): the
    usual add-one estimate, never zero. Vectorised in chunks of at most ~2M cells; seeded. With
    ``groups`` (the conversation of each prompt, when some hold several), one pick per conversation serves
    all its turns: turns of one conversation are not independent, so they are not permuted apart.
    """
    matches = np.asarray(matches, dtype=np.int8)
    k1, n = matches.shape
    observed = int(matches[0].sum())
    rng = np.random.default_rng(seed)
    columns = np.arange(n)
    grouped = groups_repeat(groups)
    codes = np.unique(np.asarray(list(groups), dtype=object), return_inverse=True)[1] if grouped else columns
    units = int(codes.max()) + 1 if n else 0
    chunk = max(1, _PERMUTATION_CELLS // max(n, 1))
    at_least = 0
    for start in range(0, permutations, chunk):
        b = min(chunk, permutations - start)
        picks = rng.integers(0, k1, size=(b, units))[:, codes] if grouped else rng.integers(0, k1, size=(b, n))
        counts = matches[picks, columns].sum(axis=1, dtype=np.int64)
        at_least += int(np.count_nonzero(counts >= observed))
    return (1 + at_least) / (1 + permutations)


def _variant(labels: Mapping[str, np.ndarray], suspect: str, teacher: str, references: Sequence[str],
             include_noise: bool, permutations: int, seed: int,
             groups: Sequence[str] | None) -> tuple[np.ndarray, dict[str, Any]]:
    rows = [co_clustered(labels[s], labels[teacher], include_noise) for s in [suspect, *references]]
    matches = np.vstack(rows)
    rates = matches.mean(axis=1)
    panel = {r: float(v) for r, v in zip(references, rates[1:], strict=True)}
    p_value = exchangeability_p_value(matches, permutations, seed, groups) if references else None
    return matches, {"suspect_value": float(rates[0]), "panel_values": panel, "p_value": p_value}


def _boot_counts(matches: np.ndarray, replicates: int, seed: int, groups: Sequence[str] | None) -> np.ndarray:
    """(sources, B) co-clustering counts on resamples of the clustered prompts (:func:`resample_indices`).

    These are the case's own resamples when every prompt is clustered; when the map is drawn on a seeded
    sample of prompts (``umap_max_points``), resamples of that sample. Counted through (B, n) weights, so
    memory does not grow with the number of sources times B times n. Integers: divided by the number of
    clustered prompts they are the rates, bit for bit, wherever that division is made. With ``groups``
    holding conversations of several turns, whole conversations are resampled.
    """
    n = matches.shape[1]
    if replicates < 1 or n == 0:
        return np.empty((matches.shape[0], 0), dtype=np.int64)
    weights = bootstrap_weights(resample_indices(n, replicates, seed, groups), n).astype(np.float64)
    return np.rint(weights @ matches.T.astype(np.float64)).T.astype(np.int64)


@dataclass(frozen=True)
class CoClustering:
    """One teacher's co-clustering test: the entry the findings report (rates, interval, p-value) and the
    exact counts the panel-relative scorer turns into z in step 06 (:func:`rates_from_counts`)."""

    entry: dict[str, Any]
    counts: dict[str, Any]


def co_clustering_test(labels: Mapping[str, np.ndarray], suspect: str, teacher: str,
                       references: Sequence[str], *, permutations: int = 2000, seed: int = 0,
                       bootstrap: int = 500, groups: Sequence[str] | None = None) -> CoClustering:
    """Co-clustering rate of the suspect with ``teacher`` against the panel, with a paired permutation test.

    ``labels`` maps each source to its cluster label per prompt (same prompt order for all; -1 noise).

    Statistic: the share of prompts on which the suspect's answer and the teacher's answer fall in the
    same (non-noise) cluster; the same share for every reference R with the teacher is the panel.

    H0 (Hd for this line): with respect to the teacher, the suspect is exchangeable with the reference
    models, i.e. for every prompt the joint distribution of the answers of {suspect, R1..Rk} is
    unchanged by permuting which model is called the suspect. Under H0 the suspect's co-clustering
    count is distributed like the count obtained by choosing, independently per prompt, one of the k+1
    models at random to play the suspect. The alternative is one-sided: the suspect co-clusters with
    the teacher *more* often. Because the draw is per prompt it is paired (topic, prompt difficulty and
    the teacher's own label are held fixed); it needs no distributional assumption and works with a
    single reference (then it is a sign-flip test). The clustering treats every response alike, so
    fitting it on all sources does not break exchangeability. Caveat: a reference sharing the suspect's
    base model still counts as independent of the teacher; that is a question of panel choice.

    The entry holds statistic, suspect_value, panel_values, ci95 (bootstrap over prompts of
    suspect_value), p_value, n_prompts, noise_share (share of the teacher's answers that are noise, i.e.
    prompts on which nothing can co-cluster with it), and ``noise_included`` (the same numbers when noise
    counts as one more cluster). The z against the panel is not here: it is pooled over every candidate
    teacher by the scorer every line shares, in step 06 (:func:`forensics.weighing.cluster_lines`).
    """
    matches, entry = _variant(labels, suspect, teacher, references, False, permutations, seed, groups)
    noisy, with_noise = _variant(labels, suspect, teacher, references, True, permutations, seed, groups)
    teacher_labels = np.asarray(labels[teacher])
    boot = _boot_counts(matches, bootstrap, seed, groups)
    n = int(matches.shape[1])
    entry = {
        "statistic": "co-clustering rate",
        "description": (f"share of prompts on which the suspect's answer and {teacher}'s answer fall in the "
                        "same (non-noise) cluster; p-value: paired per-prompt permutation of the suspect's "
                        "role with the reference models"),
        **entry,
        "ci95": (percentile_interval(boot[0] / n, min_values=1) if boot.size
                 else [rounded(entry["suspect_value"])] * 2),
        "n_prompts": int(teacher_labels.size),
        "permutations": permutations,
        "noise_share": float(np.mean(teacher_labels == NOISE)) if teacher_labels.size else 0.0,
        "noise_included": with_noise,
    }
    count = matches.sum(axis=1)
    noisy_count = noisy.sum(axis=1)
    counts = {"n": n, "suspect": int(count[0]), "references": dict(zip(references, count[1:].tolist(), strict=True)),
              "boot_suspect": boot[0].tolist() if boot.size else [],
              "boot_references": {r: boot[k + 1].tolist() if boot.size else [] for k, r in enumerate(references)},
              "noise_included": {"suspect": int(noisy_count[0]),
                                 "references": dict(zip(references, noisy_count[1:].tolist(), strict=True))}}
    return CoClustering(entry, counts)


def co_clustering(result: ClusterResult, corpus: CorpusLike,
                  params: ClusterParams | None = None) -> dict[str, CoClustering]:
    """:func:`co_clustering_test` for every candidate teacher (case order); the clustered prompts'
    conversations, when the corpus has some, keep their turns together in resamples and permutations."""
    params = params or result.params
    labels = {s: result.labels_of(s) for s in result.sources}
    groups = None
    if corpus.groups is not None:
        of_key = dict(zip(corpus.prompt_keys, corpus.groups, strict=True))
        groups = [of_key[k] for k in result.prompt_keys]
    return {t: co_clustering_test(labels, corpus.suspect, t, list(corpus.references),
                                  permutations=params.permutations, seed=params.seed, bootstrap=params.bootstrap,
                                  groups=groups)
            for t in corpus.teachers}


def rates_from_counts(counts: Mapping[str, Any]) -> dict[str, Any]:
    """One teacher's counts (``clusters.json``: ``co_clustering_counts``) as rates for the scorer.

    The shape of a marker line's rates (suspect, references, boot_suspect, boot_references), plus the
    rates with noise counted as a cluster (``noise_included``).
    """
    n = float(counts["n"]) or float("nan")
    noisy = counts["noise_included"]
    return {"suspect": counts["suspect"] / n, "references": {r: c / n for r, c in counts["references"].items()},
            "boot_suspect": np.asarray(counts["boot_suspect"], dtype=np.float64) / n,
            "boot_references": {r: np.asarray(v, dtype=np.float64) / n for r, v in counts["boot_references"].items()},
            "noise_included": {"suspect": noisy["suspect"] / n,
                               "references": {r: c / n for r, c in noisy["references"].items()}}}


def co_clustering_table(clusters: Mapping[str, Any]) -> pd.DataFrame:
    """Per teacher: the suspect's co-clustering rate, the panel's mean and range, and the permutation p-value.

    The z against the panel is computed in step 06 with every other line (pooled over the candidates)."""
    import pandas as pd

    rows = {}
    for teacher, e in clusters.get("co_clustering", {}).items():
        panel = [v for v in e.get("panel_values", {}).values() if v is not None]
        rows[teacher] = {"suspect rate": e.get("suspect_value"),
                         "panel mean": rounded(np.mean(panel)) if panel else None,
                         "panel range": [min(panel), max(panel)] if panel else None,
                         "p-value (permutation)": e.get("p_value")}
    return pd.DataFrame.from_dict(rows, orient="index")


# --------------------------------------------------------------------------------------------------
# The step


def params_from_case(case: Case) -> ClusterParams:
    """The case file's seed, umap_max_points, permutations and bootstrap; defaults for the rest."""
    given = getattr(case, "parameters", None)
    values = {}
    for name in ("seed", "umap_max_points", "permutations", "bootstrap"):
        value = given.get(name) if isinstance(given, Mapping) else getattr(given, name, None)
        if value is not None:
            values[name] = int(value)
    return replace(ClusterParams(), **values)


def cluster_case(corpus: CorpusLike, vectors: Mapping[str, np.ndarray],
                 params: ClusterParams | None = None) -> tuple[ClusterResult, dict[str, Any]]:
    """Map, cluster and test one case; returns the result and the ``clusters.json`` content."""
    params = params or ClusterParams()
    result = project_and_cluster(vectors, corpus, params)
    noise_by_source = {s: float(np.mean(result.labels_of(s) == NOISE)) for s in result.sources}
    tested = co_clustering(result, corpus, params)
    summary = {
        "params": asdict(params),
        "sample": {"sampled": result.sampled, "n_prompts": result.n_prompts,
                   "n_prompts_total": result.n_prompts_total, "n_points": result.n_points,
                   "statement": result.sample_statement()},
        "n_clusters": result.n_clusters,
        "noise_share": result.noise_share,
        "noise_share_by_source": noise_by_source,
        "co_clustering": {t: c.entry for t, c in tested.items()},
        "co_clustering_counts": {t: c.counts for t, c in tested.items()},
    }
    return result, jsonable(summary, sort_keys=False)


def write_step(corpus: CorpusLike, vectors: Mapping[str, np.ndarray], params: ClusterParams,
               run: RunFolder) -> dict[str, Any]:
    """Compute and write ``artifacts/umap.parquet``, ``artifacts/clusters.json`` and the two figures."""
    from forensics import figures

    result, summary = cluster_case(corpus, vectors, params)
    roles = roles_of(corpus)
    coords = result.frame(roles)
    run.write_parquet("artifacts/umap.parquet", coords, step=STEP)
    run.write_json("artifacts/clusters.json", summary, step=STEP)
    run.write_figure("figures/umap_map", figures.umap_map(coords, corpus), step=STEP)
    return summary


def run_step(case: Case, run: RunFolder) -> dict[str, Any]:
    """Step 05: load the aligned corpus and its embeddings from the run folder, cluster, write, summarise."""
    from forensics.embeddings import load_vectors
    from forensics.exchanges import load_corpus

    corpus = load_corpus(run, case, texts=False)  # the step reads vectors, not texts
    vectors = load_vectors(run, corpus)
    return write_step(corpus, vectors, params_from_case(case), run)


# --------------------------------------------------------------------------------------------------
# Notebook helper


def _cell(text: str, max_chars: int) -> str:
    """Escape a model output for HTML; model outputs are hostile, so nothing is ever rendered as markup."""
    style = "white-space:pre-wrap"
    return f'<td style="vertical-align:top"><pre style="{style}">{escaped_html(text, max_chars)}</pre></td>'


def _pair_rows(corpus: CorpusLike, which: str | int, result: ClusterResult | None,
               teacher: str, n: int) -> list[int]:
    """Corpus indices of the prompts to show: one prompt key, or prompts of a cluster (co-clustered first)."""
    keys = list(corpus.prompt_keys)
    if isinstance(which, str):
        if which not in keys:
            raise InputError(f"unknown prompt_key {which!r}", fix="pick one from corpus.prompt_keys")
        return [keys.index(which)]
    if result is None:
        raise InputError("a cluster id needs the ClusterResult", fix="pass result=project_and_cluster(...)")
    s_labels, t_labels = result.labels_of(corpus.suspect), result.labels_of(teacher)
    in_cluster = np.flatnonzero(s_labels == which)
    ordered = sorted(in_cluster, key=lambda i: (t_labels[i] != which, i))
    return [keys.index(result.prompt_keys[i]) for i in ordered[:n]]


def pairs_html(corpus: CorpusLike, which: str | int, *, result: ClusterResult | None = None,
               teacher: str | None = None, n: int = 5, max_chars: int = 2000) -> str:
    """HTML table: prompt | suspect's answer | teacher's answer, every text escaped (see ``show_pairs``)."""
    teacher = teacher or corpus.teachers[0]
    rows = _pair_rows(corpus, which, result, teacher, n)
    head = "".join(f"<th>{escaped_html(h)}</th>"
                   for h in ("prompt", f"{corpus.suspect} (suspect)", f"{teacher} (teacher)"))
    body = "".join(
        "<tr>" + _cell(corpus.prompts[i], max_chars) + _cell(corpus.responses[corpus.suspect][i], max_chars)
        + _cell(corpus.responses[teacher][i], max_chars) + "</tr>" for i in rows)
    caption = escaped_html(f"cluster {which}" if isinstance(which, int) else f"prompt {which}")
    return f"<table><caption>{caption}</caption><tr>{head}</tr>{body}</table>"


def show_pairs(corpus: CorpusLike, which: str | int, *, result: ClusterResult | None = None,
               teacher: str | None = None, n: int = 5, max_chars: int = 2000) -> Any:
    """Jupyter display of suspect and teacher answers side by side.

    ``which`` is a prompt key, or a cluster id (then ``result`` is needed and up to ``n`` prompts whose
    suspect answer is in that cluster are shown, those where the teacher's answer is there too first).
    Every text, names included, goes through :func:`forensics.escaping.escaped_html`, as in the report: a
    ``<script>`` in a model output shows as text and never runs, control characters show as ``[U+XXXX]``.
    """
    from IPython.display import HTML

    return HTML(pairs_html(corpus, which, result=result, teacher=teacher, n=n, max_chars=max_chars))
