"""Clustering line: the permutation test on labels with a known answer, then UMAP+HDBSCAN end to end.

UMAP fits are slow on first use (numba compilation), so one module-scoped fixture fits the small
constructed case twice and the tests share it.
"""

from __future__ import annotations

import json
import sys
import types
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from forensics.clustering import (
    NOISE,
    ClusterParams,
    ClusterResult,
    cluster_case,
    co_clustered,
    co_clustering_test,
    exchangeability_p_value,
    pairs_html,
    params_from_case,
    project_and_cluster,
    rates_from_counts,
    relabel_by_size,
    run_step,
    sample_prompts,
    show_pairs,
)
from forensics.custody import RunFolder
from forensics.escaping import inert
from forensics.exchanges import AlignedCorpus
from forensics.weighing import rate_lines

Corpus = AlignedCorpus  # the real class: its checks catch a malformed test corpus


def blob_case(n: int = 48, d: int = 32, k: int = 4, seed: int = 0) -> tuple[Corpus, dict[str, np.ndarray]]:
    """Four well-separated blobs; S answers every prompt in T's blob, references pick blobs at random."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d))
    teacher_blob = rng.integers(0, k, n)
    blobs = {"S": teacher_blob, "T": teacher_blob, "R1": rng.integers(0, k, n), "R2": rng.integers(0, k, n)}
    vectors = {}
    for source, blob in blobs.items():
        v = centres[blob] + 0.05 * rng.normal(size=(n, d))
        vectors[source] = (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)
    keys = [f"p{i:03d}" for i in range(n)]
    responses = {s: [f"{s} answers {key}" for key in keys] for s in blobs}
    return Corpus(keys, [f"prompt {key}" for key in keys], responses, "S", ["T"], ["R1", "R2"]), vectors


PARAMS = ClusterParams(min_cluster_size=5, min_samples=3, permutations=499, bootstrap=100)


@pytest.fixture(scope="module")
def fitted() -> tuple[Corpus, dict[str, np.ndarray], ClusterResult, ClusterResult]:
    corpus, vectors = blob_case()
    first = project_and_cluster(vectors, corpus, PARAMS)
    return corpus, vectors, first, project_and_cluster(vectors, corpus, PARAMS)


# ---------------------------------------------------------------------------- statistic on known labels


def random_labels(rng: np.random.Generator, n: int, k: int = 5) -> np.ndarray:
    return rng.integers(0, k, n)


def test_suspect_copying_teacher_labels_gives_smallest_p() -> None:
    rng = np.random.default_rng(1)
    t = random_labels(rng, 200)
    labels = {"T": t, "S": t.copy(), "R1": random_labels(rng, 200), "R2": random_labels(rng, 200)}
    entry = co_clustering_test(labels, "S", "T", ["R1", "R2"], permutations=999, seed=0).entry
    assert entry["suspect_value"] == 1.0
    assert entry["p_value"] == pytest.approx(1 / 1000)
    assert all(v < 0.35 for v in entry["panel_values"].values())
    assert entry["ci95"] == [1.0, 1.0]
    assert entry["n_prompts"] == 200 and entry["statistic"] == "co-clustering rate"


def test_suspect_exchangeable_with_panel_gives_large_p() -> None:
    rng = np.random.default_rng(2)
    t = random_labels(rng, 150)
    labels = {"T": t}
    for s in ("S", "R1", "R2", "R3"):  # every source copies T's label with the same probability
        labels[s] = np.where(rng.random(150) < 0.4, t, random_labels(rng, 150))
    entry = co_clustering_test(labels, "S", "T", ["R1", "R2", "R3"], permutations=999, seed=0).entry
    assert entry["p_value"] > 0.1


def test_p_values_are_calibrated_under_h0() -> None:
    """Under exchangeability, P(p <= 0.05) must be about 0.05 (the test is slightly conservative)."""
    rng = np.random.default_rng(3)
    ps = []
    for rep in range(200):
        t = random_labels(rng, 80, k=4)
        rows = [np.where(rng.random(80) < 0.5, t, random_labels(rng, 80, k=4)) == t for _ in range(4)]
        ps.append(exchangeability_p_value(np.vstack(rows), 99, seed=rep))
    assert np.mean(np.array(ps) <= 0.05) <= 0.09
    assert np.mean(np.array(ps) <= 0.5) == pytest.approx(0.5, abs=0.12)


def test_turns_of_one_conversation_are_permuted_and_resampled_together() -> None:
    """Five turns of each of 20 conversations that cluster alike are one conversation's evidence, not five:
    permuted together the p-value is that of the 20 conversations, where turn by turn it is far smaller."""
    rng = np.random.default_rng(8)
    per_conversation = np.vstack([rng.random(20) < q for q in (0.75, 0.35, 0.4, 0.3)])
    turns = np.repeat(per_conversation, 5, axis=1)
    groups = [f"c{i:02d}" for i in range(20) for _ in range(5)]
    grouped = exchangeability_p_value(turns, 999, seed=1, groups=groups)
    assert grouped == exchangeability_p_value(per_conversation, 999, seed=1)
    assert exchangeability_p_value(turns, 999, seed=1) < grouped / 3
    assert exchangeability_p_value(turns, 999, seed=1, groups=[f"t{i}" for i in range(100)]) == \
        exchangeability_p_value(turns, 999, seed=1)  # conversations of one turn: as before
    labels = {"T": np.repeat(np.arange(20) % 3, 5)}
    for name, row in zip(("S", "R1", "R2", "R3"), turns, strict=True):
        labels[name] = np.where(row, labels["T"], 9)
    alone = co_clustering_test(labels, "S", "T", ["R1", "R2", "R3"], permutations=199, bootstrap=400)
    whole = co_clustering_test(labels, "S", "T", ["R1", "R2", "R3"], permutations=199, bootstrap=400,
                               groups=groups)
    assert whole.entry["suspect_value"] == alone.entry["suspect_value"]
    width = {k: e.entry["ci95"][1] - e.entry["ci95"][0] for k, e in (("alone", alone), ("whole", whole))}
    assert width["whole"] > 1.5 * width["alone"]  # five copies of a turn are not five observations


def test_noise_never_counts_as_co_clustering_unless_asked() -> None:
    both_noise = np.array([NOISE, NOISE, 1])
    assert co_clustered(both_noise, both_noise).tolist() == [False, False, True]
    assert co_clustered(both_noise, both_noise, include_noise=True).tolist() == [True, True, True]
    labels = {"T": np.full(10, NOISE), "S": np.full(10, NOISE), "R": np.zeros(10, dtype=int)}
    entry = co_clustering_test(labels, "S", "T", ["R"], permutations=99).entry
    assert entry["suspect_value"] == 0.0 and entry["noise_share"] == 1.0
    assert entry["noise_included"]["suspect_value"] == 1.0


def test_single_reference_and_empty_panel() -> None:
    rng = np.random.default_rng(4)
    t = random_labels(rng, 60)
    one = co_clustering_test({"T": t, "S": t, "R": random_labels(rng, 60)}, "S", "T", ["R"], permutations=199)
    assert one.entry["p_value"] < 0.01  # the permutation test works with one reference; a z cannot:
    line = rate_lines({"T": rates_from_counts(one.counts)}, ["T"], ["R"])["T"]
    assert not np.isfinite(line["z"])  # one reference shows no spread (written as null)
    none = co_clustering_test({"T": t, "S": t}, "S", "T", [], permutations=199).entry
    assert none["p_value"] is None and none["panel_values"] == {}


def test_statistic_is_seeded() -> None:
    rng = np.random.default_rng(5)
    labels = {s: random_labels(rng, 100) for s in ("T", "S", "R1", "R2")}
    a = co_clustering_test(labels, "S", "T", ["R1", "R2"], seed=7).entry
    assert a == co_clustering_test(labels, "S", "T", ["R1", "R2"], seed=7).entry
    json.dumps(a, allow_nan=False)


def test_counts_give_the_rates_bit_for_bit() -> None:
    """Step 06 scores the counts step 05 wrote: divided by n they are the reported rates exactly."""
    rng = np.random.default_rng(6)
    labels = {s: random_labels(rng, 77, k=3) for s in ("T", "S", "R1", "R2")}
    tested = co_clustering_test(labels, "S", "T", ["R1", "R2"], permutations=99, bootstrap=30)
    rates = rates_from_counts(json.loads(json.dumps(tested.counts)))
    assert rates["suspect"] == tested.entry["suspect_value"]
    assert rates["references"] == tested.entry["panel_values"]
    assert rates["noise_included"]["suspect"] == tested.entry["noise_included"]["suspect_value"]
    assert len(rates["boot_suspect"]) == 30 and set(rates["boot_references"]) == {"R1", "R2"}


# ---------------------------------------------------------------------------- sampling and labels


def test_sampling_keeps_whole_prompts_and_is_seeded() -> None:
    assert sample_prompts(100, 5, 4000, seed=0).tolist() == list(range(100))
    idx = sample_prompts(1000, 6, 4000, seed=0)
    assert len(idx) == 4000 // 6 and len(set(idx.tolist())) == len(idx)
    assert np.all(np.diff(idx) > 0)
    assert np.array_equal(idx, sample_prompts(1000, 6, 4000, seed=0))
    assert not np.array_equal(idx, sample_prompts(1000, 6, 4000, seed=1))


def test_relabel_by_size() -> None:
    assert relabel_by_size(np.array([3, 3, 1, -1, 1, 1, 0])).tolist() == [1, 1, 0, -1, 0, 0, 2]


def test_params_from_case_reads_only_the_case_parameters() -> None:
    given = types.SimpleNamespace(seed=3, umap_max_points=100, permutations=50, bootstrap=20, mfw=300)
    case = types.SimpleNamespace(parameters=given)
    params = params_from_case(case)
    assert (params.seed, params.umap_max_points, params.permutations, params.bootstrap) == (3, 100, 50, 20)
    assert params.n_neighbors == ClusterParams().n_neighbors
    assert params_from_case(types.SimpleNamespace(parameters={"seed": 9})).seed == 9


# ---------------------------------------------------------------------------- UMAP + HDBSCAN


def test_projection_is_deterministic(fitted) -> None:
    _, _, first, second = fitted
    assert np.array_equal(first.coords, second.coords)
    assert np.array_equal(first.labels, second.labels)
    assert first.coords.shape == (4, 48, 2) and first.labels.shape == (4, 48)


def test_blobs_become_clusters_and_copying_is_detected(fitted) -> None:
    corpus, _, result, _ = fitted
    assert result.n_clusters == 4 and result.noise_share < 0.1
    labels = {s: result.labels_of(s) for s in result.sources}
    entry = co_clustering_test(labels, "S", "T", ["R1", "R2"], permutations=499).entry
    assert entry["suspect_value"] > 0.9 > 0.5 > max(entry["panel_values"].values())
    assert entry["p_value"] < 0.01


def test_sampled_run_states_its_sample_and_keeps_prompts_whole(fitted) -> None:
    corpus, vectors, _, _ = fitted
    result = project_and_cluster(vectors, corpus, replace(PARAMS, umap_max_points=120))
    assert result.sampled and result.n_prompts == 30 and result.n_points == 120
    assert "30 of 48 prompts" in result.sample_statement()
    frame = result.frame()
    assert (frame.groupby("prompt_key")["source"].nunique() == 4).all()


def test_write_step_artifacts(fitted, tmp_path, monkeypatch) -> None:
    corpus, vectors, result, _ = fitted
    run = RunFolder(tmp_path / "run")
    given = types.SimpleNamespace(seed=0, umap_max_points=4000, permutations=99)
    case = types.SimpleNamespace(parameters=given)
    monkeypatch.setitem(sys.modules, "forensics.exchanges",
                        types.SimpleNamespace(load_corpus=lambda run_, case_, **_: corpus))
    monkeypatch.setitem(sys.modules, "forensics.embeddings",
                        types.SimpleNamespace(load_vectors=lambda run_, corpus_: vectors))
    summary = run_step(case, run)
    saved = json.loads((tmp_path / "run/artifacts/clusters.json").read_text())
    assert saved == summary
    assert set(saved["co_clustering"]) == {"T"} and saved["params"]["permutations"] == 99
    assert saved["sample"]["n_points"] == 4 * 48 and not saved["sample"]["sampled"]
    frame = pd.read_parquet(tmp_path / "run/artifacts/umap.parquet")
    assert {"prompt_key", "source", "x", "y", "cluster"} <= set(frame.columns) and len(frame) == 4 * 48
    assert set(saved["co_clustering_counts"]) == {"T"} and "z" not in saved["co_clustering"]["T"]  # step 06 scores
    for ext in ("png", "svg"):
        assert (tmp_path / f"run/figures/umap_map.{ext}").stat().st_size > 0
    manifest = run.manifest().data["artifacts"]
    assert manifest["artifacts/clusters.json"]["step"] == "05_clusters"


def test_cluster_case_summary_is_json_safe(fitted) -> None:
    corpus, vectors, _, _ = fitted
    _, summary = cluster_case(corpus, vectors, replace(PARAMS, cluster_dims=2))
    json.dumps(summary, allow_nan=False)
    assert summary["params"]["cluster_dims"] == 2


# ---------------------------------------------------------------------------- notebook helper


HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def hostile_corpus() -> Corpus:
    keys = ["k1", "k2"]
    responses = {"S": [HOSTILE, "plain"], "T": ["ok & fine", HOSTILE], "R": ["r1", "r2"]}
    return Corpus(keys, [HOSTILE, "second"], responses, "S", ["T"], ["R"])


def test_pairs_html_escapes_every_text() -> None:
    text = pairs_html(hostile_corpus(), "k1")
    assert "<script" not in text and "<img" not in text
    assert str(inert('<script>alert("x")</script>')) in text  # escaped as everywhere (forensics.escaping)
    assert "ok &amp; fine" in text


def test_show_pairs_by_cluster_puts_co_clustered_first() -> None:
    corpus = hostile_corpus()
    labels = np.array([[0, 0], [1, 0], [1, 1]])
    result = ClusterResult(PARAMS, ["S", "T", "R"], ["k1", "k2"], np.zeros((3, 2, 2), np.float32), labels, 2)
    shown = show_pairs(corpus, 0, result=result, n=5)
    body = shown.data
    assert "<script" not in body and "cluster 0" in body
    assert body.index("plain") < body.index("ok &amp; fine")  # k2 (S and T both in 0) before k1


def test_co_clustering_z_comes_from_the_one_panel_relative_scorer() -> None:
    """Co-clustering z is rate_z over every candidate (spread pooled), like the marker line's, computed in
    step 06 from step 05's counts, and its bootstrap interval is drawn on the case's prompt resamples."""
    from types import SimpleNamespace

    from forensics.clustering import co_clustering
    from forensics.evidence import score_clusters
    from forensics.scoring import rate_z

    rng = np.random.default_rng(3)
    n = 80
    labels = {s: random_labels(rng, n) for s in ("T1", "T2", "R1", "R2", "R3")}
    labels["S"] = np.where(rng.random(n) < 0.6, labels["T1"], random_labels(rng, n))
    corpus = SimpleNamespace(suspect="S", teachers=["T1", "T2"], references=["R1", "R2", "R3"], groups=None)
    result = SimpleNamespace(sources=list(labels), labels_of=lambda s: labels[s],
                             params=SimpleNamespace(permutations=99, seed=0, bootstrap=50))
    tested = co_clustering(result, corpus)
    entries = {t: c.entry for t, c in tested.items()}
    clusters = {"co_clustering": entries, "co_clustering_counts": {t: c.counts for t, c in tested.items()}}
    lines = score_clusters(json.loads(json.dumps(clusters)), corpus.teachers, corpus.references)
    expected = rate_z({t: e["suspect_value"] for t, e in entries.items()},
                      {t: e["panel_values"] for t, e in entries.items()}, corpus.references)
    for t in corpus.teachers:
        assert lines[t]["z"] == expected[t]
        assert len(lines[t]["boot_z"]) == 50 and np.isfinite(lines[t]["noise_z"])
    assert lines["T1"]["z"] > lines["T2"]["z"]
    assert score_clusters(None, corpus.teachers, corpus.references) == {}
    from forensics.errors import ForensicsError

    stale = {"co_clustering": entries}  # a clusters.json written before the counts existed
    with pytest.raises(ForensicsError, match="re-run the case from step 05"):
        score_clusters(stale, corpus.teachers, corpus.references)
    with pytest.raises(ForensicsError, match="clusters.json"):
        score_clusters(clusters, corpus.teachers, ["R1", "R2"])  # measured against another panel
