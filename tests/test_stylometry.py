"""Stylometry (line 2): every statistic pinned on hand-computable inputs, plus one real-data smoke test."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import sparse

from forensics import stylometry as st
from forensics.errors import CaseFileError
from forensics.exchanges import AlignedCorpus

Corpus = AlignedCorpus  # the real class: its checks catch a malformed test corpus


# A 3-source x 4-word relative-frequency table whose z-scores (ddof=1) are round numbers:
# word 1: mean .10, sd .02 -> z (0, -1, 1); words 2-3: mean .05/.02, sd .01 -> z (0, 1, -1);
# word 4: (.01, .01, .02): mean .04/3, sd sqrt(((-.01/3)**2 * 2 + (.02/3)**2) / 2) = .01/sqrt(3)
#         -> z (-1/sqrt(3), -1/sqrt(3), 2/sqrt(3)).
FREQ = np.array([[0.10, 0.05, 0.02, 0.01],
                 [0.08, 0.06, 0.03, 0.01],
                 [0.12, 0.04, 0.01, 0.02]])
A = 1 / math.sqrt(3)
Z = np.array([[0, 0, 0, -A], [-1, 1, 1, -A], [1, -1, -1, 2 * A]])


def test_zscore_follows_stylo_sample_sd() -> None:
    np.testing.assert_allclose(st.zscore(FREQ), Z, atol=1e-12)
    # ddof=0 (population sd, smaller) scales every z by sqrt(S/(S-1)) = sqrt(3/2)
    np.testing.assert_allclose(st.zscore(FREQ, ddof=0), Z * math.sqrt(3 / 2), atol=1e-12)
    # a feature constant across sources carries nothing: z = 0, not NaN
    z = st.zscore(np.array([[0.1, 0.5], [0.2, 0.5], [0.3, 0.5]]))
    assert np.all(z[:, 1] == 0) and np.all(np.isfinite(z))


def test_burrows_delta_is_mean_absolute_z_difference() -> None:
    d = st.burrows_delta(Z)
    # A-B: |0+1| + |0-1| + |0-1| + 0 = 3, over 4 words; A-C: 3 + 3A; B-C: 6 + 3A
    np.testing.assert_allclose(d[0, 1], 3 / 4)
    np.testing.assert_allclose(d[0, 2], (3 + 3 * A) / 4)
    np.testing.assert_allclose(d[1, 2], (6 + 3 * A) / 4)
    np.testing.assert_allclose(d, d.T)
    assert np.all(np.diag(d) == 0)
    np.testing.assert_allclose(d[1, 2], 1.933013, atol=1e-6)


def test_cosine_delta_is_one_minus_cosine_of_z_vectors() -> None:
    d = st.cosine_delta(Z)
    # A.B = 1/3, |A| = 1/sqrt(3), |B| = sqrt(10/3) -> cos = 1/sqrt(10)
    np.testing.assert_allclose(d[0, 1], 1 - 1 / math.sqrt(10))
    # A.C = -2/3, |C| = sqrt(13/3) -> cos = -2/sqrt(13)
    np.testing.assert_allclose(d[0, 2], 1 + 2 / math.sqrt(13))
    # B.C = -11/3 -> cos = -11/sqrt(130)
    np.testing.assert_allclose(d[1, 2], 1 + 11 / math.sqrt(130))
    np.testing.assert_allclose(d, d.T)
    assert np.all(np.diag(d) == 0)
    # batched input gives the same matrices
    np.testing.assert_allclose(st.cosine_delta(np.stack([Z, Z]))[1], d)
    np.testing.assert_allclose(st.burrows_delta(np.stack([Z, Z]))[0], st.burrows_delta(Z))


def test_tokenizer_is_documented_and_deterministic() -> None:
    assert st.tokenize("Don't panic -- it’s 42!") == ["don't", "panic", "it's", "42"]
    assert st.tokenize("Don't panic -- it's 42!", punctuation=True) == [
        "don't", "panic", "-", "-", "it's", "42", "!"]
    # NFKC folds full-width letters
    assert st.tokenize("Well-known **Bold** ＡＢＣ") == ["well", "known", "bold", "abc"]
    assert st.tokenize("the students' books", punctuation=True) == ["the", "students", "'", "books"]


def test_text_distortion_of_a_sentence() -> None:
    toks = st.tokenize("The cat sat on 2 mats, didn't it? *Yes*", punctuation=True)
    keep = {"the", "on", "it"}
    assert st.distort(toks, keep) == ["the", "*", "*", "on", "#", "*", ",", "*", "it", "?", "\\*", "*", "\\*"]
    assert st.distort(toks, keep, mode="multi") == [
        "the", "***", "***", "on", "#", "****", ",", "******", "it", "?", "\\*", "***", "\\*"]


def small_corpus() -> Corpus:
    prompts = ["Say hi.", "List two fruits.", "What is rain?", "Tell me a joke."]
    responses = {
        "sus": ["Sure! Hi there.", "Sure! Here are two:\n- apple\n- pear",
                "Rain is water falling from clouds.",
                "Sure! Why did the chicken cross the road?"],
        "tea": ["Certainly! Hi.", "Certainly! Here are two:\n- apple\n- pear", "Rain is water that falls.",
                "Certainly! A joke: the road was crossed."],
        "r1": ["Hello.", "1. Apple\n2. Pear", "It is water from the sky, falling as drops.",
               "I do not know a joke, sorry."],
        "r2": ["Hi", "* apple\n* pear", "Rain: water droplets.", "A joke about the sky and the rain."],
    }
    return Corpus([f"k{i}" for i in range(4)], prompts, responses, "sus", ["tea"], ["r1", "r2"])


def test_mfw_table_uses_every_source_and_breaks_ties_alphabetically() -> None:
    c = Corpus(["a", "b"], ["p", "q"], {"s": ["b a", "d"], "t": ["a b", "d"], "r": ["c c", "d"]},
               "s", ["t"], ["r"])
    f = st.stylometric_features(c, {"mfw": 3, "char_top": 5, "distortion_top": 5, "distortion_keep": 2})
    # mean over sources of relative frequencies: d = 1/3; a = b = c = (1/3 + 1/3 + 0)/3 = (0 + 0 + 2/3)/3
    # = 2/9: the tie is broken alphabetically, so c (which only r uses) is the one left out
    assert f.mfw.names == ["d", "a", "b"]
    prof = f.mfw.profiles(c.sources)[0]  # row 0: the full corpus
    np.testing.assert_allclose(prof, [[1 / 3, 1 / 3, 1 / 3], [1 / 3, 1 / 3, 1 / 3], [1 / 3, 0, 0]])
    np.testing.assert_array_equal(f.lengths["r"], [2, 1])


def test_char_ngrams_do_not_span_words_by_default() -> None:
    c = Corpus(["a"], ["p"], {"s": ["ab ab"], "t": ["abc"], "r": ["b a"]}, "s", ["t"], ["r"])
    f = st.stylometric_features(c, {"char_top": 50, "mfw": 5, "distortion_top": 5})
    names = set(f.char.names)
    assert {" ab", "ab "} <= names and "b a" not in names and "abc" in names and " b " in names
    row = dict(zip(f.char.names, f.char.num["s"][0], strict=True))
    assert row[" ab"] == 2 and row["ab "] == 2
    assert f.char.den["s"][0] == 4  # " ab", "ab " twice: nothing across the space
    g = st.stylometric_features(c, {"char_top": 50, "mfw": 5, "distortion_top": 5,
                                    "char_word_boundary": False})
    assert "b a" in g.char.names


def test_distorted_ngrams_match_distort() -> None:
    c = small_corpus()
    per_response = np.vstack([np.ones((1, 4)), np.eye(4)])  # row 0 the corpus, then one row per response
    f = st.stylometric_features(c, {"mfw": 10, "distortion_keep": 5, "distortion_top": 10_000,
                                    "char_top": 10}, weights=per_response)
    keep = set(f.mfw.names[:5])
    # recount the distorted 2-3-grams of one response by hand from distort()
    toks = st.distort(st.tokenize(c.responses["tea"][1], punctuation=True), keep)
    grams = [" ".join(toks[i:i + n]) for n in (2, 3) for i in range(len(toks) - n + 1)]
    row = f.distorted.num["tea"][2]  # weight row 2: response 1
    got = {name: row[j] for j, name in enumerate(f.distorted.names) if row[j]}
    assert got == {g: grams.count(g) for g in set(grams)}
    assert f.distorted.den["tea"][2] == len(grams)


def demo_corpus() -> Corpus:
    from forensics.case import load_case
    from forensics.exchanges import join_case

    return join_case(load_case(Path(__file__).resolve().parents[1] / "data/demo/case.yaml")).corpus()


def test_features_do_not_depend_on_how_answers_are_sliced(monkeypatch: pytest.MonkeyPatch,
                                                          tmp_path: Path) -> None:
    """Streaming is exact: answers read 8192 at a time or 5 at a time (tokens spilled, n-gram tables built
    across slices and sources, counts pooled slice by slice) give bit-identical features, on real answers."""
    import tempfile

    from forensics.stylometry import ngrams, words

    c = demo_corpus()
    boot = np.random.default_rng(3).integers(0, len(c), size=(5, len(c)))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    whole = st.stylometric_features(c, None, boot)
    monkeypatch.setattr(words, "SLICE", 5)
    monkeypatch.setattr(ngrams, "_CHAR_SLICE", 3)
    sliced = st.stylometric_features(c, None, boot)
    assert list(tmp_path.iterdir()) == []  # the spilled tokens are gone
    for family in ("mfw", "char", "distorted", "formatting"):
        a, b = getattr(whole, family), getattr(sliced, family)
        assert a.names == b.names and len(a.names) > 0
        for s in c.sources:
            np.testing.assert_array_equal(a.num[s], b.num[s])
            np.testing.assert_array_equal(a.den[s], b.den[s])
    for s in c.sources:
        np.testing.assert_array_equal(whole.lengths[s], sliced.lengths[s])
    with pytest.raises(ValueError, match="other prompt resamples"):
        st.stylometric_similarities(c, boot[:4], features=whole)


def test_gram_table_gives_one_id_per_ngram_across_streams() -> None:
    from forensics.stylometry.words import GramTable

    streams = [(np.array([5, 7, 5, 7, 9]), np.array([0, 0, 0, 0, 1])), (np.array([7, 5, 7]), np.array([0, 0, 0]))]
    table = GramTable()
    for order in (1, 2):
        keys = [list(table.occurrences(sym, doc, order))[-1][2] for sym, doc in streams]
        table.add(np.concatenate(keys))
    grams = []
    for sym, doc in streams:
        *_, (order, starts, _, ids) = table.occurrences(sym, doc, 2)
        assert order == 2
        grams.append({tuple(table.symbols(2, ids[i:i + 1])[0]): int(ids[i]) for i in range(len(ids))})
    # (5, 7) and (7, 5) in both streams, with the same ids; (7, 9) spans two documents: never a bigram
    assert set(grams[0]) == {(5, 7), (7, 5)} and set(grams[1]) == {(7, 5), (5, 7)}
    assert grams[0] == grams[1]


def test_formatting_features_on_crafted_responses() -> None:
    names = [f.name for f in st.FORMATTING_FEATURES]
    texts = ["Sure! Here's how:\n\n## Steps\n1. Mix.\n2. Bake.\n- **Tip**: wait\n\nI hope this helps! "
             "Let me know if you have any questions.",
             "I'm sorry, but I'm unable to help with that.",
             "As an AI language model, I cannot browse.\nOverall, no."]
    num, den = st.formatting_matrix(texts, ["How do I bake?", "Do a bad thing", "Browse for me"])
    v = {n: (num[:, j], den[:, j]) for j, n in enumerate(names)}
    assert list(v["open_sure"][0]) == [1, 0, 0]
    assert list(v["markdown_headers"][0]) == [1, 0, 0]
    assert list(v["numbered_items"][0]) == [2, 0, 0]
    assert list(v["bullet_dash"][0]) == [1, 0, 0]
    assert list(v["bold"][0]) == [1, 0, 0]
    assert list(v["close_offer_help"][0]) == [1, 0, 0]
    assert list(v["close_hope_helps"][0]) == [1, 0, 0]
    assert list(v["refusal_sorry"][0]) == [0, 1, 0] and list(v["refusal_cannot"][0]) == [0, 1, 0]
    assert list(v["refusal_as_ai"][0]) == [0, 0, 1] and list(v["open_as_ai"][0]) == [0, 0, 1]
    assert list(v["close_summary"][0]) == [0, 0, 1]
    assert list(v["paragraph_breaks"][0]) == [2, 0, 0]
    assert v["mean_sentence_length"][1][1] == 1 and v["mean_sentence_length"][0][1] == 9
    assert v["exclamations"][1][0] == len(st.tokenize(texts[0]))  # per-1k-words rates divide by words


def test_similarities_shapes_signs_and_bootstrap() -> None:
    c = small_corpus()
    params = {"mfw": 20, "char_top": 50, "distortion_top": 50, "distortion_keep": 10}
    idx = np.random.default_rng(0).integers(0, 4, size=(7, 4))
    sims = st.stylometric_similarities(c, idx, params)
    assert list(sims) == list(st.FAMILIES)
    for fam in sims.values():
        assert fam["sim"].shape == (4, 4) and fam["boot"].shape == (7, 4, 4)
        np.testing.assert_allclose(fam["sim"], fam["sim"].T, atol=1e-12)
        assert np.all(np.diag(fam["sim"]) == 0) and np.all(fam["sim"] <= 1e-12)  # sim = -distance
    # a "resample" that draws every prompt once is the full corpus
    ident = st.stylometric_similarities(c, np.arange(4)[None, :], params)
    for name, fam in ident.items():
        np.testing.assert_allclose(fam["boot"][0], sims[name]["sim"], atol=1e-12)
    # the teacher's near-copy is the suspect's most similar source in the word profile
    assert np.argmax(sims["mfw_cosine_delta"]["sim"][0, 1:]) == 0
    assert st.stylometric_similarities(c, None, params)["formatting"]["boot"].shape == (0, 4, 4)


def test_bootstrap_weights_count_draws() -> None:
    w = st.bootstrap_weights(np.array([[0, 0, 2], [1, 2, 2]]), 3)
    np.testing.assert_array_equal(w, [[2, 0, 1], [0, 1, 2]])
    with pytest.raises(ValueError):
        st.bootstrap_weights(np.array([[3]]), 3)


@pytest.mark.parametrize("bad", [{"mfw": 1}, {"z_ddof": 2}, {"char_n": 7}, {"distortion_mode": "x"},
                                 {"distortion_orders": ()}])
def test_parameter_errors_are_case_file_errors(bad: dict[str, object]) -> None:
    with pytest.raises(CaseFileError, match="must"):
        st.StyloParams(**bad)


def test_pooled_profile_is_weighted_sum_of_counts() -> None:
    block = st.FeatureBlock(names=["a", "b"], counts={"x": sparse.csr_matrix([[1.0, 0.0], [2.0, 2.0]])},
                            totals={"x": np.array([4.0, 8.0])})
    prof = st.pooled_profiles(block, ["x"], np.array([[1.0, 1.0], [0.0, 2.0], [3.0, 0.0]]))
    np.testing.assert_allclose(prof[:, 0, :], [[3 / 12, 2 / 12], [4 / 16, 4 / 16], [3 / 12, 0]])


def test_lengths_and_summary_are_jsonable() -> None:
    c = small_corpus()
    params = {"mfw": 20, "char_top": 50, "distortion_top": 50, "distortion_keep": 10}
    boot = np.zeros((2, 4), dtype=int)
    feats = st.stylometric_features(c, params, boot)
    assert list(feats.lengths["r2"]) == [1, 2, 3, 8]  # words per response, reported in the length table
    length = st.stylometric_tables(feats, top=5)["length"]
    assert length.loc["r2", "mean_log_length"] == pytest.approx(np.mean(np.log1p([1, 2, 3, 8])))
    sims = st.stylometric_similarities(c, boot, features=feats)
    tables = st.stylometric_tables(feats, top=5)
    assert list(tables["mfw_z"].columns) == c.sources and len(tables["mfw_z"]) == 5
    assert tables["formatting"].loc["open_sure", "sus"] == pytest.approx(0.75)
    out = st.summarise_stylometry(c, sims, tables)
    text = json.dumps(out, allow_nan=False, sort_keys=True)
    assert json.loads(text) == out
    assert out["families"]["formatting"]["n_boot"] == 2 and len(out["families"]["formatting"]["boot"]) == 2


def real_corpus(benchmark_dir: Path, n_prompts: int = 150) -> Corpus:
    """The first four benchmark files (alphabetical), joined on the instruction; 150 prompts."""
    files = sorted(benchmark_dir.glob("*.json"))[:4]
    data = [{r["instruction"]: r["output"] or "" for r in json.loads(f.read_text(encoding="utf-8"))}
            for f in files]
    keys = sorted(set.intersection(*({k for k, v in d.items() if v.strip()} for d in data)))[:n_prompts]
    names = [f.stem for f in files]
    return Corpus(keys, keys, {n: [d[k] for k in keys] for n, d in zip(names, data, strict=True)},
                  names[0], [names[1]], names[2:])


def test_real_data_runs_and_is_deterministic(benchmark_dir: Path) -> None:
    c = real_corpus(benchmark_dir)
    idx = np.random.default_rng(0).integers(0, len(c.prompt_keys), size=(20, len(c.prompt_keys)))
    a = st.stylometric_similarities(c, idx)
    b = st.stylometric_similarities(c, idx)
    for name in st.FAMILIES:
        assert np.all(np.isfinite(a[name]["sim"])) and a[name]["boot"].shape == (20, 4, 4)
        np.testing.assert_array_equal(a[name]["sim"], b[name]["sim"])
        np.testing.assert_array_equal(a[name]["boot"], b[name]["boot"])
    feats = st.stylometric_features(c)
    assert len(feats.mfw.names) == 300 and len(feats.char.names) == 1000
    assert json.dumps(st.summarise_stylometry(c, a, st.stylometric_tables(feats)), allow_nan=False)
