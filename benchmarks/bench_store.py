"""Read and write rates of the embedding store options, on synthetic 384-float vectors.

Why: the cache had one file per text; a million-exchange case (two million texts with the openings)
needs packed storage. This measures the three candidates on the same entries (the same self-checking
bytes, verified on every read):

* ``per-file``: the old layout (``<ns>/<h[:2]>/<h>.bin``, temp file + ``os.replace`` per entry);
* ``sqlite``: :class:`forensics.store.VectorStore` (WAL, one transaction per group of 512, batched
  ``SELECT ... IN``), what the suite uses;
* ``shard``: a minimal append-only packed file with an in-memory index (one writer, no lock, no crash
  recovery, no compaction): the raw speed ceiling of the "few large files" option, without the code
  that would make it safe.

Plus ``sqlite, 2 writers``: two processes writing disjoint halves into one database at once, and the
bytes on disk per entry. Random reads are in a shuffled order (a case reads texts in corpus order, not
insertion order).

``--large N`` measures the SQLite store alone at the size of a million-exchange case (N = 2,000,000:
answers and their openings): N entries written a group at a time, then all verified back in slices as
``forensics run`` does on a warm cache, with the peak RSS of the process (vectors are generated a group
at a time, so the benchmark itself holds little).

    .venv/bin/python benchmarks/bench_store.py               # 50,000 entries, three options
    .venv/bin/python benchmarks/bench_store.py --large 2000000 --dir /var/tmp
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from forensics.store import VectorStore, decode_entry, encode_entry  # noqa: E402

SCHEME, FP, DIM, GROUP = "bench:v1", "b" * 64, 384, 512


def keys(n: int, offset: int = 0) -> list[str]:
    return [hashlib.sha256(f"text {i}".encode()).hexdigest() for i in range(offset, offset + n)]


def vectors(n: int, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


# ---- the three options ------------------------------------------------------------------------------

def perfile_write(folder: Path, hs: list[str], vs: np.ndarray) -> None:
    for h, v in zip(hs, vs, strict=True):
        path = folder / "ns" / h[:2] / f"{h}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as handle:
            handle.write(encode_entry(SCHEME, FP, h, v))
        os.replace(tmp, path)


def perfile_read(folder: Path, hs: list[str]) -> int:
    ok = 0
    for h in hs:
        vector, _ = decode_entry((folder / "ns" / h[:2] / f"{h}.bin").read_bytes(), SCHEME, FP, h, DIM)
        ok += vector is not None
    return ok


def sqlite_write(folder: Path, hs: list[str], vs: np.ndarray) -> None:
    store = VectorStore(folder, SCHEME)
    for start in range(0, len(hs), GROUP):
        store.put_many(FP, zip(hs[start:start + GROUP], vs[start:start + GROUP], strict=True))


def sqlite_read(folder: Path, hs: list[str]) -> int:
    store = VectorStore(folder, SCHEME)
    return sum(len(store.get_many(FP, hs[start:start + 4096], DIM)) for start in range(0, len(hs), 4096))


def shard_write(folder: Path, hs: list[str], vs: np.ndarray) -> dict[str, tuple[int, int]]:
    index, offset = {}, 0
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "shard-0.bin", "ab") as handle:
        for h, v in zip(hs, vs, strict=True):
            entry = encode_entry(SCHEME, FP, h, v)
            handle.write(entry)
            index[h] = (offset, len(entry))
            offset += len(entry)
    return index


def shard_read(folder: Path, hs: list[str], index: dict[str, tuple[int, int]]) -> int:
    ok = 0
    fd = os.open(folder / "shard-0.bin", os.O_RDONLY)
    try:
        for h in hs:
            offset, size = index[h]
            vector, _ = decode_entry(os.pread(fd, size, offset), SCHEME, FP, h, DIM)
            ok += vector is not None
    finally:
        os.close(fd)
    return ok


# ---- runs ---------------------------------------------------------------------------------------------

def two_writers(folder: Path, n: int) -> float:
    """Two processes, each writing half the entries into one database at once; wall seconds."""
    here = str(Path(__file__).parent)
    code = (f"import sys; sys.path.insert(0, {here!r}); import bench_store as b; from pathlib import Path; "
            "o, n = int(sys.argv[1]), int(sys.argv[2]); "
            "b.sqlite_write(Path(sys.argv[3]), b.keys(n, o), b.vectors(n, o))")
    half = n // 2
    started = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-c", code, str(o), str(half), str(folder)]) for o in (0, half)]
    assert all(p.wait() == 0 for p in procs)
    elapsed = time.perf_counter() - started
    assert VectorStore(folder, SCHEME).count(FP) == 2 * half
    return elapsed


def large(n: int, root: Path) -> None:
    """Write ``n`` entries group by group, then read them all back verified, slice by slice."""
    import resource

    store = VectorStore(root / "large", SCHEME)
    started = time.perf_counter()
    for start in range(0, n, GROUP):
        size = min(GROUP, n - start)
        store.put_many(FP, zip(keys(size, start), vectors(size, start), strict=True))
    write_s = time.perf_counter() - started
    started, found = time.perf_counter(), 0
    for start in range(0, n, 16384):
        found += len(store.get_many(FP, keys(min(16384, n - start), start), DIM))
    read_s = time.perf_counter() - started
    assert found == n
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"sqlite store, {n:,} entries: write {write_s:.0f} s ({n / write_s:,.0f}/s), verified read "
          f"{read_s:.0f} s ({n / read_s:,.0f}/s), {folder_bytes(root / 'large') / 2**30:.2f} GiB on disk, "
          f"peak RSS {rss:,.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=50_000)
    parser.add_argument("--dir", type=Path, default=None, help="where to write (default: a temp folder)")
    parser.add_argument("--large", type=int, default=0, help="only the SQLite store, at this many entries")
    args = parser.parse_args()
    if args.large:
        with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
            large(args.large, Path(tmp))
        return
    n = args.entries
    hs, vs = keys(n), vectors(n)
    shuffled = random.Random(0).sample(hs, len(hs))
    rows = []
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        root = Path(tmp)
        w = timed(lambda: perfile_write(root / "perfile", hs, vs))
        r = timed(lambda: perfile_read(root / "perfile", shuffled))
        rows.append(("per-file (old)", w, r, folder_bytes(root / "perfile"), n))
        w = timed(lambda: sqlite_write(root / "sqlite", hs, vs))
        r = timed(lambda: sqlite_read(root / "sqlite", shuffled))
        rows.append(("sqlite (WAL)", w, r, folder_bytes(root / "sqlite"), 2))
        holder: dict[str, dict] = {}
        w = timed(lambda: holder.setdefault("index", shard_write(root / "shard", hs, vs)))
        r = timed(lambda: shard_read(root / "shard", shuffled, holder["index"]))
        rows.append(("append-only shard (no safety)", w, r, folder_bytes(root / "shard"), 1))
        w2 = two_writers(root / "sqlite2", n)
    print(f"{n} entries of {DIM} float32, verified on read; {os.cpu_count()} CPUs visible")
    print(f"{'store':<31} {'write/s':>10} {'read/s':>10} {'bytes/entry':>12} {'files':>8}")
    for name, w, r, size, files in rows:
        print(f"{name:<31} {n / w:>10,.0f} {n / r:>10,.0f} {size / n:>12,.0f} {files:>8,}")
    print(f"{'sqlite, 2 writer processes':<31} {n / w2:>10,.0f} {'':>10} {'':>12} {'':>8}")


if __name__ == "__main__":
    main()
