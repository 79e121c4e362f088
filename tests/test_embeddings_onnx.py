"""The onnx-int8 embedding backend: the real packaged model exported and quantised once for the module.

What must hold: its vectors stay close to the torch ones on real answers (cosine > 0.98 for every text;
measured on these 50 demo answers: min 0.993, mean 0.996), it has its own fingerprint so the store never
serves one backend's vectors for the other, the export is cached (a second embedder re-uses the file,
after checking its sha256), a window's vector does not depend on the other texts of the call, and a case
run with the backend embeds its answer openings (the verdict's input) with torch, bit for bit.
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from forensics import embeddings as emb  # noqa: E402
from forensics import onnx_backend  # noqa: E402
from forensics.case import Parameters  # noqa: E402
from forensics.custody import RunFolder  # noqa: E402
from forensics.embeddings import Embedder, EmbeddingCache  # noqa: E402
from forensics.errors import CaseFileError, ModelError  # noqa: E402

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo" / "exchanges"
#: Every text's cosine with its torch vector stays above this. Measured on the 50 texts below: min 0.993,
#: mean 0.996 (per window on 100 demo answers: min 0.985); one scale per weight matrix instead of per
#: channel gave windows as low as 0.88, which this bound catches.
MIN_COSINE = 0.98
MIN_MEAN_COSINE = 0.99


def demo_texts(n: int = 50) -> list[str]:
    """Real answers of three demo models, short and long (several exceed one 256-token window)."""
    texts: list[str] = []
    for name in ("alpaca-7b.jsonl", "gpt-4-0613.jsonl", "vicuna-13b.jsonl"):
        rows = [json.loads(line) for line in (DEMO / name).read_text(encoding="utf-8").splitlines() if line]
        texts += [r["response"] for r in rows if (r.get("response") or "").strip()][:n // 3 + 1]
    return texts[:n]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture(scope="module")
def int8(folder: Path) -> Embedder:
    """Exports into the module's cache folder (about 15 s), once."""
    return Embedder(cache=EmbeddingCache(folder), backend="onnx-int8")


@pytest.fixture(scope="module")
def torch_embedder(folder: Path) -> Embedder:
    return Embedder(cache=EmbeddingCache(folder))


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return demo_texts()


@pytest.fixture(scope="module")
def vectors(int8: Embedder, torch_embedder: Embedder, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    return int8.embed(texts), torch_embedder.embed(texts)


def test_int8_vectors_stay_close_to_torch(vectors: tuple[np.ndarray, np.ndarray], texts: list[str],
                                          int8: Embedder) -> None:
    quantised, reference = vectors
    assert quantised.shape == reference.shape == (50, 384) and quantised.dtype == np.float32
    assert np.allclose(np.linalg.norm(quantised, axis=1), 1.0, atol=1e-5)
    cosine = (quantised * reference).sum(axis=1)
    assert cosine.min() > MIN_COSINE, f"lowest cosine {cosine.min():.4f}"
    assert cosine.mean() > MIN_MEAN_COSINE
    assert cosine.max() < 0.99999, "the int8 backend returned the torch vectors: was it used at all?"
    assert len(int8.chunk(texts)) > len(texts), "the texts should include multi-window answers"


def test_fingerprint_differs_and_store_keeps_backends_apart(int8: Embedder, torch_embedder: Embedder,
                                                             vectors: tuple[np.ndarray, np.ndarray],
                                                             texts: list[str]) -> None:
    assert int8.model_fingerprint == torch_embedder.fingerprint == torch_embedder.model_fingerprint
    assert int8.fingerprint != torch_embedder.fingerprint
    sha = int8.describe()["onnx"]["sha256"]
    assert int8.fingerprint == onnx_backend.backend_fingerprint(int8.model_fingerprint, sha)
    store = torch_embedder.cache
    assert store is not None and store.folder == int8.cache.folder
    assert store.count(int8.fingerprint) == store.count(torch_embedder.fingerprint) == len(texts)
    quantised, reference = vectors
    again_torch, again_int8 = torch_embedder.embed(texts), int8.embed(texts)  # both from the one store
    assert torch_embedder.last_stats["from_cache"] == int8.last_stats["from_cache"] == len(texts)
    assert again_torch.tobytes() == reference.tobytes() and again_int8.tobytes() == quantised.tobytes()


def test_backend_is_recorded(int8: Embedder, torch_embedder: Embedder) -> None:
    record = int8.describe()
    assert (record["backend"], record["device"]) == ("onnx-int8", "cpu")
    assert record["onnx"]["recipe"] == onnx_backend.RECIPE and record["onnx"]["runtime"]["onnxruntime"]
    assert record["fingerprint"] == int8.fingerprint != record["model_fingerprint"]
    assert torch_embedder.describe()["backend"] == "torch" and "onnx" not in torch_embedder.describe()


def test_export_is_cached_and_checked(int8: Embedder, folder: Path, monkeypatch: pytest.MonkeyPatch,
                                      tmp_path: Path) -> None:
    path = Path(int8.describe()["onnx"]["file"])
    assert path.parent == onnx_backend.export_folder(folder, int8.model_fingerprint)
    record = json.loads((path.parent / onnx_backend.RECORD_FILE).read_text(encoding="utf-8"))
    assert record["sha256"] == int8.describe()["onnx"]["sha256"] and record["recipe"] == onnx_backend.RECIPE

    def no_export(*args: object, **kwargs: object) -> None:
        raise AssertionError("exported again although the cached file is valid")

    monkeypatch.setattr(onnx_backend, "export_fp32", no_export)
    second = Embedder(cache=EmbeddingCache(folder), backend="onnx-int8")
    assert second.fingerprint == int8.fingerprint and not second._int8.exported and int8._int8.exported
    # A damaged copy is not trusted (it would be exported again).
    damaged = tmp_path / "copy"
    damaged.mkdir()
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    (damaged / onnx_backend.MODEL_FILE).write_bytes(bytes(data))
    (damaged / onnx_backend.RECORD_FILE).write_text(json.dumps(record), encoding="utf-8")
    assert onnx_backend.cached_int8(damaged, int8.model_fingerprint) is None
    assert onnx_backend.cached_int8(path.parent, "another model") is None


def test_the_export_does_not_depend_on_its_caller(int8: Embedder, tmp_path: Path) -> None:
    """The exporter notes each node's Python stack trace; stripped, the same versions give the same bytes
    from any caller (they differed between the tests, a benchmark and a run before)."""
    import onnx

    def another_caller() -> onnx_backend.Int8Model:  # another Python stack than the fixture's
        return onnx_backend.load_or_export(int8._model, int8.model_fingerprint, tmp_path)

    again = another_caller()
    assert again.exported and again.sha256 == int8._int8.sha256
    model = onnx.load(str(again.path))
    assert not any(node.metadata_props for node in model.graph.node)


def test_vector_does_not_depend_on_the_other_texts(int8: Embedder, texts: list[str]) -> None:
    saved, int8.cache = int8.cache, None  # computed, not read back
    try:
        alone = np.vstack([int8.embed([t]) for t in texts[:6]])
        together = int8.embed(list(reversed(texts[:6])))[::-1]
    finally:
        int8.cache = saved
    assert alone.tobytes() == together.tobytes()


def test_backend_choices_are_checked() -> None:
    assert Parameters().embedding_backend == "torch"
    assert Parameters.from_dict({"embedding_backend": "onnx-int8"}).embedding_backend == "onnx-int8"
    with pytest.raises(CaseFileError, match="embedding_backend"):
        Parameters.from_dict({"embedding_backend": "int4"})
    with pytest.raises(ModelError, match="unknown embedding backend"):
        Embedder(cache=False, backend="tensorrt")
    with pytest.raises(ModelError, match="runs on the CPU"):
        Embedder(cache=False, backend="onnx-int8", device="cuda")


def test_a_case_embeds_openings_with_torch_and_answers_with_int8(int8: Embedder, torch_embedder: Embedder,
                                                                 folder: Path, texts: list[str], tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Step 01 of a case with ``embedding_backend: onnx-int8``: the openings, which carry the fused line and
    so the verdict, are the torch bits; only the whole answers (reported statistics) are int8."""
    corpus = types.SimpleNamespace(prompt_keys=[f"p{i}" for i in range(4)], sources=["suspect", "teacher"],
                                   responses={"suspect": texts[:4], "teacher": texts[4:8]})
    monkeypatch.setenv("FORENSICS_CACHE", str(folder))  # the module's export is found there, not redone
    monkeypatch.setitem(sys.modules, "forensics.exchanges",
                        types.SimpleNamespace(load_corpus=lambda run_, case_, **_: corpus))
    params = types.SimpleNamespace(embedding_model=None, seed=0, opening_words=12, embedding_backend="onnx-int8")
    run = RunFolder(tmp_path / "run")
    emb.run_step(types.SimpleNamespace(parameters=params), run, progress=False)
    openings = emb.load_vectors(run, corpus, emb.OPENINGS_ARTIFACT)
    answers = emb.load_vectors(run, corpus)
    for source in corpus.sources:
        said = corpus.responses[source]
        assert openings[source].tobytes() == torch_embedder.embed([emb.opening(t, 12) for t in said]).tobytes()
        assert answers[source].tobytes() == int8.embed(said).tobytes()
        assert answers[source].tobytes() != torch_embedder.embed(said).tobytes()
    model = run.manifest().data["model"]
    assert (model["backend"], model["fingerprint"]) == ("torch", torch_embedder.fingerprint)
    assert (model["answers"]["backend"], model["answers"]["fingerprint"]) == ("onnx-int8", int8.fingerprint)
    assert emb.CaseEmbedders.for_case(backend="torch", cache=False).distinct[0].backend == "torch"
