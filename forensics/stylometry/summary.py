"""``artifacts/stylometry.json``: similarities, bootstrap spread and the per-source tables."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from forensics.exchanges import CorpusLike
from forensics.scoring import jsonable
from forensics.stylometry.delta import zscore
from forensics.stylometry.features import StyloFeatures
from forensics.stylometry.formatting import FORMATTING_FEATURES
from forensics.stylometry.ngrams import PooledBlock


def stylometric_tables(features: StyloFeatures, top: int | None = None) -> dict[str, pd.DataFrame]:
    """Per-source tables for the report (full corpus), sources as columns in case order.

    ``mfw_z`` / ``mfw_per_1k``: the top MFW, z-scores and rates per 1,000 words; ``char_ngrams_z`` and
    ``distorted_ngrams_z``: the most frequent features' z-scores; ``formatting``: each habit in its unit
    (share of responses, per 1,000 or 100 words, words per sentence), with ``unit`` and ``why`` columns;
    ``length``: words per response (mean, median) and mean log(1 + words).
    """
    top = features.params.report_top if top is None else top
    src = features.sources
    ddof = features.params.z_ddof

    def table(block: PooledBlock, k: int | None, z: bool, scale: float = 1.0) -> pd.DataFrame:
        prof = block.profiles(src)[0]  # row 0: the full corpus
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
