"""Families on real outputs, through the shipped calibration: a student whose teacher family is present as
two snapshots is attributed to the family without a snapshot; a human-data control is attributed nothing.

The cases come from the development benchmark (one prompt source, 128 prompts, real answers), are scored
with the pipeline's fused lines (:func:`forensics.validation.score_fused_lines`, tested equal to the full
scoring) on real embeddings of the answer openings, and concluded by :func:`forensics.evidence.conclude`,
the function ``findings.json`` is written from. The shipped calibration saw these models (it is fitted on
every labelled case); the held-out figures are in ``validation/``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from forensics.calibration import CalibrationSet
from forensics.case import Parameters, family_groups
from forensics.embeddings import Embedder, corpus_texts, split_by_source
from forensics.evidence import conclude
from forensics.stylometry import formatting_matrix
from forensics.validation import (
    benchmark_cases,
    family_of_teachers,
    load_benchmark,
    score_fused_lines,
    semantic_measurement,
)
from forensics.wording import case_overlap

PROMPT_SOURCE = "helpful_base"
STUDENT, CONTROL = "vicuna-7b-v1.3", "guanaco-13b"


@pytest.fixture(scope="module")
def verdicts(benchmark_dir: Path, forensics_cache: Path) -> dict[str, dict]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FORENSICS_CACHE", str(forensics_cache))
        bench = load_benchmark(benchmark_dir / "LABELS.csv")
        idx = bench.prompt_sets()[PROMPT_SOURCE]
        family = family_of_teachers(bench.labels)
        params, cal = Parameters(), CalibrationSet.load()
        out = {}
        for corpus in benchmark_cases(bench, idx):
            if corpus.suspect not in (STUDENT, CONTROL):
                continue
            openings = split_by_source(corpus, Embedder().embed(corpus_texts(corpus, params.opening_words)))
            fmt = {s: formatting_matrix(corpus.responses[s], corpus.prompts) for s in corpus.sources}
            overlap = case_overlap(corpus, params.opening_words)
            scores = score_fused_lines(corpus, openings, fmt, overlap, params).fused
            groups = family_groups(corpus.teachers, family)
            teachers, families, conclusion = conclude(corpus.suspect, scores, groups, cal,
                                                      params.inconclusive_band,
                                                      semantic_measurement(corpus, openings, params))
            out[corpus.suspect] = {"scores": scores, "families": families, "conclusion": conclusion}
        return out


def test_a_student_of_a_family_of_two_snapshots_gets_the_family_not_a_snapshot(verdicts: dict) -> None:
    v = verdicts[STUDENT]
    conclusion = v["conclusion"]
    assert conclusion["outcome"] == "family attributed"
    assert conclusion["attributed_family"] == "OpenAI gpt-3.5-turbo"
    assert conclusion["attributed_teacher"] is None
    family = next(f for f in v["families"] if f["name"] == "OpenAI gpt-3.5-turbo")
    assert len(family["members"]) == 2 and family["supports"] == "Hp"
    assert "a model of the OpenAI gpt-3.5-turbo family" in conclusion["statement"]


def test_a_human_data_control_gets_neither_a_teacher_nor_a_family(verdicts: dict) -> None:
    conclusion = verdicts[CONTROL]["conclusion"]
    assert conclusion["attributed_family"] is None and conclusion["attributed_teacher"] is None
    assert conclusion["outcome"] in ("no teacher supported", "inconclusive")


def test_a_family_scores_as_its_best_member(verdicts: dict) -> None:
    v = verdicts[STUDENT]
    for family in v["families"]:
        best = max(family["members"], key=lambda m: v["scores"][m])
        assert family["best_member"] == best
        assert family["score"] == pytest.approx(v["scores"][best], abs=1e-6)
    assert all(np.isfinite(s) for s in v["scores"].values())
