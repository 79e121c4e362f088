"""Panel-relative scores: the one statistic every line of evidence is turned into.

Independent models already resemble each other, and some models resemble *everything* more than others
do (a terse model is close to every terse model). So the quantity of interest is not how similar the
suspect S is to a teacher T, but how much more S leans towards T than the panel's models lean towards T:

- affinity ``a(X, T) = sim(X, T) - mean_{R in panel, R != X} sim(X, R)``: how much closer X is to T than
  to the reference models. Subtracting X's own mean similarity to the panel removes X's general
  "centrality" (its length, register, genericness); T's centrality is the same for every X and cancels.
- the suspect's affinity is compared with each reference's affinity to the same teacher (each reference
  measured against the panel without itself), ``z = (a(S,T) - mean_R a(R,T)) / sd``, where ``sd`` is the
  spread of the references' affinities pooled over every candidate teacher (each teacher's affinities
  centred first): a 3-model panel cannot estimate a spread per teacher, 3 x k values can.
- that raw z is read for the panel's size (:func:`panel_size_z`): the panel's mean and spread are
  estimated from its R models, so the suspect is judged as one more model against a prediction interval
  (Student's t with R - 1 degrees of freedom) and the result is put back on the normal scale. A 2- or
  3-model panel estimates both badly (two near-twin references make the spread tiny and the raw z
  explode), and without this a small panel gave human-data controls fused scores several times those of
  a large one; a 7-model panel's z is changed little.

The same function serves every line and every bootstrap replicate, so a line's confidence interval and
the candidates' comparison use the same prompt resamples.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import stats

if TYPE_CHECKING:
    from forensics.case import Parameters
    from forensics.exchanges import AlignedCorpus

#: Below this many references the panel cannot show how much independent models vary.
MIN_PANEL = 2
#: A spread of the reference rates below this (relative to their size) is rounding noise, not spread.
NO_SPREAD = 1e-12


def bootstrap_indices(n_prompts: int, replicates: int, seed: int) -> np.ndarray:
    """(B, n) prompt indices drawn with replacement; every line uses these same resamples."""
    rng = np.random.default_rng([seed, 0x5EED])
    return rng.integers(0, n_prompts, size=(replicates, n_prompts))


def grouped_bootstrap_indices(groups: Sequence[str], replicates: int, seed: int) -> np.ndarray:
    """(B, n) prompt indices that resample whole groups (the turns of one conversation) with replacement.

    Turns of one conversation share its topic and context, so resampling them one by one would treat them
    as independent evidence and make every interval too narrow. Groups are drawn with replacement and their
    prompts laid end to end until ``n`` are drawn (the last group cut short), so every line keeps the (B, n)
    shape of :func:`bootstrap_indices`.
    """
    n = len(groups)
    names, codes = np.unique(np.asarray(list(groups), dtype=object), return_inverse=True)
    order = np.argsort(codes, kind="stable")
    starts = np.searchsorted(codes[order], np.arange(len(names)))
    sizes = np.bincount(codes, minlength=len(names))
    rng = np.random.default_rng([seed, 0x5EED, 1])
    out = np.empty((replicates, n), dtype=np.int64)
    for b in range(replicates):
        parts, drawn = [], 0
        while drawn < n:  # a batch of as many draws as there are groups; use them until n are drawn
            chosen = rng.integers(0, len(names), size=len(names))
            ends = np.cumsum(sizes[chosen])
            used = chosen[:min(int(np.searchsorted(ends, n - drawn)) + 1, len(chosen))]
            lengths = sizes[used]
            first = np.cumsum(lengths) - lengths  # where each drawn group starts in this batch's run
            total = int(lengths.sum())
            parts.append(order[np.arange(total) + np.repeat(starts[used] - first, lengths)])
            drawn += total
        out[b] = np.concatenate(parts)[:n]
    return out


def groups_repeat(groups: Sequence[str] | None) -> bool:
    """Whether some group holds several prompts (turns of one conversation): then they resample together."""
    return groups is not None and len(set(groups)) < len(groups)


def resample_indices(n_prompts: int, replicates: int, seed: int,
                     groups: Sequence[str] | None = None) -> np.ndarray:
    """(B, n) resamples of the prompts: whole groups when some group holds several prompts
    (:func:`grouped_bootstrap_indices`), else prompt by prompt (:func:`bootstrap_indices`)."""
    if groups_repeat(groups):
        return grouped_bootstrap_indices(groups, replicates, seed)
    return bootstrap_indices(n_prompts, replicates, seed)


def _check_indices(boot_idx: np.ndarray, n: int) -> np.ndarray:
    idx = np.asarray(boot_idx)
    if idx.ndim != 2:
        raise ValueError(f"boot_idx must be a (B, n) array of prompt indices, got shape {idx.shape}")
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise ValueError(f"boot_idx holds indices outside 0..{n - 1}")
    return idx


def _fill_weights(out: np.ndarray, idx: np.ndarray, n: int) -> np.ndarray:
    """Each row of ``out``: how often each prompt was drawn in that resample (one row at a time, so that
    nothing of the size of all resamples is allocated beside ``out``: 500 resamples of 100,000 prompts are
    400 MB per copy)."""
    for b in range(idx.shape[0]):
        out[b] = np.bincount(idx[b], minlength=n)
    return out


def bootstrap_weights(boot_idx: np.ndarray | None, n: int) -> np.ndarray:
    """(B, n) integer weights from (B, m) resampled prompt indices: how often each prompt was drawn."""
    if boot_idx is None:
        return np.zeros((0, n), dtype=np.int64)
    idx = _check_indices(boot_idx, n)
    return _fill_weights(np.empty((idx.shape[0], n), dtype=np.int64), idx, n)


def all_weights(boot_idx: np.ndarray | None, n: int) -> np.ndarray:
    """Row 0: the full corpus (every prompt once); rows 1..B: the resamples (float64, built in place)."""
    if boot_idx is None:
        return np.ones((1, n))
    idx = _check_indices(boot_idx, n)
    out = np.empty((idx.shape[0] + 1, n))
    out[0] = 1.0
    _fill_weights(out[1:], idx, n)
    return out


def case_bootstrap(corpus: AlignedCorpus, parameters: Parameters) -> np.ndarray:
    """The case's prompt resamples (``parameters.bootstrap`` of them, seeded by ``parameters.seed``): whole
    conversations when the prompts are turns of conversations (:func:`grouped_bootstrap_indices`)."""
    return resample_indices(len(corpus.prompt_keys), parameters.bootstrap, parameters.seed, corpus.groups)


def affinities(sim: np.ndarray, sources: Sequence[str], teacher: str, panel: Sequence[str],
               probes: Sequence[str]) -> np.ndarray:
    """``a(X, T)`` for each probe X (works on (S,S) or stacked (..., S, S) similarity arrays)."""
    idx = {s: i for i, s in enumerate(sources)}
    t = idx[teacher]
    out = []
    for probe in probes:
        p = idx[probe]
        others = [idx[r] for r in panel if r != probe]
        out.append(sim[..., p, t] - sim[..., p, :][..., others].mean(axis=-1))
    return np.stack(out, axis=-1)


def panel_relative(sim: np.ndarray, sources: Sequence[str], suspect: str, teachers: Sequence[str],
                   panel: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per teacher: the suspect's affinity, each reference's affinity, the pooled spread, the raw z and the
    panel-relative z (the raw one read for the panel's size, :func:`panel_size_z`).

    ``sim`` is (S, S) or (B, S, S); the returned arrays keep the leading replicate axis.
    """
    if len(panel) < MIN_PANEL:
        raise ValueError(f"a panel of at least {MIN_PANEL} references is needed")
    ref_aff = {t: affinities(sim, sources, t, panel, panel) for t in teachers}
    sus_aff = {t: affinities(sim, sources, t, panel, [suspect])[..., 0] for t in teachers}
    centred = np.concatenate([a - a.mean(axis=-1, keepdims=True) for a in ref_aff.values()], axis=-1)
    dof = centred.shape[-1] - len(teachers)
    sd = np.sqrt((centred ** 2).sum(axis=-1) / max(dof, 1))
    out = {}
    for t in teachers:
        with np.errstate(divide="ignore", invalid="ignore"):
            raw = (sus_aff[t] - ref_aff[t].mean(axis=-1)) / sd
        out[t] = {"suspect": sus_aff[t], "references": ref_aff[t], "raw_z": raw, "z": panel_size_z(raw, len(panel)),
                  "sd": sd}
    return out


def panel_size_z(raw_z: Any, n_panel: int) -> np.ndarray:
    """The raw z of the suspect against a panel of ``n_panel`` models, read for the panel's size.

    The panel's mean and spread are estimates from ``n_panel`` models, so how unusual the suspect is, as
    one more model beside them, is a prediction-interval question: ``t = z / sqrt(1 + 1/R)`` against
    Student's t with ``R - 1`` degrees of freedom, turned back into the normal deviate of the same tail
    probability. Conservative on purpose: the spread is pooled over the candidates, but a reference's
    affinities to different candidates are not independent, so the degrees of freedom are the panel's.
    Monotone in z and odd (sign kept); NaN stays NaN.
    """
    z = np.asarray(raw_z, dtype=float)
    if n_panel < MIN_PANEL:
        return np.full_like(z, np.nan)
    t = np.abs(z) / np.sqrt(1.0 + 1.0 / n_panel)
    with np.errstate(invalid="ignore"):
        return np.sign(z) * stats.norm.isf(stats.t.sf(t, n_panel - 1))


def preference_z(sim: np.ndarray, sources: Sequence[str], suspect: str, a: str, b: str,
                 panel: Sequence[str]) -> float:
    """How unusual the suspect's preference for candidate ``a`` over ``b`` is among the panel's models.

    The comparison of two candidates ("trained on A rather than B") asks whether the suspect leans towards
    A *more than towards B* beyond what independent models do, so the preference is standardised by the
    panel's spread of that same preference: ``d(X) = sim(X, a) - sim(X, b)``, ``(d(S) - mean_R d(R)) /
    sd_R d(R)``, read for the panel's size like every z (:func:`panel_size_z`). (Affinities would give
    the same ``d``: X's mean similarity to the panel cancels.) Two snapshots or sister lines of one
    vendor are close to each other for every model, so the panel's preferences between them vary much
    less than its affinities to the candidates, the spread the candidates' own z are measured in: the
    difference of two z understates how clearly a suspect prefers one sibling. NaN when the panel shows
    no spread or either candidate is missing. Antisymmetric: ``preference_z(..., b, a) = -preference_z(...,
    a, b)``.
    """
    if len(panel) < MIN_PANEL:
        raise ValueError(f"a panel of at least {MIN_PANEL} references is needed")
    idx = {s: i for i, s in enumerate(sources)}
    if a not in idx or b not in idx:
        return float("nan")
    rows = [idx[r] for r in panel]
    own = sim[idx[suspect], idx[a]] - sim[idx[suspect], idx[b]]
    preferences = sim[rows, idx[a]] - sim[rows, idx[b]]
    spread = preferences.std(ddof=1)
    if not np.isfinite(spread) or spread <= NO_SPREAD:
        return float("nan")
    return float(panel_size_z((own - preferences.mean()) / spread, len(panel)))


def naive_z(sim: np.ndarray, sources: Sequence[str], suspect: str, teacher: str,
            references: Sequence[str]) -> float | None:
    """The uncontrolled statistic most tools use: sim(S, T) z-scored against sim(R, T) of the panel.

    Reported beside the controlled z so an investigator can see how much the control for each model's
    general closeness to everything (length, register) changes the result.
    """
    t = sources.index(teacher)
    panel = np.array([sim[sources.index(r), t] for r in references])
    if len(panel) < 2 or panel.std(ddof=1) == 0:
        return None
    return rounded((sim[sources.index(suspect), t] - panel.mean()) / panel.std(ddof=1))


def rate_z(suspect_rates: Mapping[str, float | None], reference_rates: Mapping[str, Mapping[str, float | None]],
           references: Sequence[str]) -> dict[str, float]:
    """Panel-relative z of a per-teacher rate: the suspect's rate against each reference's, per teacher.

    The counterpart of :func:`panel_relative` for lines whose statistic is already one number per source
    and teacher (marker rates, co-clustering rates): ``z = (rate(S) - mean_R rate(R)) / sd``, with the
    spread pooled over every candidate teacher (each teacher's reference rates centred first), as for the
    affinities, and read for the panel's size (:func:`panel_size_z`, R = the references with a rate for
    that teacher). A missing rate (None) is left out; NaN where the panel shows no spread.
    """
    teachers = list(suspect_rates)
    refs = np.array([[_nan(reference_rates[t].get(r)) for r in references] for t in teachers], dtype=float)
    refs = refs.reshape(len(teachers), len(references))
    if not refs.size or not np.isfinite(refs).any():
        return {t: float("nan") for t in teachers}
    with np.errstate(invalid="ignore"):
        means = np.nanmean(refs, axis=1, keepdims=True)
    centred = refs - means
    dof = int(np.isfinite(centred).sum()) - int(np.isfinite(means).sum())
    sd = float(np.sqrt(np.nansum(centred ** 2) / max(dof, 1)))
    # equal rates leave rounding noise (1e-17), not spread: dividing by it would give z of 1e16
    if not sd > NO_SPREAD * max(1.0, float(np.nanmax(np.abs(means)))):
        return {t: float("nan") for t in teachers}
    return {t: float(panel_size_z((_nan(suspect_rates[t]) - float(means[i, 0])) / sd,
                                  int(np.isfinite(refs[i]).sum())))
            for i, t in enumerate(teachers)}


def _nan(value: Any) -> float:
    return float("nan") if value is None else float(value)


def line_entry(full: dict[str, Any], boot: dict[str, Any] | None, panel: Sequence[str], n_prompts: int,
               statistic: str) -> dict[str, Any]:
    """The JSON entry of one line for one teacher (docs/ARCHITECTURE.md, "Per-line evidence entries")."""
    entry: dict[str, Any] = {
        "statistic": statistic,
        "suspect_value": rounded(full["suspect"]),
        "panel_values": {r: rounded(v) for r, v in zip(panel, np.ravel(full["references"]), strict=True)},
        "z": rounded(full["z"]),
        "n_prompts": int(n_prompts),
    }
    if boot is not None:  # [None, None] below two replicates: an interval of one replicate is a point
        entry["ci95"] = percentile_interval(boot["suspect"])  # of suspect_value, as drawn in the figures
        entry["z_ci95"] = percentile_interval(boot["z"])
    return entry


def percentile_interval(values: np.ndarray, level: float = 0.95, min_values: int = 2) -> list[float | None]:
    """The bootstrap percentile interval (95% by default) of the finite values, rounded as for JSON.

    The one interval every line reports. ``[None, None]`` when fewer than ``min_values`` finite values
    remain (an interval of one replicate is a point; a line may still want it shown as one).
    """
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if values.size < max(min_values, 1):
        return [None, None]
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return [rounded(low), rounded(high)]


#: Decimals of every number written to JSON or CSV (far below any difference the method can resolve).
DECIMALS = 6


def rounded(value: Any) -> float | None:
    """A scalar as it goes into JSON: :data:`DECIMALS` decimals, None for NaN or infinity (JSON has
    neither), and 0.0 for a negative zero (a rounding artefact that would read as a change)."""
    value = float(np.asarray(value).reshape(()))
    return round(value, DECIMALS) + 0.0 if np.isfinite(value) else None


def jsonable(x: Any, sort_keys: bool = True) -> Any:
    """JSON-able copy: floats as :func:`rounded` (6 decimals, None for NaN/inf), numpy scalars and arrays
    to Python, keys sorted unless ``sort_keys`` is False (when the order is the case's and is shown)."""
    if isinstance(x, Mapping):
        keys = sorted(x, key=str) if sort_keys else list(x)
        return {str(k): jsonable(x[k], sort_keys) for k in keys}
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist(), sort_keys)
    if isinstance(x, list | tuple):
        return [jsonable(v, sort_keys) for v in x]
    if isinstance(x, bool | np.bool_):
        return bool(x)
    if isinstance(x, int | np.integer):
        return int(x)
    if isinstance(x, float | np.floating):
        return rounded(x)
    return x
