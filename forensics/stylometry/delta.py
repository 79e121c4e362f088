"""The families: feature blocks built once, pooled per bootstrap weight vector, z-scored, Delta."""

from __future__ import annotations

from typing import Any

import numpy as np

from forensics.exchanges import CorpusLike
from forensics.scoring import all_weights
from forensics.stylometry.features import StyloFeatures, stylometric_features, weights_fingerprint

#: The families :func:`stylometric_similarities` returns, in this order.
FAMILIES: tuple[str, ...] = (
    "mfw_cosine_delta",
    "mfw_burrows_delta",
    "char_ngrams",
    "distorted_ngrams",
    "formatting",
)


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
    :data:`FAMILIES`, in ``corpus.sources`` order. Pass ``features`` (from :func:`stylometric_features`
    with the same ``boot_idx``) to reuse them across calls.
    """
    weights = all_weights(boot_idx, len(corpus.prompt_keys))
    feats = stylometric_features(corpus, params, weights=weights) if features is None else features
    if list(corpus.sources) != feats.sources:
        raise ValueError("features were computed for other sources than this corpus")
    if feats.weights_sha256 != weights_fingerprint(weights):
        raise ValueError("features were pooled under other prompt resamples than boot_idx")
    ddof = feats.params.z_ddof
    out: dict[str, dict[str, np.ndarray]] = {}

    def put(name: str, dist: np.ndarray) -> None:
        sim = -dist
        out[name] = {"sim": sim[0], "boot": sim[1:]}

    z = zscore(feats.mfw.profiles(feats.sources), ddof)
    put("mfw_cosine_delta", cosine_delta(z))
    put("mfw_burrows_delta", burrows_delta(z))
    for name, block in (("char_ngrams", feats.char), ("distorted_ngrams", feats.distorted),
                        ("formatting", feats.formatting)):
        put(name, cosine_delta(zscore(block.profiles(feats.sources), ddof)))
    return {name: out[name] for name in FAMILIES}
