"""The packed embedding store: concurrent writers, a writer killed mid-transaction, corrupted entries.

No model here: vectors are synthetic, so these tests take a second or two. Writers are separate processes
(as concurrent ``forensics run`` invocations are), each importing only ``forensics.store``.
"""

from __future__ import annotations

import hashlib
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

from forensics.store import DB_NAME, VectorStore, encode_entry

SCHEME = "test-scheme:v1"
FP = "f" * 64
DIM = 16


def key(i: int) -> str:
    return hashlib.sha256(f"text {i}".encode()).hexdigest()


def vector(i: int) -> np.ndarray:
    return (np.arange(DIM, dtype=np.float32) + i) / 7


WRITER = textwrap.dedent("""
    import sys, hashlib, numpy as np
    from forensics.store import VectorStore
    folder, first, last = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    store = VectorStore(folder, "test-scheme:v1")
    key = lambda i: hashlib.sha256(f"text {i}".encode()).hexdigest()
    for start in range(first, last, 25):
        items = [(key(i), (np.arange(16, dtype=np.float32) + i) / 7) for i in range(start, min(start + 25, last))]
        store.put_many("f" * 64, items)
    assert not store._write_failed
""")

KILLED = textwrap.dedent("""
    import os, signal, sys, hashlib, numpy as np
    from forensics.store import VectorStore, encode_entry
    store = VectorStore(sys.argv[1], "test-scheme:v1")
    key = lambda i: hashlib.sha256(f"text {i}".encode()).hexdigest()
    vec = lambda i: (np.arange(16, dtype=np.float32) + i) / 7
    store.put_many("f" * 64, [(key(i), vec(i)) for i in range(50)])      # committed
    conn, ns = store._connect(), store._namespace("f" * 64)
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany("INSERT INTO vectors (ns, text_hash, entry) VALUES (?, ?, ?)",
                     [(ns, key(i), encode_entry("test-scheme:v1", "f" * 64, key(i), vec(i))) for i in range(50, 5000)])
    os.kill(os.getpid(), signal.SIGKILL)                                  # dies mid-transaction
""")


def test_roundtrip_is_bit_exact_and_batched(tmp_path: Path) -> None:
    store = VectorStore(tmp_path, SCHEME)
    assert store.get(FP, key(0), DIM) is None and store.count() == 0
    store.put_many(FP, [(key(i), vector(i)) for i in range(1200)])  # more keys than one SELECT takes
    got = store.get_many(FP, [key(i) for i in range(1300)], DIM)
    assert len(got) == 1200 and all(got[key(i)].tobytes() == vector(i).tobytes() for i in range(1200))
    assert (tmp_path / DB_NAME).is_file() and store.integrity_ok()
    other = VectorStore(tmp_path, "another-scheme")  # another pooling scheme: another namespace
    assert other.get(FP, key(0), DIM) is None


def test_concurrent_writer_processes(tmp_path: Path) -> None:
    """Four processes write overlapping key ranges at once; every entry ends up whole and valid."""
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), str(a), str(a + 400)])
             for a in (0, 200, 400, 600)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    store = VectorStore(tmp_path, SCHEME)
    got = store.get_many(FP, [key(i) for i in range(1000)], DIM)
    assert len(got) == 1000 and store.rejected == 0 and store.integrity_ok()
    assert all(np.array_equal(got[key(i)], vector(i)) for i in range(1000))


def test_a_busy_database_is_waited_for_not_given_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    """SQLite can answer "database is locked" at once (several processes opening a new store together):
    the write is tried again, and only an error that is not about a busy database ends caching."""
    caplog.set_level("WARNING")
    store = VectorStore(tmp_path, SCHEME)
    real, calls = VectorStore._write, []

    def busy_twice(self: VectorStore, fingerprint: str, items: list) -> None:
        calls.append(len(items))
        if len(calls) <= 2:
            raise sqlite3.OperationalError("database is locked")
        real(self, fingerprint, items)

    monkeypatch.setattr(VectorStore, "_write", busy_twice)
    store.put_many(FP, ((key(i), vector(i)) for i in range(3)))  # a generator: kept for the retries
    assert calls == [3, 3, 3] and len(store.get_many(FP, [key(i) for i in range(3)], DIM)) == 3
    assert "cannot write" not in caplog.text

    def broken(self: VectorStore, fingerprint: str, items: list) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(VectorStore, "_write", broken)
    store.put_many(FP, [(key(9), vector(9))])
    assert "cannot write" in caplog.text and store.get(FP, key(9), DIM) is None


def test_concurrent_threads_share_one_store(tmp_path: Path) -> None:
    store = VectorStore(tmp_path, SCHEME)
    threads = [threading.Thread(target=store.put, args=(FP, key(0), vector(i))) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got = store.get(FP, key(0), DIM)
    assert got is not None and any(np.array_equal(got, vector(i)) for i in range(8))


def test_writer_killed_mid_transaction_leaves_committed_entries_only(tmp_path: Path) -> None:
    """A torn write: the kill lands inside a transaction; what it committed before stays, the rest is absent."""
    done = subprocess.run([sys.executable, "-c", KILLED, str(tmp_path)], timeout=120)
    assert done.returncode != 0
    store = VectorStore(tmp_path, SCHEME)
    assert store.integrity_ok()
    assert store.count(FP) == 50 and store.rejected == 0
    assert len(store.get_many(FP, [key(i) for i in range(5000)], DIM)) == 50
    store.put(FP, key(4999), vector(4999))  # the store is writable again (the dead writer's lock is gone)
    assert store.count(FP) == 51


@pytest.mark.parametrize("damage", ["flip", "truncate", "moved"])
def test_corrupted_entry_is_rejected_and_deleted(tmp_path: Path, damage: str) -> None:
    store = VectorStore(tmp_path, SCHEME)
    store.put_many(FP, [(key(i), vector(i)) for i in range(3)])
    data = bytearray(store.read_raw(FP, key(1)))
    if damage == "flip":
        data[20] ^= 0x10  # one bit of one float: a plausible vector, only the digest can tell
    elif damage == "truncate":
        data = data[:-5]
    else:
        data = bytearray(encode_entry(SCHEME, FP, key(2), vector(2)))
    store.write_raw(FP, key(1), bytes(data))
    got = store.get_many(FP, [key(i) for i in range(3)], DIM)
    assert set(got) == {key(0), key(2)} and store.rejected == 1
    assert store.read_raw(FP, key(1)) is None  # deleted, so the next run recomputes it


def test_unwritable_store_only_costs_speed(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    store = VectorStore(blocker, SCHEME)
    store.put(FP, key(0), vector(0))
    assert store._write_failed and store.get(FP, key(0), DIM) is None


def test_unreadable_database_file_is_set_aside(tmp_path: Path) -> None:
    """A file SQLite cannot read at all (overwritten, truncated to garbage) is moved aside, never trusted."""
    (tmp_path / DB_NAME).write_bytes(b"this is not an SQLite database, just bytes" * 100)
    store = VectorStore(tmp_path, SCHEME)
    assert store.get(FP, key(0), DIM) is None
    store.put(FP, key(0), vector(0))
    assert np.array_equal(store.get(FP, key(0), DIM), vector(0)) and store.integrity_ok()
    assert len(list(tmp_path.glob(f"{DB_NAME}.unreadable-*"))) == 1
