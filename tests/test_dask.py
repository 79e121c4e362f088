"""Embedding on a Dask cluster: a real 2-worker ``LocalCluster`` (worker threads here, for speed), vectors
bit for bit those of a single-process run. The whole case on a cluster, findings compared with a one-process run, is
in test_pipeline.py (``forensics run --workers 2``)."""

from __future__ import annotations

import json
from pathlib import Path

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
