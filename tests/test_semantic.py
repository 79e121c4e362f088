"""The semantic line: openings carry the statistic, whole answers are reported beside it."""

from __future__ import annotations

import numpy as np

from forensics.exchanges import AlignedCorpus
from forensics.scoring import bootstrap_indices
from forensics.semantic import controls_table, per_prompt_frame, semantic_line

SOURCES = ["S", "T", "R1", "R2", "R3"]


def _corpus(n: int) -> AlignedCorpus:
    keys = [f"p{i:02d}" for i in range(n)]
    return AlignedCorpus(keys, [f"prompt {i}" for i in range(n)], {s: [f"{s} answer {i}" for i in range(n)]
                                                                    for s in SOURCES}, "S", ["T"], ["R1", "R2", "R3"])


def _vectors(rng: np.random.Generator, n: int, lean: float) -> dict[str, np.ndarray]:
    """Unit vectors per prompt: a shared topic direction, the teacher's own direction, and noise; the
    suspect mixes in ``lean`` of the teacher's direction."""
    topic = rng.normal(size=(n, 16))
    teacher_own = rng.normal(size=(n, 16))
    out = {"T": topic + teacher_own}
    for s in ("R1", "R2", "R3"):
        out[s] = topic + rng.normal(size=(n, 16))
    out["S"] = topic + lean * teacher_own + rng.normal(size=(n, 16))
    return {s: (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32) for s, v in out.items()}


def test_the_line_scores_the_openings_and_reports_whole_answers_beside_them() -> None:
    rng = np.random.default_rng(7)
    n = 60
    corpus = _corpus(n)
    openings = _vectors(rng, n, lean=1.5)  # the openings lean towards T ...
    whole = _vectors(rng, n, lean=0.0)  # ... the whole answers do not
    line = semantic_line(corpus, openings, bootstrap_indices(n, 20, 0), full_vectors=whole, opening_words=40)
    entry = line["entries"]["T"]
    assert entry["z"] > 2 and "first 40 words" in entry["statistic"]
    assert entry["full_answers"]["z"] < entry["z"] - 1
    assert len(line["boot_z"]["T"]) == 20 and line["opening_words"] == 40
    table = controls_table(line)
    assert table.loc["T", "controlled z (affinity vs panel)"] == entry["z"]
    assert table.loc["T", "whole answers: controlled z"] == entry["full_answers"]["z"]
    frame = per_prompt_frame(corpus, line["per_prompt"], line["per_prompt_full_answers"])
    assert list(frame.columns[-2:]) == ["similarity", "similarity_full_answers"] and len(frame) == 4 * n


def test_without_whole_answers_the_line_is_unchanged_and_says_so() -> None:
    rng = np.random.default_rng(3)
    corpus = _corpus(30)
    vectors = _vectors(rng, 30, lean=1.0)
    line = semantic_line(corpus, vectors, bootstrap_indices(30, 5, 0))
    again = semantic_line(corpus, vectors, bootstrap_indices(30, 5, 0), full_vectors=vectors)
    assert line["entries"]["T"]["z"] == again["entries"]["T"]["z"]
    assert "full_answers" not in line["entries"]["T"] and line["per_prompt_full_answers"] is None
    assert again["entries"]["T"]["full_answers"]["z"] == again["entries"]["T"]["z"]
