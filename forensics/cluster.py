"""Work on a Dask cluster: ``forensics run --cluster ADDRESS`` or ``--workers N`` (a local cluster).

Why this shape:

* **The slow, independent parts move.** Embedding is where the hours go (about 27 long texts/s on two
  cores); it splits into independent slices of texts. Each worker loads the model once (kept per worker
  process) and returns the vectors of its slices; the client alone writes them into its packed store
  (:mod:`forensics.store`), so no worker needs the client's disk and SQLite never runs over a network
  file system. The notebooks then find every vector in the store, exactly as after a local run.
* **Per-prompt statistics too.** While the notebooks run, ``forensics run`` keeps the cluster and names
  its scheduler in ``$FORENSICS_DASK_SCHEDULER``; the steps' per-prompt and per-text computations
  (step 02's paired similarities, step 03's formatting features) go through :func:`on_slices`, which
  sends consecutive slices to that cluster, or computes them here when no cluster is named. A slice's
  result does not depend on the other slices, and they are put back in order, so the artifacts are the
  same bits either way.
* **Identical findings.** A text's vector does not depend on which texts share its batch (fixed-shape
  batches, see :meth:`forensics.embeddings.Embedder._embed_chunks`), so slicing changes no bit. Every
  worker loads the model named by the case and reports the model's fingerprint; a worker with different
  model files is refused rather than trusted. Workers run the same thread count as a local run, since
  matrix kernels may round differently with another thread split. (Workers on other hardware, e.g.
  another CPU generation, may still differ in the last bits: use one kind of machine per case.)
* **Optional.** ``dask`` and ``distributed`` are the ``[dask]`` extra; nothing imports them otherwise.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from forensics.custody import sha256_text
from forensics.errors import ForensicsError, ModelError

logger = logging.getLogger(__name__)

#: Texts per task: enough to keep a worker's batches full, small enough to spread a case over workers.
SLICE_TEXTS = 256
_FIX_DASK = "pip install 'forensics[dask]' (or drop --cluster/--workers to run in one process)"
#: The scheduler address :func:`on_slices` sends work to (set by ``forensics run`` for its notebooks).
SCHEDULER_ENV = "FORENSICS_DASK_SCHEDULER"
#: Slices in flight at once: bounds what the client holds of the slices' inputs and results.
IN_FLIGHT = 8

T = TypeVar("T")


@dataclass(frozen=True)
class ModelSpec:
    """What a worker needs to load the same model as the client (no paths of the client's disk)."""

    model: str | None
    base: str | None
    seed: int
    threads: int | None   # torch threads per worker; None: the worker's default (min(2, its CPUs))
    batch_size: int
    fingerprint: str
    backend: str = "torch"


_WORKER_EMBEDDERS: dict[tuple[Any, ...], Any] = {}
_WORKER_LOCK = threading.Lock()


def _worker_embedder(spec: ModelSpec) -> Any:
    """The model of this worker process, loaded on first use and kept (one load per worker)."""
    from forensics.embeddings import Embedder

    key = (spec.model, spec.base, spec.seed, spec.threads, spec.batch_size, spec.backend, threading.get_ident())
    with _WORKER_LOCK:
        if key not in _WORKER_EMBEDDERS:
            _WORKER_EMBEDDERS[key] = Embedder(spec.model, threads=spec.threads, batch_size=spec.batch_size,
                                              cache=False, seed=spec.seed, base=spec.base, backend=spec.backend)
        return _WORKER_EMBEDDERS[key]


def embed_slice(spec: ModelSpec, texts: list[str]) -> tuple[str, np.ndarray]:
    """Run on a worker: ``(fingerprint of the model used, vectors of texts)``."""
    embedder = _worker_embedder(spec)
    return embedder.fingerprint, embedder.embed(texts)


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError as exc:
        raise ForensicsError("Dask is not installed", fix=_FIX_DASK) from exc
    return distributed


@contextlib.contextmanager
def connect(address: str | None = None, workers: int | None = None, processes: bool = True) -> Iterator[Any]:
    """A ``distributed.Client`` on the cluster at ``address``, or on a local cluster of ``workers``
    worker processes (one task at a time each; torch threads are set per task by :class:`ModelSpec`).
    ``processes=False`` makes the local workers threads of this process (quicker to start; tests)."""
    distributed = _import_distributed()
    if address:
        with distributed.Client(address, timeout="60s") as client:
            yield client
        return
    with distributed.LocalCluster(n_workers=int(workers or 2), threads_per_worker=1, processes=processes,
                                  dashboard_address=None, silence_logs=logging.ERROR) as cluster, \
            distributed.Client(cluster) as client:
        yield client


@contextlib.contextmanager
def shared(client: Any) -> Iterator[None]:
    """Name ``client``'s scheduler in :data:`SCHEDULER_ENV` for the block (the notebooks' kernels inherit
    it), and restore what was there after."""
    before = os.environ.get(SCHEDULER_ENV)
    os.environ[SCHEDULER_ENV] = client.scheduler.address
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(SCHEDULER_ENV, None)
        else:
            os.environ[SCHEDULER_ENV] = before


def on_slices(fn: Callable[..., T], n: int, size: int, args_of: Callable[[slice], tuple[Any, ...]]) -> list[T]:
    """``[fn(*args_of(part)) for part in consecutive slices of range(n)]``, in order.

    On the cluster named by :data:`SCHEDULER_ENV` when it is set (at most :data:`IN_FLIGHT` slices
    submitted at a time), else in this process. ``fn`` must be a module-level function whose result for a
    slice depends only on that slice's arguments: then both ways give the same results.
    """
    parts = [slice(start, min(start + size, n)) for start in range(0, n, size)]
    address = os.environ.get(SCHEDULER_ENV)
    if not address:
        return [fn(*args_of(part)) for part in parts]
    distributed = _import_distributed()
    out: list[Any] = [None] * len(parts)
    queue = iter(enumerate(parts))
    with distributed.Client(address, timeout="60s") as client:
        index: dict[Any, int] = {}

        def submit() -> Any:
            k, part = next(queue, (None, None))
            if k is None:
                return None
            future = client.submit(fn, *args_of(part), pure=False)
            index[future] = k
            return future

        done = distributed.as_completed([f for f in (submit() for _ in range(IN_FLIGHT)) if f is not None])
        for future in done:
            out[index.pop(future)] = future.result()
            following = submit()
            if following is not None:
                done.add(following)
    logger.info("%s: %d slice(s) computed on the cluster at %s", getattr(fn, "__name__", fn), len(parts), address)
    return out


def slices(texts: Sequence[str], size: int | None = None) -> list[list[int]]:
    """Indices of ``texts`` in slices of ``size`` (:data:`SLICE_TEXTS`), longest texts first, so that
    slices cost about the same."""
    size = size or SLICE_TEXTS
    order = sorted(range(len(texts)), key=lambda i: (-len(texts[i]), i))
    return [order[start:start + size] for start in range(0, len(order), size)]


def fill_cache_on_cluster(embedder: Any, texts: Sequence[str], client: Any, progress: bool | str = False,
                          threads: int | None = None) -> None:
    """:meth:`Embedder.fill_cache` with the missing texts computed on the cluster behind ``client``.

    Cached vectors are checked in the client's store; the rest go out in slices and come back to be
    stored slice by slice (an interrupted run keeps what came back, and no vector is held longer than
    its slice). Sets ``embedder.last_stats`` as :meth:`Embedder.embed` does.
    """
    from distributed import as_completed
    from tqdm.auto import tqdm

    if embedder.cache is None:
        raise ValueError("embedding on a cluster fills the cache: the embedder needs one")
    started = time.perf_counter()
    texts = list(texts)
    text_of = {sha256_text(t): t for t in texts}
    missing = embedder.missing_from_cache(list(text_of))
    spec = ModelSpec(_model_arg(embedder), None, embedder.seed, threads, embedder.batch_size,
                     embedder.fingerprint, getattr(embedder, "backend", "torch"))
    parts = slices([text_of[h] for h in missing])
    futures = {client.submit(embed_slice, spec, [text_of[missing[i]] for i in part], pure=False): part
               for part in parts}
    label = progress if isinstance(progress, str) else "embedding on the cluster"
    with tqdm(total=len(missing), desc=label, unit="text", disable=not progress) as bar:
        for future in as_completed(futures):
            fingerprint, got = future.result()
            if fingerprint != embedder.fingerprint:
                raise ModelError(f"a Dask worker has other model files (fingerprint {fingerprint[:16]}, "
                                 f"expected {embedder.fingerprint[:16]})", path=embedder.path,
                                 fix="install the same embedding model package on every worker")
            part = futures.pop(future)
            embedder.cache.put_many(embedder.fingerprint, [(missing[i], got[k]) for k, i in enumerate(part)])
            bar.update(len(got))
    embedder.last_stats = {"texts": len(texts), "unique": len(text_of), "from_cache": len(text_of) - len(missing),
                           "embedded": len(missing), "chunks": None, "slices": len(parts),
                           "seconds": round(time.perf_counter() - started, 3)}


def _model_arg(embedder: Any) -> str | None:
    """The case's model as the worker should resolve it: the package name for the packaged default, else
    the absolute folder (which a remote worker must see at the same path)."""
    from forensics.embeddings import DEFAULT_MODEL_PACKAGE

    return None if embedder.name == DEFAULT_MODEL_PACKAGE else str(embedder.path)


def local_threads(workers: int) -> int:
    """Torch threads per worker of a local cluster: the machine's cores shared out (vectors do not depend
    on the thread count: checked bit for bit with 1 and 2 threads)."""
    return max(1, (os.cpu_count() or 1) // max(1, workers))


def describe(client: Any) -> dict[str, Any]:
    """What the manifest could record about the cluster: scheduler address and worker count."""
    info = client.scheduler_info()
    return {"scheduler": info.get("address"), "workers": len(info.get("workers", {})),
            "python": sys.version.split()[0]}
