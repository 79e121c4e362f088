"""The optional ONNX int8 embedding backend (``embedding_backend: onnx-int8``; the ``[onnx]`` extra).

Why this module looks the way it does:

* **Exported here, never downloaded.** The transformer of the local sentence-transformers model (the
  one :class:`forensics.embeddings.Embedder` loads, found offline) is exported with
  ``torch.onnx.export`` (the torch.export-based exporter, batch and sequence axes dynamic), and its
  weight matrices quantised with ``onnxruntime.quantization.quantize_dynamic`` (int8 weights, one scale
  per output channel; activations quantised per tensor at run time). The file is kept in the user's
  cache folder next to the embedding store, with its sha256 in a record beside it; a file that no longer
  matches its record is exported again, never trusted. The exporter's notes about its caller (each
  node's Python stack trace) are stripped before quantising, so the same versions of torch, onnxscript
  and onnxruntime give the same bytes whoever calls the export (checked: a benchmark, the tests and a
  run exported to three different sha256 before the notes were stripped; now to one).
* **Where no verdict rests on it.** A case with ``embedding_backend: onnx-int8`` embeds its whole answers
  (most of the tokens; the reported whole-answer similarity, co-clustering and map) with this backend,
  and its answer openings (the fused semantic line) with torch fp32
  (:class:`forensics.embeddings.CaseEmbedders`): int8 openings moved 3 of 126 development verdicts.
* **Only the transformer changes.** Tokenising, windows, the sentence-transformers pooling modules and
  the L2 normalisation are the torch path's own code; ONNX Runtime only replaces the forward pass that
  yields the token embeddings.
* **One window per run.** Dynamic quantisation scales a batch's activations by the batch's own range, so
  a window batched with others would get a vector that depends on its neighbours. Each window is run
  alone at its own length (no padding), so its vector depends on its token ids alone: a resumed run, a
  rebuilt cache entry or a Dask worker gives the same bytes (the property the torch path gets from its
  fixed-shape batches). With no padding and no dummy rows this is also the fastest way on a CPU.
* **Never mixed with fp32 vectors.** The backend's fingerprint covers the model files' fingerprint, this
  recipe and the sha256 of the quantised file, so its vectors live under their own key in the store.
* **Deterministic.** The session runs on the CPU with a fixed intra-op thread count, one inter-op
  thread, sequential execution, and no spin-waiting (threads that spin steal the cores a shared machine
  needs; the results do not depend on it).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import io
import json
import logging
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from forensics.custody import sha256_bytes, sha256_text
from forensics.errors import ModelError

logger = logging.getLogger(__name__)

#: The backends an Embedder can run (``embedding_backend`` in case.yaml).
BACKENDS = ("torch", "onnx-int8")
DEFAULT_BACKEND = "torch"
#: How the int8 file is made. Part of the fingerprint and of the export folder's name: changing the
#: export or the quantisation must change this string.
RECIPE = ("torch.onnx.export(dynamo,opset=18,dynamic batch/sequence)->last_hidden_state;"
          "quantize_dynamic(MatMul,weights=QInt8,per_channel,activations=QUInt8 per tensor);"
          "one-window-per-run;exporter-metadata-stripped:v2")
OPSET = 18
MODEL_FILE = "model-int8.onnx"
RECORD_FILE = "model-int8.json"
#: Packages whose versions decide the exported bytes and the runtime kernels (recorded).
PACKAGES = ("torch", "onnx", "onnxscript", "onnxruntime")
FIX_INSTALL = "pip install -c constraints.txt -e '.[onnx]' (or drop embedding_backend to use torch)"


def check_backend(backend: str | None) -> str:
    """The backend's name, ``torch`` for ``None``; anything else is a model error naming the choices."""
    name = DEFAULT_BACKEND if backend is None else str(backend).strip()
    if name not in BACKENDS:
        raise ModelError(f"unknown embedding backend {backend!r}", path=str(backend),
                         fix=f"use one of {', '.join(BACKENDS)}")
    return name


def require() -> None:
    """Fail in one line when the ``[onnx]`` extra is missing."""
    missing = [name for name in ("onnx", "onnxscript", "onnxruntime")
               if importlib.util.find_spec(name) is None]
    if missing:
        raise ModelError(f"the onnx-int8 embedding backend needs {', '.join(missing)}", path="embedding_backend",
                         fix=FIX_INSTALL)


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def recipe_id() -> str:
    return sha256_text(RECIPE)


def backend_fingerprint(model_fingerprint: str, file_sha256: str) -> str:
    """The cache key of the int8 backend's vectors: model files, recipe and the exact quantised bytes."""
    return sha256_text(f"onnx-int8\0{model_fingerprint}\0{RECIPE}\0{file_sha256}\n")


def export_folder(cache_folder: str | Path, model_fingerprint: str) -> Path:
    """Where the quantised file of a model lives: ``<cache folder>/onnx/<fingerprint[:16]>-<recipe[:8]>``."""
    return Path(cache_folder) / "onnx" / f"{model_fingerprint[:16]}-{recipe_id()[:8]}"


# --------------------------------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------------------------------

def input_names(tokenizer: Any) -> list[str]:
    names = ["input_ids", "attention_mask"]
    if "token_type_ids" in getattr(tokenizer, "model_input_names", ()):
        names.append("token_type_ids")
    return names


def export_fp32(st_model: Any, path: Path) -> None:
    """The transformer of a (CPU, eval) SentenceTransformer as an fp32 ONNX file: ids in, token
    embeddings (``last_hidden_state``) out, batch and sequence axes dynamic, weights inside the file."""
    import torch

    names = input_names(st_model.tokenizer)
    encoder = st_model[0].auto_model

    class _Encoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any = None) -> Any:
            extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
            return self.encoder(input_ids=input_ids, attention_mask=attention_mask, return_dict=True,
                                **extra).last_hidden_state

    example = torch.tensor([[101, 7592, 2088, 102], [101, 7592, 102, 0]], dtype=torch.long)
    args = {"input_ids": example, "attention_mask": (example != 0).long(),
            "token_type_ids": torch.zeros_like(example)}
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)  # notes about opset conversion and absent torchvision ops
    try:
        with torch.no_grad(), warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            torch.onnx.export(_Encoder().eval(), tuple(args[n] for n in names), str(path), input_names=names,
                              output_names=["last_hidden_state"], opset_version=OPSET, dynamo=True,
                              external_data=False, dynamic_shapes=[{0: batch, 1: sequence} for _ in names])
    finally:
        exporter_log.setLevel(level)
    strip_metadata(path)


def strip_metadata(path: Path) -> None:
    """Remove what the exporter notes about the Python that called it (each node's stack trace, class
    hierarchy and FX node text, doc strings): the computation is unchanged, and without them the file's
    bytes no longer depend on the caller (an export from the tests, a benchmark and a run gave three
    different sha256 for the same graph and weights)."""
    import onnx

    model = onnx.load(str(path))
    graph = model.graph
    for node in [*graph.node, *(n for f in model.functions for n in f.node)]:
        del node.metadata_props[:]
        node.doc_string = ""
    for part in (graph.input, graph.output, graph.value_info, graph.initializer):
        for item in part:
            del item.metadata_props[:]
            item.doc_string = ""
    del model.metadata_props[:]
    del graph.metadata_props[:]
    model.doc_string = graph.doc_string = ""
    onnx.save(model, str(path))


def quantize_int8(source: Path, target: Path) -> None:
    """Dynamic int8 quantisation of the weight matrices (MatMul with a constant right-hand side).

    Per-channel weight scales: one scale per whole matrix (the default) gave a window cosine as low as
    0.88 with the fp32 vectors on the demo answers; per channel, 0.98 or more.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # quantize_dynamic advises pre-processing through logging.warning(), which would also configure the
    # root logger of a process that has not (a handler that is never removed): silenced for the call.
    previous = logging.root.manager.disable
    placeholder = logging.NullHandler() if not logging.root.handlers else None
    if placeholder is not None:
        logging.root.addHandler(placeholder)
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantize_dynamic(str(source), str(target), op_types_to_quantize=["MatMul"], per_channel=True,
                             weight_type=QuantType.QInt8)
    finally:
        logging.disable(previous)
        if placeholder is not None:
            logging.root.removeHandler(placeholder)


@dataclass
class Int8Model:
    """The quantised file's bytes (as hashed), its record, and whether it was exported by this call."""

    path: Path
    data: bytes
    record: dict[str, Any]
    exported: bool

    @property
    def sha256(self) -> str:
        return self.record["sha256"]


def cached_int8(folder: Path, model_fingerprint: str) -> Int8Model | None:
    """The cached file when it exists and matches its record (sha256, recipe, source model), else None."""
    path, record_path = folder / MODEL_FILE, folder / RECORD_FILE
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
        data = path.read_bytes()
    except (OSError, ValueError):
        return None
    if (record.get("recipe") != RECIPE or record.get("model_fingerprint") != model_fingerprint
            or record.get("sha256") != sha256_bytes(data)):
        logger.warning("onnx-int8: cached export %s does not match its record; exporting again", path)
        return None
    return Int8Model(path, data, record, exported=False)


def load_or_export(st_model: Any, model_fingerprint: str, cache_folder: str | Path) -> Int8Model:
    """The model's int8 ONNX file from the cache folder, exported and quantised first when missing.

    Written in a temporary folder beside the final one and moved in with renames: a killed export leaves
    no half-written file under the final name; two concurrent exports write the same bytes.
    """
    require()
    folder = export_folder(cache_folder, model_fingerprint)
    found = cached_int8(folder, model_fingerprint)
    if found is not None:
        return found
    folder.mkdir(parents=True, exist_ok=True)
    logger.info("onnx-int8: exporting %s into %s", model_fingerprint[:16], folder)
    with tempfile.TemporaryDirectory(prefix=".export-", dir=folder) as tmp:
        fp32, int8 = Path(tmp) / "model-fp32.onnx", Path(tmp) / MODEL_FILE
        try:
            export_fp32(st_model, fp32)
            quantize_int8(fp32, int8)
        except Exception as exc:  # any exporter failure is a model problem the user must know of
            raise ModelError(f"cannot export the embedding model to ONNX: {type(exc).__name__}: {exc}",
                             path=folder, fix="use embedding_backend: torch") from exc
        data = int8.read_bytes()
        record = {"file": MODEL_FILE, "sha256": sha256_bytes(data), "bytes": len(data), "recipe": RECIPE,
                  "model_fingerprint": model_fingerprint, "versions": versions()}
        os.replace(int8, folder / MODEL_FILE)
        (Path(tmp) / RECORD_FILE).write_text(json.dumps(record, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(Path(tmp) / RECORD_FILE, folder / RECORD_FILE)
    return Int8Model(folder / MODEL_FILE, data, record, exported=True)


# --------------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------------

def session(data: bytes, threads: int) -> Any:
    """An ONNX Runtime CPU session on the (already hashed) bytes: fixed threads, sequential, no spinning."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    options.log_severity_level = 3
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
