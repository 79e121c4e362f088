"""The semantic line: openings carry the statistic, whole answers are reported beside it; step 02 measures,
the shared scorer (step 06) scores."""

from __future__ import annotations

import warnings

import numpy as np

from forensics.exchanges import AlignedCorpus
from forensics.scoring import bootstrap_indices, panel_relative
from forensics.semantic import (
    SemanticMatrices,
    consensus_removed,
    controls_table,
    paired_similarity,
    per_prompt_frame,
    per_prompt_similarity,
    semantic_matrices,
)
from forensics.weighing import embedding_lines

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


def _matrices(corpus: AlignedCorpus, openings: dict[str, np.ndarray], boot: np.ndarray,
              whole: dict[str, np.ndarray] | None = None) -> SemanticMatrices:
    per_prompt_whole = per_prompt_similarity(whole, corpus.sources) if whole is not None else None
    return semantic_matrices(corpus, per_prompt_similarity(openings, corpus.sources), boot, per_prompt_whole,
                             opening_words=40)


def test_the_line_scores_the_openings_and_reports_whole_answers_beside_them() -> None:
    rng = np.random.default_rng(7)
    n = 60
    corpus = _corpus(n)
    openings = _vectors(rng, n, lean=1.5)  # the openings lean towards T ...
    whole = _vectors(rng, n, lean=0.0)  # ... the whole answers do not
    matrices = _matrices(corpus, openings, bootstrap_indices(n, 20, 0), whole)
    line = embedding_lines(matrices)["T"]
    assert line["z"] > 2 and "first 40 words" in matrices.statistic()
    assert line["full_answers"]["z"] < line["z"] - 1
    assert len(line["boot_z"]) == 20 and matrices.opening_words == 40
    table = controls_table(matrices)
    assert table.loc["T", "controlled z (affinity vs panel)"] == round(line["z"], 6)
    assert table.loc["T", "whole answers: controlled z"] == round(line["full_answers"]["z"], 6)
    frame = per_prompt_frame(corpus, per_prompt_similarity(openings, SOURCES), per_prompt_similarity(whole, SOURCES))
    assert list(frame.columns[-2:]) == ["similarity", "similarity_full_answers"] and len(frame) == 4 * n


def test_the_scorer_gives_the_panel_relative_z_of_the_mean_similarities() -> None:
    """The line's z is scoring.panel_relative of the prompt-mean matrix, full data and every resample."""
    rng = np.random.default_rng(5)
    n = 40
    corpus = _corpus(n)
    openings = _vectors(rng, n, lean=1.0)
    boot = bootstrap_indices(n, 7, 1)
    line = embedding_lines(_matrices(corpus, openings, boot))["T"]
    per_prompt = per_prompt_similarity(openings, SOURCES)
    expected = panel_relative(per_prompt.mean(axis=-1), SOURCES, "S", ["T"], ["R1", "R2", "R3"])["T"]
    assert line["z"] == float(expected["z"])
    third = panel_relative(per_prompt[:, :, boot[2]].mean(axis=-1), SOURCES, "S", ["T"], ["R1", "R2", "R3"])["T"]
    assert line["boot_z"][2] == float(third["z"])


def test_without_whole_answers_the_line_is_unchanged_and_says_so() -> None:
    rng = np.random.default_rng(3)
    corpus = _corpus(30)
    vectors = _vectors(rng, 30, lean=1.0)
    line = embedding_lines(_matrices(corpus, vectors, bootstrap_indices(30, 5, 0)))["T"]
    again = embedding_lines(_matrices(corpus, vectors, bootstrap_indices(30, 5, 0), whole=vectors))["T"]
    assert line["z"] == again["z"]
    assert line["full_answers"] is None
    assert again["full_answers"]["z"] == again["z"]


def test_the_matrices_survive_their_artifact_bit_for_bit() -> None:
    """Step 06 scores what step 02 measured: the Parquet round trip keeps every float64 bit."""
    rng = np.random.default_rng(11)
    corpus = _corpus(25)
    vectors = _vectors(rng, 25, lean=0.5)
    matrices = _matrices(corpus, vectors, bootstrap_indices(25, 4, 0), whole=_vectors(rng, 25, lean=0.0))
    back = SemanticMatrices.from_frame(matrices.to_frame(), matrices.meta())
    assert back.sources == matrices.sources and back.references == matrices.references
    np.testing.assert_array_equal(back.openings, matrices.openings)
    np.testing.assert_array_equal(back.openings_boot, matrices.openings_boot)
    np.testing.assert_array_equal(back.full_answers, matrices.full_answers)
    assert embedding_lines(back)["T"]["z"] == embedding_lines(matrices)["T"]["z"]


def test_step_06_refuses_matrices_measured_for_another_panel() -> None:
    """The semantic matrices carry the roles they were measured for; scoring them for other roles stops."""
    import pytest

    from forensics.errors import ForensicsError
    from forensics.evidence import score_lines
    from forensics.wording import WordingMatrices

    rng = np.random.default_rng(2)
    corpus = _corpus(20)
    matrices = _matrices(corpus, _vectors(rng, 20, lean=0.5), bootstrap_indices(20, 3, 0))
    with pytest.raises(ForensicsError, match="semantic.json.*measured for"):
        score_lines(matrices, {}, {}, WordingMatrices(matrices.sources, matrices.openings, matrices.openings_boot),
                    "S", ["T"], ["R1", "R2"])


def test_per_prompt_similarity_in_slices_is_the_same_bits(monkeypatch) -> None:
    """Slicing the prompts bounds memory on a large case and changes no bit of the result."""
    import forensics.semantic as semantic

    rng = np.random.default_rng(9)
    vectors = _vectors(rng, 50, lean=0.7)
    whole = per_prompt_similarity(vectors, SOURCES)
    monkeypatch.setattr(semantic, "PROMPT_SLICE", 7)
    np.testing.assert_array_equal(per_prompt_similarity(vectors, SOURCES), whole)


def test_incomplete_or_foreign_matrices_are_refused_in_one_line() -> None:
    """A matrices artifact missing a cell, naming a stranger, or a record without roles: InputError."""
    import pytest

    from forensics.errors import InputError

    rng = np.random.default_rng(4)
    corpus = _corpus(15)
    matrices = _matrices(corpus, _vectors(rng, 15, lean=0.3), bootstrap_indices(15, 2, 0))
    frame, meta = matrices.to_frame(), matrices.meta()
    with pytest.raises(InputError, match="incomplete"):
        SemanticMatrices.from_frame(frame.iloc[1:], meta)
    stranger = frame.copy()
    stranger.loc[0, "source"] = "X"
    with pytest.raises(InputError, match="name sources"):
        SemanticMatrices.from_frame(stranger, meta)
    with pytest.raises(InputError, match="lacks suspect"):
        SemanticMatrices.from_frame(frame, {k: v for k, v in meta.items() if k != "suspect"})


def _centred_by_hand(vectors: dict[str, np.ndarray], sources: list[str], references: list[str]) -> np.ndarray:
    """The rule of :func:`consensus_removed` on the vectors themselves: a reference X's row under the mean of
    the other references; any other source's row averaged over those consensuses, each reference Y's entry
    over the consensuses that contain Y."""
    def cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
        ok = (na > 1e-6) & (nb > 1e-6)
        return np.where(ok, (a * b).sum(axis=1) / np.where(ok, na * nb, 1.0), 0.0)

    def centre(excluded: str) -> np.ndarray:
        return np.mean([vectors[r].astype(np.float64) for r in references if r != excluded], axis=0)

    n = len(vectors[sources[0]])
    out = np.zeros((len(sources), len(sources), n))
    for i, x in enumerate(sources):
        for j, y in enumerate(sources):
            ks = [x] if x in references else [k for k in references if k != y]
            out[i, j] = np.mean([cos(vectors[x] - centre(k), vectors[y] - centre(k)) for k in ks], axis=0)
    return out


def test_consensus_removal_equals_centring_the_vectors_by_hand() -> None:
    rng = np.random.default_rng(3)
    vectors = _vectors(rng, 25, lean=1.0)
    per_prompt = per_prompt_similarity(vectors, SOURCES)
    removed = consensus_removed(per_prompt, SOURCES, ["R1", "R2", "R3"])
    np.testing.assert_allclose(removed, _centred_by_hand(vectors, SOURCES, ["R1", "R2", "R3"]), atol=1e-6)
    assert not np.allclose(removed, per_prompt, atol=0.05)  # it is not the plain cosine
    corpus = _corpus(25)
    np.testing.assert_array_equal(paired_similarity(vectors, corpus), removed)


def test_with_a_panel_of_two_a_reference_seen_from_the_other_has_no_direction() -> None:
    """Seen from R1, the consensus is R2's answer itself: R2 centred is the zero vector, similarity 0 (not
    NaN); the suspect, seen as each reference in turn, compares with R1 only under R1 itself: 0 as well."""
    rng = np.random.default_rng(4)
    vectors = _vectors(rng, 12, lean=1.0)
    sources = ["S", "T", "R1", "R2"]
    removed = consensus_removed(per_prompt_similarity(vectors, sources), sources, ["R1", "R2"])
    assert np.isfinite(removed).all()
    assert (removed[2, 3] == 0).all() and (removed[3, 2] == 0).all()
    assert (removed[0, 2] == 0).all() and (removed[0, 3] == 0).all()  # the suspect seen as each reference is
    np.testing.assert_allclose(removed, _centred_by_hand(vectors, sources, ["R1", "R2"]), atol=1e-6)


def test_an_independent_suspect_is_not_pushed_either_way_by_the_consensus() -> None:
    """The suspect is seen under consensuses of as many models as a reference is: an independent suspect's z
    averages 0 over many draws (centred on all three references instead, it sits 1.6 below on average: a
    consensus of more models is closer to every answer), and a suspect that leans towards T stands out."""
    n = 80
    corpus = _corpus(n)
    none = np.empty((0, n), dtype=int)

    def z(lean: float, seed: int) -> float:
        per_prompt = paired_similarity(_vectors(np.random.default_rng(seed), n, lean=lean), corpus)
        return embedding_lines(semantic_matrices(corpus, per_prompt, none))["T"]["z"]

    independent = [z(0.0, seed) for seed in range(40)]
    assert abs(np.mean(independent)) < 0.35
    assert np.mean([z(0.8, seed) for seed in range(10)]) > 2


def test_a_single_reference_leaves_the_plain_cosines() -> None:
    """No consensus can leave the only reference out: nothing is centred (no NaN, no warning)."""
    vectors = _vectors(np.random.default_rng(6), 10, lean=1.0)
    sources = ["S", "T", "R1"]
    per_prompt = per_prompt_similarity(vectors, sources)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(consensus_removed(per_prompt, sources, ["R1"]), per_prompt)
