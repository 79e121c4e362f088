"""Work on a Dask cluster: a real 2-worker ``LocalCluster`` (worker threads here, for speed); vectors and
per-prompt statistics bit for bit those of a single-process run. The whole case on a cluster, findings
compared with a one-process run, is in test_pipeline.py (``forensics run --workers 2``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("distributed")

from forensics import cluster  # noqa: E402
from forensics.embeddings import DEFAULT_MODEL_PACKAGE, Embedder, EmbeddingCache  # noqa: E402
from forensics.errors import ModelError  # noqa: E402

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo" / "exchanges"


def demo_texts(n: int = 10) -> list[str]:
    """Real answers of one demo model, long and short, plus a duplicate."""
    rows = json.loads((DEMO / "text-davinci-003.json").read_text(encoding="utf-8"))
    texts = [r["output"] for r in rows if r["output"].strip()][:n]
    return [*texts, texts[0]]


def test_slices_cover_every_text_once_longest_first() -> None:
    texts = ["a" * k for k in (3, 9, 1, 7, 5)]
    parts = cluster.slices(texts, 2)
    assert parts == [[1, 3], [4, 0], [2]]


def test_two_worker_cluster_gives_the_same_vectors_and_fills_the_store(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    texts = demo_texts()
    local = Embedder(cache=EmbeddingCache(tmp_path / "local"))
    expected = local.embed(texts)
    monkeypatch.setattr(cluster, "SLICE_TEXTS", 4)  # several slices, so both workers get some
    remote = Embedder(cache=EmbeddingCache(tmp_path / "cluster"))
    with cluster.connect(workers=2, processes=False) as client:  # worker processes: test_pipeline.py
        assert cluster.describe(client)["workers"] == 2
        cluster.fill_cache_on_cluster(remote, texts, client, threads=1)
        assert remote.last_stats["embedded"] == len(texts) - 1 and remote.last_stats["slices"] > 2
        assert remote.cache.count(remote.fingerprint) == len(texts) - 1
        cluster.fill_cache_on_cluster(remote, texts, client, threads=1)  # nothing left to do
        assert remote.last_stats["from_cache"] == len(texts) - 1 and remote.last_stats["embedded"] == 0
        got = remote.embed(texts)
        assert remote.last_stats["from_cache"] == len(texts) - 1
        assert got.tobytes() == expected.tobytes()  # bit for bit
        remote.fingerprint = "0" * 64  # a worker with other model files is refused
        with pytest.raises(ModelError, match="other model files"):
            cluster.fill_cache_on_cluster(remote, texts[:2], client, threads=1)
    assert remote.name == DEFAULT_MODEL_PACKAGE


def test_per_prompt_statistics_on_the_cluster_are_the_same_bits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Step 02's paired similarities and step 03's formatting features, sent in slices to the cluster that
    ``forensics run --workers/--cluster`` names to the notebooks, give the one-process bits."""
    from distributed import get_task_stream

    from forensics import semantic
    from forensics.stylometry import features

    texts = demo_texts(40)
    prompts = [f"Question {i}: explain it." for i in range(len(texts))]
    rng = np.random.default_rng(0)
    sources = ["suspect", "teacher", "reference"]
    vectors = {s: rng.normal(size=(70, 384)).astype(np.float32) for s in sources}
    vectors = {s: v / np.linalg.norm(v, axis=1, keepdims=True) for s, v in vectors.items()}
    assert cluster.SCHEDULER_ENV not in os.environ
    local_sim = semantic.per_prompt_similarity(vectors, sources)
    local_fmt = features._formatting(texts, prompts)
    monkeypatch.setattr(semantic, "PROMPT_SLICE", 16)  # several slices for each
    monkeypatch.setattr(features, "FORMAT_SLICE", 6)
    with cluster.connect(workers=2, processes=False) as client, cluster.shared(client), \
            get_task_stream(client) as stream:
        assert os.environ[cluster.SCHEDULER_ENV] == client.scheduler.address
        remote_sim = semantic.per_prompt_similarity(vectors, sources)
        remote_fmt = features._formatting(texts, prompts)
    assert cluster.SCHEDULER_ENV not in os.environ  # restored
    assert remote_sim.tobytes() == local_sim.tobytes()
    assert all(r.tobytes() == loc.tobytes() for r, loc in zip(remote_fmt, local_fmt, strict=True))
    ran = [task["key"] for task in stream.data]
    assert sum("slice_similarity" in str(k) for k in ran) == 5  # 70 prompts in slices of 16
    assert sum("formatting_matrix" in str(k) for k in ran) == 7  # 41 answers in slices of 6
