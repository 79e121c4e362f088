"""Families on real outputs, through the shipped calibration: a student of a family whose two snapshots
are both candidates is attributed to the family; a human-data control is attributed nothing.

The cases are built from the demo data (200 AlpacaEval prompts, real answers), scored with the pipeline's
fused lines (:func:`forensics.validation.score_fused_lines`, tested equal to the full scoring) on real
embeddings of the answer openings, and concluded by :func:`forensics.findings.conclude`, the function
``findings.json`` is written from.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from forensics import evidence
from forensics.calibration import CalibrationSet
from forensics.case import Parameters
from forensics.embeddings import Embedder, corpus_texts, split_by_source
from forensics.exchanges import AlignedCorpus, read_exchanges, text_prompt_key
from forensics.findings import conclude
from forensics.validation import score_fused_lines

EXCHANGES = Path(__file__).resolve().parents[1] / "data" / "demo" / "exchanges"
FILES = {"vicuna-13b": "vicuna-13b.jsonl", "guanaco-13b": "guanaco-13b.jsonl",
         "text-davinci-003": "text-davinci-003.json", "gpt-3.5-turbo-0301": "gpt-3.5-turbo-0301.csv",
         "gpt-3.5-turbo-0613": "gpt-3.5-turbo-0613.jsonl", "gpt-4-0314": "gpt-4-0314.parquet",
         "gpt-4-0613": "gpt-4-0613.jsonl", "llama-2-13b-chat": "llama-2-13b-chat.csv",
         "gemini-pro": "gemini-pro.json", "cohere": "cohere.jsonl"}
FAMILY = {"text-davinci-003": None, "gpt-3.5-turbo-0301": "gpt-3.5-turbo", "gpt-3.5-turbo-0613": "gpt-3.5-turbo",
          "gpt-4-0314": "gpt-4", "gpt-4-0613": "gpt-4"}
TEACHERS = list(FAMILY)
PANEL = ["guanaco-13b", "llama-2-13b-chat", "gemini-pro", "cohere"]


@pytest.fixture(scope="module")
def scored(forensics_cache: Path, monkeypatch_module: pytest.MonkeyPatch) -> dict[str, dict[str, float]]:
    """Fused scores of the sibling case (suspect vicuna-13b) and the control case (suspect guanaco-13b)."""
    monkeypatch_module.setenv("FORENSICS_CACHE", str(forensics_cache))
    frames = {}
    for name, file in FILES.items():
        frame = read_exchanges(EXCHANGES / file).frame
        frames[name] = dict(zip(frame.loc[~frame["empty"], "prompt_norm"], frame.loc[~frame["empty"], "response"],
                                strict=True))
    prompts = sorted(set.intersection(*(set(f) for f in frames.values())), key=text_prompt_key)
    params = Parameters()
    out = {}
    for suspect in ("vicuna-13b", "guanaco-13b"):
        panel = [r for r in PANEL if r != suspect]
        corpus = AlignedCorpus([text_prompt_key(p) for p in prompts], prompts,
                               {s: [frames[s][p] for p in prompts] for s in [suspect, *TEACHERS, *panel]},
                               suspect, TEACHERS, panel)
        vectors = split_by_source(corpus, Embedder().embed(corpus_texts(corpus, params.opening_words)))
        from forensics.stylometry import formatting_matrix

        fmt = {s: formatting_matrix(corpus.responses[s], corpus.prompts) for s in corpus.sources}
        out[suspect] = score_fused_lines(corpus, vectors, fmt, params)["fused"]
    return out


@pytest.fixture(scope="module")
def monkeypatch_module() -> pytest.MonkeyPatch:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def verdict(scores: dict[str, float], suspect: str) -> dict:
    groups = evidence.family_groups(TEACHERS, FAMILY)
    return conclude(suspect, scores, groups, CalibrationSet.load(), Parameters().inconclusive_band)[2]


def test_a_student_of_a_family_with_two_snapshots_gets_the_family_not_a_snapshot(scored: dict) -> None:
    conclusion = verdict(scored["vicuna-13b"], "vicuna-13b")
    assert conclusion["attributed_family"] == "gpt-3.5-turbo"
    assert conclusion["attributed_teacher"] is None
    assert conclusion["outcome"] == "family attributed"
    assert "gpt-3.5-turbo family (gpt-3.5-turbo-0301, gpt-3.5-turbo-0613)" in conclusion["statement"]


def test_a_human_data_control_gets_neither_a_teacher_nor_a_family(scored: dict) -> None:
    conclusion = verdict(scored["guanaco-13b"], "guanaco-13b")
    assert conclusion["attributed_family"] is None and conclusion["attributed_teacher"] is None
    assert conclusion["families_supported"] == [] and conclusion["candidates_supported"] == []


def test_the_snapshots_scores_are_finite_and_the_family_takes_the_best(scored: dict) -> None:
    s = scored["vicuna-13b"]
    assert all(np.isfinite(v) for v in s.values())
    fam = evidence.family_scores(s, evidence.family_groups(TEACHERS, FAMILY))
    assert fam["gpt-3.5-turbo"][0] == max(s["gpt-3.5-turbo-0301"], s["gpt-3.5-turbo-0613"])
