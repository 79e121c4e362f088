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

The same function serves every line and every bootstrap replicate, so a line's confidence interval and
the candidates' comparison use the same prompt resamples.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

#: Below this many references the panel cannot show how much independent models vary.
MIN_PANEL = 2


def bootstrap_indices(n_prompts: int, replicates: int, seed: int) -> np.ndarray:
    """(B, n) prompt indices drawn with replacement; every line uses these same resamples."""
    rng = np.random.default_rng([seed, 0x5EED])
    return rng.integers(0, n_prompts, size=(replicates, n_prompts))


def case_bootstrap(corpus: Any, parameters: Any) -> np.ndarray:
    """The case's prompt resamples (``parameters.bootstrap`` of them, seeded by ``parameters.seed``)."""
    return bootstrap_indices(len(corpus.prompt_keys), parameters.bootstrap, parameters.seed)


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
    """Per teacher: the suspect's affinity, each reference's affinity, and the panel-relative z.

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
            z = (sus_aff[t] - ref_aff[t].mean(axis=-1)) / sd
        out[t] = {"suspect": sus_aff[t], "references": ref_aff[t], "z": z, "sd": sd}
    return out


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
    if boot is not None and np.size(boot["z"]) > 1:
        entry["ci95"] = percentile_interval(boot["suspect"])  # of suspect_value, as drawn in the figures
        entry["z_ci95"] = percentile_interval(boot["z"])
    return entry


def percentile_interval(values: np.ndarray, level: float = 0.95) -> list[float | None]:
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if values.size < 2:
        return [None, None]
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return [round(float(low), 6), round(float(high), 6)]


def rounded(value: Any) -> float | None:
    """A scalar as it goes into JSON: 6 decimals, and None for NaN or infinity (JSON has neither)."""
    value = float(np.asarray(value).reshape(()))
    return round(value, 6) if np.isfinite(value) else None
