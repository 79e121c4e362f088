"""The shared-wording line: term sets of answer openings, their overlap per prompt, the matrices step 03
writes and step 06 scores; on the real demo case the documented student leans to its teacher's wording."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forensics.case import load_case
from forensics.errors import InputError
from forensics.exchanges import AlignedCorpus, corpus_from_exchanges, join_case
from forensics.scoring import bootstrap_indices
from forensics.weighing import wording_lines
from forensics.wording import (
    WordingMatrices,
    case_overlap,
    measure,
    ochiai,
    opening_terms,
    paired_overlap,
    per_prompt_overlap,
)

DEMO_CASE = Path(__file__).resolve().parents[1] / "data" / "demo" / "case.yaml"


def test_an_opening_is_its_lowercase_tokens_and_adjacent_pairs_punctuation_included() -> None:
    assert opening_terms("Sure! Here it is.", None) == {"sure", "!", "here", "it", "is", ".", "sure !", "! here",
                                                        "here it", "it is", "is ."}
    assert opening_terms("One two three four", 2) == {"one", "two", "one two"}
    assert opening_terms("   ", 40) == frozenset()


def test_the_overlap_is_the_cosine_of_the_sets_indicator_vectors() -> None:
    a, b = frozenset({"x", "y", "z"}), frozenset({"y", "z", "w", "v"})
    vocabulary = sorted(a | b)
    u = np.array([t in a for t in vocabulary], dtype=float)
    v = np.array([t in b for t in vocabulary], dtype=float)
    assert ochiai(a, b) == pytest.approx(u @ v / np.linalg.norm(u) / np.linalg.norm(v))
    assert ochiai(a, frozenset()) == 0.0 and ochiai(frozenset(), frozenset()) == 0.0
    gram = per_prompt_overlap([[a, frozenset()], [b, b]])
    assert gram.shape == (2, 2, 2)
    np.testing.assert_array_equal(gram[:, :, 0], gram[:, :, 0].T)
    assert gram[0, 0, 0] == gram[1, 1, 0] == 1.0
    assert gram[0, 0, 1] == 0.0 and gram[0, 1, 1] == 0.0  # an empty opening resembles nothing, not even itself


def _corpus(answers: dict[str, list[str]], teachers: list[str], references: list[str]) -> AlignedCorpus:
    n = len(next(iter(answers.values())))
    return AlignedCorpus([f"p{i}" for i in range(n)], [f"prompt {i}" for i in range(n)], answers, "S", teachers,
                         references)


def test_a_suspect_that_opens_with_its_teachers_words_leans_to_it_beyond_the_panel() -> None:
    """Synthetic: every model answers each prompt with the prompt's topic words and words of its own; the
    suspect reuses the teacher's own words. The topic words, shared by all, are the panel consensus and do
    not count; the reused words do."""
    rng = np.random.default_rng(3)
    vocabulary = [f"w{i}" for i in range(400)]
    n = 60

    def words(k: int) -> list[str]:
        return list(rng.choice(vocabulary, size=k, replace=False))

    topics = [words(6) for _ in range(n)]
    answers = {s: [" ".join(topics[i] + words(8)) for i in range(n)] for s in ("T", "U", "R1", "R2", "R3", "R4")}
    answers["S"] = [" ".join(topics[i] + answers["T"][i].split()[6:10] + words(4)) for i in range(n)]
    corpus = _corpus(answers, ["T", "U"], ["R1", "R2", "R3", "R4"])
    matrices = measure(corpus, bootstrap_indices(n, 50, 0), opening_words=40)
    line = wording_lines(matrices, "S", ["T", "U"], ["R1", "R2", "R3", "R4"])
    assert line["T"]["z"] > 3 > line["U"]["z"]
    assert np.mean(line["T"]["boot_z"] > 2) > 0.95
    assert "first 40 words" in matrices.statistic()


def test_the_matrices_survive_their_parquet_round_trip_and_refuse_a_missing_pair() -> None:
    rng = np.random.default_rng(1)
    sources = ("S", "T", "R1", "R2")
    sim, boot = rng.random((4, 4)), rng.random((3, 4, 4))
    matrices = WordingMatrices(sources=sources, similarity=sim, boot=boot, opening_words=40)
    back = WordingMatrices.from_frame(matrices.to_frame(), matrices.meta())
    np.testing.assert_array_equal(back.similarity, sim)
    np.testing.assert_array_equal(back.boot, boot)
    assert back.opening_words == 40
    with pytest.raises(InputError, match="incomplete"):
        WordingMatrices.from_frame(matrices.to_frame().iloc[1:], matrices.meta())
    with pytest.raises(InputError, match="do not match"):
        WordingMatrices.from_frame(matrices.to_frame().assign(source="X"), matrices.meta())


def test_on_the_demo_case_alpaca_leans_to_the_wording_of_its_documented_teacher() -> None:
    """Real outputs (the bundled demo case): alpaca-7b, documented as trained on text-davinci-003 outputs,
    opens its answers with text-davinci-003's words more than the panel's models do (z 1.36 with this panel
    of 4 at 199 prompts; one reference, gemini-pro, also shares much of that teacher's wording), and leans
    to no other candidate that way (z within 0.2 of 0 for the four OpenAI chat snapshots)."""
    case = load_case(DEMO_CASE)
    corpus = corpus_from_exchanges(join_case(case).exchanges, case)
    per_prompt = paired_overlap(corpus, case.parameters.opening_words)
    assert per_prompt.shape == (len(corpus.sources), len(corpus.sources), len(corpus.prompt_keys))
    matrices = measure(corpus, np.empty((0, len(corpus.prompt_keys)), dtype=int), case.parameters.opening_words)
    np.testing.assert_array_equal(matrices.similarity, per_prompt.mean(axis=-1))
    z = {t: v["z"] for t, v in wording_lines(matrices, corpus.suspect, corpus.teachers, corpus.references).items()}
    assert z["text-davinci-003"] > 1
    assert z["text-davinci-003"] == max(z.values())
    assert pd.Series(z).drop("text-davinci-003").max() < z["text-davinci-003"] - 1


def test_measuring_in_slices_of_prompts_is_the_same_bits(monkeypatch: pytest.MonkeyPatch) -> None:
    """A large case is read a slice of prompts at a time (memory); no value may change."""
    import forensics.semantic as semantic

    case = load_case(DEMO_CASE)
    corpus = corpus_from_exchanges(join_case(case).exchanges, case)
    whole = case_overlap(corpus, case.parameters.opening_words)
    monkeypatch.setattr(semantic, "PROMPT_SLICE", 7)
    np.testing.assert_array_equal(case_overlap(corpus, case.parameters.opening_words), whole)
