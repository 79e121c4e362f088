"""Step 03: stylometric similarities (full corpus and prompt bootstrap), tables and the dendrogram; the
shared-wording line's matrices."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from forensics.stylometry.delta import stylometric_similarities
from forensics.stylometry.features import stylometric_features
from forensics.stylometry.summary import stylometric_tables, summarise_stylometry

if TYPE_CHECKING:
    from forensics.case import Case
    from forensics.custody import RunFolder

STEP = "03_stylometry"
ARTIFACT = "artifacts/stylometry.json"


def run_step(case: Case, run: RunFolder) -> dict[str, Any]:
    """Step 03: stylometric similarities (full + prompt bootstrap), per-source tables and figures, and the
    shared-wording line (:mod:`forensics.wording`), which reads the same texts with the same resamples."""
    from forensics import figures, wording
    from forensics.exchanges import load_corpus
    from forensics.scoring import case_bootstrap

    corpus = load_corpus(run, case)
    params = case.parameters
    boot_idx = case_bootstrap(corpus, params)
    feats = stylometric_features(corpus, params, boot_idx)
    sims = stylometric_similarities(corpus, boot_idx, params, features=feats)
    summary = summarise_stylometry(corpus, sims, stylometric_tables(feats))
    run.write_json(ARTIFACT, summary, step=STEP)
    wording.write_matrices(run, wording.measure(corpus, boot_idx, params.opening_words), step=STEP)
    sources = list(corpus.sources)
    distance = pd.DataFrame(-np.asarray(sims["mfw_cosine_delta"]["sim"]), index=sources, columns=sources)
    roles = figures.Roles.of(corpus)
    dendrogram = figures.stylometric_dendrogram(distance, roles)
    run.write_figure("figures/stylometric_dendrogram", dendrogram, step=STEP)
    return {"families": sorted(sims), "n_prompts": len(corpus.prompt_keys), "bootstrap": int(len(boot_idx))}
