"""Markers (line 3): log-odds, unbiased marker rates, identity leakage, canaries."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from forensics import markers as mk
from forensics.exchanges import AlignedCorpus

Corpus = AlignedCorpus  # the real class: its checks catch a malformed test corpus


def test_fightin_words_matches_monroe_et_al_by_hand() -> None:
    # counts a = (10, 5, 0), b = (2, 8, 5), prior (12, 13, 5) of 30, alpha0 = 3 -> alpha = (1.2, 1.3, 0.5);
    # n_a = n_b = 15, so n + alpha0 - y - alpha = 18 - y - alpha.
    delta, z = mk.fightin_words([10, 5, 0], [2, 8, 5], [12, 13, 5], 3.0)
    d0 = math.log(11.2 / 6.8) - math.log(3.2 / 14.8)
    d1 = math.log(6.3 / 11.7) - math.log(9.3 / 8.7)
    d2 = math.log(0.5 / 17.5) - math.log(5.5 / 12.5)
    np.testing.assert_allclose(delta, [d0, d1, d2])
    np.testing.assert_allclose(z, [d0 / math.sqrt(1 / 11.2 + 1 / 3.2), d1 / math.sqrt(1 / 6.3 + 1 / 9.3),
                                   d2 / math.sqrt(1 / 0.5 + 1 / 5.5)])
    np.testing.assert_allclose([delta[0], z[0]], [2.030468, 3.203309], atol=1e-6)
    # explicit totals (counts that cover only part of a vocabulary)
    delta, _ = mk.fightin_words([10], [2], [12], 3.0, n_a=15, n_b=15, prior_total=30)
    np.testing.assert_allclose(delta, [d0])


def test_phrases_once_per_response_never_across_punctuation_lines_or_prompt() -> None:
    c = Corpus(["k0", "k1"], ["Tell me about dogs.", "Hi"],
               {"s": ["x", "y"],
                "t": ["dogs are loyal. Dogs are loyal, dogs are loyal!\nalpha beta\ngamma delta about dogs",
                      "I know about dogs"],
                "r": ["x", "y"]}, "s", ["t"], ["r"])
    tab = mk.phrase_table(c, {"orders": (2, 3), "min_teacher_df": 1})
    hits = dict(zip(tab.names, tab.hits["t"].toarray().T.tolist(), strict=True))
    assert hits["dogs are loyal"] == [1, 0] and hits["dogs are"] == [1, 0]  # three times, counted once
    assert "loyal dogs" not in hits and "beta gamma" not in hits  # '.' and line breaks end phrases
    assert hits["about dogs"] == [0, 1]  # in the prompt of item 0: not a hit there
    assert tab.totals["t"] == sum(tab.hits["t"].toarray().sum(axis=0))  # every phrase kept here
    np.testing.assert_array_equal(tab.words["t"], [15, 4])


def brute_force_phrases(corpus: Corpus, orders: tuple[int, ...]) -> dict[str, list[set[str]]]:
    """Per source and response, the phrases present (word runs only) and absent from its prompt, by hand."""
    def phrases(text: str) -> set[str]:
        runs, run = [], []
        for tok in mk._phrase_tokens(text) + [mk.LINE_BREAK]:
            if mk.is_word(tok):
                run.append(tok)
            else:
                runs.append(run)
                run = []
        return {" ".join(r[i:i + k]) for r in runs for k in orders for i in range(len(r) - k + 1)}

    prompts = [phrases(t) for t in corpus.prompts]
    return {s: [phrases(t) - prompts[i] for i, t in enumerate(corpus.responses[s])] for s in corpus.sources}


def test_phrase_table_equals_counting_by_hand_whatever_the_slices(monkeypatch: pytest.MonkeyPatch,
                                                                  tmp_path: Path) -> None:
    """The streamed table (tokens spilled, phrases found a slice and an order at a time) is exactly the
    phrase sets counted by hand: the same kept phrases, presence, totals and words, with 3 answers a slice."""
    import random
    import tempfile

    from forensics.stylometry import words

    rng = random.Random(5)
    vocab = ["a", "b", "c", "d", "e", "f", "g"]

    def text() -> str:
        return " ".join(rng.choice(vocab + [",", ".\n"]) for _ in range(rng.randint(0, 12))).replace(" ,", ",")

    n = 11
    c = Corpus([f"k{i}" for i in range(n)], [text() for _ in range(n)],
               {s: [text() for _ in range(n)] for s in ("s", "t1", "t2", "r")}, "s", ["t1", "t2"], ["r"])
    params = {"orders": (2, 3, 4), "min_teacher_df": 2}
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(words, "SLICE", 3)
    tab = mk.phrase_table(c, params)
    assert list(tmp_path.iterdir()) == []  # the spilled tokens are gone
    sets = brute_force_phrases(c, (2, 3, 4))
    kept = {ph for t in ("t1", "t2") for ph in {x for r in sets[t] for x in r}
            if sum(ph in r for r in sets[t]) >= 2}
    assert sorted(tab.names) == sorted(kept) and len(kept) > 10
    for s in c.sources:
        got = tab.hits[s].toarray()
        for i in range(n):
            assert {ph for j, ph in enumerate(tab.names) if got[i, j]} == sets[s][i] & kept
        assert tab.totals[s] == sum(len(r) for r in sets[s])
        np.testing.assert_array_equal(tab.df(s), got.sum(axis=0))
    monkeypatch.setattr(words, "SLICE", 8192)
    whole = mk.phrase_table(c, params)
    assert whole.names == tab.names and all((whole.hits[s] != tab.hits[s]).nnz == 0 for s in c.sources)


def zigzag(prompt1: str = "p one") -> Corpus:
    return Corpus(
        ["k0", "k1"], ["p zero", prompt1],
        {"s": ["zig zag plus eight more words here ok fine now",
               "ten words without the pair in it at all ok"],
         "t": ["zig zag", "zig zag"],
         "r1": ["zig zag a b", "c d zig zag e f"],
         "r2": ["nothing here", "nor here"]},
        "s", ["t"], ["r1", "r2"])


ZZ = {"orders": (2,), "min_teacher_df": 1, "min_z": 0.0, "top_k": 1}


def test_marker_rate_per_100_words_with_leave_one_out_by_hand() -> None:
    out = mk.marker_rates(zigzag(), np.array([[0, 0], [1, 1]]), ZZ)["t"]
    assert out["marker_phrases"] == ["zig zag"]
    # suspect: 1 hit in 10 + 10 words; r1 (measured on markers chosen against r2 alone): 2 hits in 4 + 6 words
    assert out["suspect"] == pytest.approx(100 * 1 / 20)
    assert out["references"]["r1"] == pytest.approx(100 * 2 / 10)
    assert out["references"]["r2"] == pytest.approx(0.0)
    assert out["teacher"] == pytest.approx(100 * 2 / 4)
    np.testing.assert_allclose(out["boot_suspect"], [100 * 2 / 20, 0.0])
    np.testing.assert_allclose(out["boot_references"]["r1"], [100 * 2 / 8, 100 * 2 / 12])
    assert out["reference_marker_phrases"] == {"r1": ["zig zag"], "r2": ["zig zag"]}
    # a phrase found in an item's prompt is no hit in that item
    out = mk.marker_rates(zigzag("say zig zag"), None, ZZ)["t"]
    assert out["references"]["r1"] == pytest.approx(100 * 1 / 10)
    assert out["boot_suspect"].shape == (0,)


def loo_corpus(n: int = 12) -> Corpus:
    rng = np.random.default_rng(1)
    words = [f"w{i}" for i in range(40)]

    def filler(k: int) -> str:
        return " ".join(rng.choice(words, size=k))

    tea = [f"{filler(6)}. I hope this helps. {filler(4)}. In a nutshell it works" for _ in range(n)]
    sus = [f"{filler(8)}. I hope this helps" if i % 2 else filler(10) for i in range(n)]
    r1 = [f"{filler(5)}. I hope this helps. {filler(3)}" for _ in range(n)]  # shares the teacher's habit
    r2 = [filler(9) for _ in range(n)]
    r3 = [f"{filler(7)}. In a nutshell it works" if i % 3 == 0 else filler(7) for i in range(n)]
    return Corpus([f"k{i:02d}" for i in range(n)], [f"question {i}" for i in range(n)],
                  {"sus": sus, "tea": tea, "r1": r1, "r2": r2, "r3": r3}, "sus", ["tea"], ["r1", "r2", "r3"])


def test_leave_one_out_selection_never_uses_the_measured_source() -> None:
    params = {"min_teacher_df": 3, "min_z": 1.0}
    c = loo_corpus()
    base = mk.marker_rates(c, None, params)["tea"]
    # r1 shares "i hope this helps": chosen without r1 it is a marker, and r1 is measured on it
    assert "i hope this helps" in base["reference_marker_phrases"]["r1"]
    assert base["references"]["r1"] > base["references"]["r2"]
    # r1's own text never moves the phrases r1 is measured on ...
    other = replace(c, responses={**c.responses, "r1": ["totally different words here"] * 12})
    moved = mk.marker_rates(other, None, params)["tea"]
    assert moved["reference_marker_phrases"]["r1"] == base["reference_marker_phrases"]["r1"]
    assert moved["marker_phrases"] != base["marker_phrases"]  # ... while the suspect's (r1 in panel) move
    # the suspect's text never moves any selection
    other = replace(c, responses={**c.responses, "sus": ["I hope this helps in a nutshell"] * 12})
    moved = mk.marker_rates(other, None, params)["tea"]
    assert moved["marker_phrases"] == base["marker_phrases"]
    assert moved["reference_marker_phrases"] == base["reference_marker_phrases"]
    assert moved["suspect"] > base["suspect"]
    # teacher_markers: the panel's base rates are shown next to the teacher's rate
    tm = mk.teacher_markers(c, "tea", ["r2", "r3"], top_k=5, min_z=1.0, params=params)
    assert list(tm.columns[:6]) == ["column", "phrase", "order", "z", "delta", "teacher_rate"]
    assert {"rate:r2", "rate:r3"} <= set(tm.columns) and len(tm) <= 5
    assert tm["z"].is_monotonic_decreasing


def test_identity_leaks_only_on_prompts_that_do_not_ask() -> None:
    prompts = ["Write a poem about the sea.", "Who created you?", "What is 2+2?", "Tell me about ChatGPT.",
               "Name a fruit."]
    c = Corpus([f"k{i}" for i in range(5)], prompts, {
        "s": ["As an AI language model developed by OpenAI, I wrote: waves.", "I was created by OpenAI.",
              "I'm Claude, and 2+2=4.", "ChatGPT is made by OpenAI.", "The company OpenAI is not a fruit."],
        "t": ["Waves.", "I am a large language model, trained by Google.", "4",
              "I am ChatGPT.", "I am a large language model, trained by Google. Apple."],
    }, "s", ["t"], [])
    assert [mk.eligible_for_identity(p) for p in prompts] == [True, False, True, False, True]
    out = mk.identity_leaks(c)
    assert out["n_eligible"] == 3
    s = out["sources"]["s"]
    assert s["responses"] == 2 and s["by_vendor"] == {"Anthropic": 1, "OpenAI": 1} and s["unnamed"] == 1
    assert s["rate"] == pytest.approx(2 / 3)
    t = out["sources"]["t"]
    assert t["by_vendor"] == {"Google": 1} and t["responses"] == 1  # prompt 1 asked: not counted
    assert {(d["source"], d["prompt_key"], d["vendor"]) for d in out["transcripts"]} == {
        ("s", "k0", "OpenAI"), ("s", "k0", "unnamed"), ("s", "k2", "Anthropic"), ("t", "k4", "Google"),
        ("t", "k4", "unnamed")}
    assert list(out["per_prompt"]["s"]) == [True, False, True, False, False]


def test_canaries_exact_case_sensitive_after_nfkc() -> None:
    c = Corpus(["a", "b"], ["p", "q"], {"s": ["ZEBRA-42 and ＺＥＢＲＡ-42", "zebra-42"], "t": ["none", "x"]},
               "s", ["t"], [])
    out = mk.canary_hits(c, ["ＺＥＢＲＡ-42", "ZEBRA-42"])  # the same canary once NFKC-normalised
    assert out["canaries"] == ["ZEBRA-42"]
    assert out["counts"]["s"] == {"ZEBRA-42": 2} and out["responses"]["s"] == {"ZEBRA-42": 1}
    assert out["counts"]["t"] == {"ZEBRA-42": 0}
    assert [(d["source"], d["prompt_key"]) for d in out["transcripts"]] == [("s", "a")]


def test_summary_is_jsonable_and_sorted() -> None:
    c = zigzag()
    rates = mk.marker_rates(c, np.array([[0, 1]]), ZZ)
    out = mk.summarise_markers(rates, mk.identity_leaks(c), mk.canary_hits(c, ["zag"]))
    text = json.dumps(out, allow_nan=False)
    assert json.loads(text) == out
    assert out["teachers"]["t"]["markers"][0]["phrase"] == "zig zag"
    assert out["teachers"]["t"]["ci95_suspect"] == [5.0, 5.0]
    assert list(out) == sorted(out)


def test_real_data_runs_and_is_deterministic(benchmark_dir: Path) -> None:
    files = sorted(benchmark_dir.glob("*.json"))[:4]
    data = [{r["instruction"]: r["output"] or "" for r in json.loads(f.read_text(encoding="utf-8"))}
            for f in files]
    keys = sorted(set.intersection(*({k for k, v in d.items() if v.strip()} for d in data)))[:150]
    names = [f.stem for f in files]
    c = Corpus(keys, keys, {n: [d[k] for k in keys] for n, d in zip(names, data, strict=True)},
               names[0], [names[1]], names[2:])
    idx = np.random.default_rng(0).integers(0, len(keys), size=(20, len(keys)))
    a = mk.marker_rates(c, idx)
    b = mk.marker_rates(c, idx)
    t = names[1]
    assert a[t]["marker_phrases"] == b[t]["marker_phrases"]
    assert a[t]["suspect"] == b[t]["suspect"] and a[t]["references"] == b[t]["references"]
    np.testing.assert_array_equal(a[t]["boot_suspect"], b[t]["boot_suspect"])
    assert a[t]["boot_suspect"].shape == (20,)
    ident = mk.identity_leaks(c)
    assert json.dumps(mk.summarise_markers(a, ident), allow_nan=False) == json.dumps(
        mk.summarise_markers(b, mk.identity_leaks(c)), allow_nan=False)


def test_parameter_errors_are_case_file_errors() -> None:
    from forensics.errors import CaseFileError

    with pytest.raises(CaseFileError, match="orders must be positive"):
        mk.MarkerParams(orders=())
