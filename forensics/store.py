"""The packed embedding store: one SQLite database per cache folder instead of one file per text.

Why SQLite (measured in ``benchmarks/bench_store.py``; see docs/ARCHITECTURE.md):

* **Size.** A million-exchange case caches about two million vectors (answers and their openings). One
  file per text leaves millions of small files (inode exhaustion, slow backups, ``rm -rf`` that takes
  minutes); the database is one file plus its write-ahead log.
* **Concurrency and interruption for free.** Several runs of one user (or a run and a notebook) write
  the same cache. SQLite's WAL mode gives concurrent readers and serialised writers with a lock the OS
  releases when a process dies, and a transaction that was not committed (a killed writer, a power cut)
  is simply absent on the next open. A home-made packed shard format would need its own lock, index,
  torn-tail recovery and compaction code, all to be tested; the stdlib ships a tested one.
* **Same keys, same verification.** A row is keyed by (model fingerprint, pooling scheme, sha256 of the
  text) and holds exactly the bytes the per-file cache held: ``header | float32 vector |
  sha256(key, header, vector)``. Every read re-checks the digest, so a flipped bit, a truncated value or
  a row moved under another key is rejected, deleted and recomputed, never trusted. The vectors are the
  same bytes as before: nothing about the embeddings changes.
* **Migration.** Entries of the old per-file layout (``<fp[:16]>-<scheme[:8]>/<h[:2]>/<h>.bin``) are
  imported lazily: a key missing from the database is looked up in the old layout, verified with the same
  digest, and copied in. Old files are left in place (an older checkout may still read them); they can be
  deleted once no such checkout remains.

The database lives on a local disk (SQLite's locking is unreliable on network file systems); on a Dask
cluster the workers return vectors to the client, which alone writes the store.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sqlite3
import struct
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

_MAGIC = b"FEMB"
_VERSION = 1
_DTYPE_F32_LE = 1
_HEADER = struct.Struct("<4sBBHI")  # magic, version, dtype, reserved, dim
_DIGEST_BYTES = 32
#: The database file inside the cache folder.
DB_NAME = "embeddings.sqlite3"
#: Keys per ``SELECT ... IN (...)``: well under SQLite's bound-parameter limit.
_LOOKUP_BATCH = 500
#: How long a writer waits for another writer's transaction before giving up (seconds).
_BUSY_TIMEOUT_S = 120.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS namespaces (
    id INTEGER PRIMARY KEY, fingerprint TEXT NOT NULL, scheme TEXT NOT NULL, UNIQUE (fingerprint, scheme));
CREATE TABLE IF NOT EXISTS vectors (
    id INTEGER PRIMARY KEY, ns INTEGER NOT NULL, text_hash TEXT NOT NULL, entry BLOB NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS vectors_key ON vectors (ns, text_hash);
"""
# Rows append in rowid order and only the small (ns, hash) index takes random inserts: a WITHOUT ROWID
# table keyed by the hash moved 1.6 kB rows on every insert (measured: 24x slower writes, twice the size).


def _digest(scheme: str, fingerprint: str, text_hash: str, header: bytes, vector: bytes) -> bytes:
    key = f"forensics-embedding\0{fingerprint}\0{scheme}\0{text_hash}\0".encode()
    return hashlib.sha256(key + header + vector).digest()


def encode_entry(scheme: str, fingerprint: str, text_hash: str, vector: np.ndarray) -> bytes:
    """The self-checking bytes of one entry: ``header | float32 LE vector | sha256(key, header, vector)``."""
    vec = np.ascontiguousarray(vector, dtype="<f4").reshape(-1)
    header = _HEADER.pack(_MAGIC, _VERSION, _DTYPE_F32_LE, 0, vec.size)
    body = vec.tobytes()
    return header + body + _digest(scheme, fingerprint, text_hash, header, body)


def decode_entry(data: bytes, scheme: str, fingerprint: str, text_hash: str,
                 dim: int) -> tuple[np.ndarray | None, str | None]:
    """``(vector, None)`` when the bytes are a valid entry for this key, else ``(None, problem)``."""
    expected = _HEADER.size + 4 * dim + _DIGEST_BYTES
    if len(data) != expected:
        return None, f"size {len(data)} bytes, expected {expected}"
    magic, version, dtype, _reserved, stored_dim = _HEADER.unpack_from(data)
    if (magic, version, dtype, stored_dim) != (_MAGIC, _VERSION, _DTYPE_F32_LE, dim):
        return None, f"header {magic!r} v{version} dtype {dtype} dim {stored_dim} not expected"
    header, body = data[:_HEADER.size], data[_HEADER.size:-_DIGEST_BYTES]
    if _digest(scheme, fingerprint, text_hash, header, body) != data[-_DIGEST_BYTES:]:
        return None, "checksum mismatch"
    vector = np.frombuffer(body, dtype="<f4").astype(np.float32)
    if not np.all(np.isfinite(vector)):
        return None, "non-finite values"
    return vector, None


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


class VectorStore:
    """Verified vectors keyed by (model fingerprint, text sha256) in ``<folder>/embeddings.sqlite3``.

    ``scheme`` (the chunk-and-pool scheme's name) is part of every key and digest. One connection per
    thread and process (sqlite3 connections must not cross threads, nor survive a fork). Writes are
    batched (:meth:`put_many`, one transaction per call); a store that cannot be written only costs speed,
    so write failures are logged once and ignored.
    """

    def __init__(self, folder: str | Path, scheme: str) -> None:
        self.folder = Path(folder).expanduser()
        self.scheme = scheme
        self.rejected = 0   # entries found invalid (and deleted) since this object was made
        self.imported = 0   # entries copied in from the old per-file layout
        self._write_failed = False
        self._local = threading.local()
        self._ns: dict[str, int] = {}
        self._ns_lock = threading.Lock()

    # ---- connection -----------------------------------------------------------------------------------
    @property
    def db_path(self) -> Path:
        return self.folder / DB_NAME

    def _connect(self) -> sqlite3.Connection:
        """This thread's connection (re-opened after a fork), created with the schema on first use."""
        held = getattr(self._local, "conn", None)
        if held is not None and held[0] == os.getpid():
            return held[1]
        self.folder.mkdir(parents=True, exist_ok=True)
        try:
            conn = self._open()
        except sqlite3.DatabaseError as exc:
            if "not a database" not in str(exc) and "malformed" not in str(exc):
                raise
            self._set_aside(exc)
            conn = self._open()
        self._local.conn = (os.getpid(), conn)
        return conn

    def _set_aside(self, exc: Exception) -> None:
        """A database file SQLite cannot read at all: keep it for inspection under another name and start
        an empty store (every vector will be recomputed; nothing is trusted)."""
        aside = self.db_path.with_name(f"{DB_NAME}.unreadable-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}")
        logger.warning("embedding store %s is unreadable (%s); moved to %s, starting an empty store",
                       self.db_path, exc, aside.name)
        with contextlib.suppress(FileNotFoundError):
            os.replace(self.db_path, aside)
        for suffix in ("-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{self.db_path}{suffix}")

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.db_path, timeout=_BUSY_TIMEOUT_S, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")  # WAL: durable at checkpoints, never corrupt
            # Checkpoint (and fsync) every 64 MiB of log rather than 4 MiB, with a 64 MiB page cache: random
            # hash keys touch a new index page per row, and as the store grew the defaults halved the
            # write rate (measured 4,458/s -> 2,025/s over 200,000 entries; these settings kept ~3,700/s).
            conn.execute("PRAGMA wal_autocheckpoint=16384")
            conn.execute("PRAGMA cache_size=-65536")
            conn.executescript(_SCHEMA)
        except sqlite3.DatabaseError:
            conn.close()
            raise
        return conn

    def close(self) -> None:
        held = getattr(self._local, "conn", None)
        if held is not None:
            with contextlib.suppress(sqlite3.Error):
                held[1].close()
            self._local.conn = None

    def _namespace(self, fingerprint: str) -> int:
        with self._ns_lock:
            if fingerprint in self._ns:
                return self._ns[fingerprint]
        conn = self._connect()
        conn.execute("INSERT OR IGNORE INTO namespaces (fingerprint, scheme) VALUES (?, ?)",
                     (fingerprint, self.scheme))
        (ns,) = conn.execute("SELECT id FROM namespaces WHERE fingerprint = ? AND scheme = ?",
                             (fingerprint, self.scheme)).fetchone()
        with self._ns_lock:
            self._ns[fingerprint] = int(ns)
        return int(ns)

    # ---- reading ----------------------------------------------------------------------------------------
    def get(self, fingerprint: str, text_hash: str, dim: int) -> np.ndarray | None:
        """The stored vector, or None when absent or (after logging and deleting it) invalid."""
        return self.get_many(fingerprint, [text_hash], dim).get(text_hash)

    def get_many(self, fingerprint: str, text_hashes: Sequence[str], dim: int) -> dict[str, np.ndarray]:
        """``text_hash -> vector`` for every valid stored entry among ``text_hashes`` (absent ones left out).

        Keys missing from the database are looked up in the old per-file layout and imported if valid.
        """
        try:
            raw = self._select(fingerprint, list(dict.fromkeys(text_hashes)))
        except sqlite3.DatabaseError as exc:
            logger.warning("embedding store %s unreadable (%s); recomputing", self.db_path, exc)
            raw = {}
        found: dict[str, np.ndarray] = {}
        bad: list[str] = []
        for h, data in raw.items():
            vector, problem = decode_entry(data, self.scheme, fingerprint, h, dim)
            if problem is None:
                found[h] = vector
            else:
                logger.warning("embedding store: entry %s of %s is invalid (%s); deleted, recomputing",
                               h, self.db_path, problem)
                bad.append(h)
        if bad:
            self.rejected += len(bad)
            self._delete(fingerprint, bad)
        missing = [h for h in text_hashes if h not in found and h not in raw]
        found.update(self._import_legacy(fingerprint, missing, dim))
        return found

    def _select(self, fingerprint: str, hashes: list[str]) -> dict[str, bytes]:
        if not hashes or not self.db_path.exists():
            return {}
        ns, conn, out = self._namespace(fingerprint), self._connect(), {}
        for part in _chunks(hashes, _LOOKUP_BATCH):
            marks = ",".join("?" * len(part))
            rows = conn.execute(f"SELECT text_hash, entry FROM vectors WHERE ns = ? AND text_hash IN ({marks})",
                                (ns, *part))
            out.update((h, bytes(entry)) for h, entry in rows)
        return out

    def _delete(self, fingerprint: str, hashes: list[str]) -> None:
        with contextlib.suppress(sqlite3.Error):
            ns, conn = self._namespace(fingerprint), self._connect()
            conn.executemany("DELETE FROM vectors WHERE ns = ? AND text_hash = ?", [(ns, h) for h in hashes])

    def count(self, fingerprint: str | None = None) -> int:
        """Stored entries (of one model, or all)."""
        if not self.db_path.exists():
            return 0
        conn = self._connect()
        if fingerprint is None:
            return int(conn.execute("SELECT COUNT(*) FROM vectors").fetchone()[0])
        return int(conn.execute("SELECT COUNT(*) FROM vectors WHERE ns = ?",
                                (self._namespace(fingerprint),)).fetchone()[0])

    def hashes(self, fingerprint: str) -> list[str]:
        """Every stored text hash of one model, sorted (for tests and maintenance)."""
        if not self.db_path.exists():
            return []
        rows = self._connect().execute("SELECT text_hash FROM vectors WHERE ns = ? ORDER BY text_hash",
                                       (self._namespace(fingerprint),))
        return [h for (h,) in rows]

    # ---- writing ----------------------------------------------------------------------------------------
    def put(self, fingerprint: str, text_hash: str, vector: np.ndarray) -> None:
        self.put_many(fingerprint, [(text_hash, vector)])

    def put_many(self, fingerprint: str, items: Iterable[tuple[str, np.ndarray]]) -> None:
        """Store entries in one transaction: all of them become visible together, or none.

        A write that finds the database busy is tried again until :data:`_BUSY_TIMEOUT_S` has passed:
        SQLite's own wait does not cover every case (several processes opening a new store at once can be
        told "database is locked" at once), and a store that gives up only costs speed, so it should not
        give up on a neighbour's transaction.
        """
        entries = [(h, encode_entry(self.scheme, fingerprint, h, v)) for h, v in items]  # once, not per try
        deadline, pause = time.monotonic() + _BUSY_TIMEOUT_S, 0.05
        while True:
            try:
                self._write(fingerprint, entries)
                return
            except (OSError, sqlite3.Error) as exc:
                busy = isinstance(exc, sqlite3.OperationalError) and ("locked" in str(exc) or "busy" in str(exc))
                if not busy or time.monotonic() + pause >= deadline:
                    if not self._write_failed:
                        logger.warning("embedding store: cannot write %s (%s); continuing without caching",
                                       self.db_path, exc)
                    self._write_failed = True
                    return
                time.sleep(pause)
                pause = min(pause * 2, 2.0)

    def _write(self, fingerprint: str, entries: list[tuple[str, bytes]]) -> None:
        if not entries:
            return
        ns, conn = self._namespace(fingerprint), self._connect()
        rows = [(ns, h, entry) for h, entry in entries]
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany("INSERT OR REPLACE INTO vectors (ns, text_hash, entry) VALUES (?, ?, ?)", rows)
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise

    def write_raw(self, fingerprint: str, text_hash: str, data: bytes) -> None:
        """Store ``data`` unchecked under a key: only for tests that forge damaged entries."""
        conn = self._connect()
        conn.execute("INSERT OR REPLACE INTO vectors (ns, text_hash, entry) VALUES (?, ?, ?)",
                     (self._namespace(fingerprint), text_hash, data))

    def read_raw(self, fingerprint: str, text_hash: str) -> bytes | None:
        raw = self._select(fingerprint, [text_hash])
        return raw.get(text_hash)

    # ---- the old per-file layout --------------------------------------------------------------------
    def legacy_path(self, fingerprint: str, text_hash: str) -> Path:
        """Where the per-file cache (before the packed store) kept this entry."""
        namespace = f"{fingerprint[:16]}-{hashlib.sha256(self.scheme.encode()).hexdigest()[:8]}"
        return self.folder / namespace / text_hash[:2] / f"{text_hash}.bin"

    def _import_legacy(self, fingerprint: str, hashes: list[str], dim: int) -> dict[str, np.ndarray]:
        """Copy valid old per-file entries for these keys into the database; invalid ones are ignored."""
        if not hashes or not any(self.folder.glob(f"{fingerprint[:16]}-*")):
            return {}
        found: dict[str, np.ndarray] = {}
        for h in hashes:
            try:
                data = self.legacy_path(fingerprint, h).read_bytes()
            except OSError:
                continue
            vector, problem = decode_entry(data, self.scheme, fingerprint, h, dim)
            if problem is None:
                found[h] = vector
            else:
                logger.warning("embedding cache: old entry %s is invalid (%s); recomputing",
                               self.legacy_path(fingerprint, h), problem)
        if found:
            self.put_many(fingerprint, found.items())
            self.imported += len(found)
        return found

    def remove_stale_temp_files(self, max_age_s: float = 3600.0) -> int:
        """Delete leftovers of old-layout writers killed mid-write (never read, only litter)."""
        cutoff = time.time() - max_age_s
        removed = 0
        for tmp in self.folder.glob("*/*/.*.tmp"):
            with contextlib.suppress(OSError):
                if tmp.stat().st_mtime < cutoff:
                    tmp.unlink()
                    removed += 1
        return removed

    def integrity_ok(self) -> bool:
        """SQLite's own structural check of the database file."""
        if not self.db_path.exists():
            return True
        return self._connect().execute("PRAGMA integrity_check").fetchone()[0] == "ok"
