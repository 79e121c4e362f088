"""``forensics benchmark fetch``: the labelled calibration data, at a pinned commit, verified byte for byte.

The shipped calibration was fitted on a labelled benchmark (real model outputs whose training lineage is
documented). A reviewer who wants to refit it needs exactly those bytes: this module downloads each file
from the source repository at the pinned commit (or copies it from a local folder with the same layout,
``results/<model>/model_outputs.json``), checks its sha256 against the list committed with the package
(``forensics/labelled/<name>/files.csv``), and writes the labels file beside them. A file whose bytes
differ stops the fetch with a one-line error naming it; nothing unverified is ever left under its final
name (each file is written to a temporary name and renamed only once its hash matches).
"""

from __future__ import annotations

import csv
import json
import shutil
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from forensics.custody import atomic_path, sha256_file
from forensics.errors import InputError

LABELLED_DIR = Path(__file__).resolve().parent / "labelled"
DEFAULT_BENCHMARK = "alpaca_eval"
_TIMEOUT_S = 60


@dataclass(frozen=True)
class BenchmarkFile:
    """One file of the benchmark: its name here, where it comes from, and the hash it must have."""

    name: str
    sha256: str
    size: int

    @property
    def stem(self) -> str:
        return Path(self.name).stem


@dataclass(frozen=True)
class BenchmarkSpec:
    """What a labelled benchmark is: its files with hashes, its labels, and its pinned source."""

    folder: Path
    repository: str
    commit: str
    url_template: str
    layout: str
    files: tuple[BenchmarkFile, ...]

    @property
    def labels(self) -> Path:
        return self.folder / "LABELS.csv"

    def url(self, item: BenchmarkFile) -> str:
        return self.url_template.format(repository=self.repository, commit=self.commit, stem=item.stem)

    def local(self, root: Path, item: BenchmarkFile) -> Path:
        return root / self.layout.format(stem=item.stem)


def load_spec(name: str = DEFAULT_BENCHMARK) -> BenchmarkSpec:
    folder = LABELLED_DIR / name
    if not (folder / "files.csv").is_file():
        known = sorted(p.name for p in LABELLED_DIR.iterdir() if p.is_dir())
        raise InputError(f"no labelled benchmark named {name!r}", fix=f"use one of {', '.join(known)}")
    source = json.loads((folder / "source.json").read_text(encoding="utf-8"))
    with open(folder / "files.csv", encoding="utf-8", newline="") as handle:
        files = tuple(BenchmarkFile(r["file"], r["sha256"], int(r["bytes"])) for r in csv.DictReader(handle))
    return BenchmarkSpec(folder, source["repository"], source["commit"], source["url_template"],
                         source["layout"], files)


def fetch(dest: Path, source: str | None = None, name: str = DEFAULT_BENCHMARK,
          progress: bool = True) -> list[Path]:
    """Fetch every file of the benchmark into ``dest``, verify it, and write ``LABELS.csv`` beside them.

    ``source``: ``None`` for the pinned repository's raw files over the network; an ``http(s)://`` URL of a
    mirror holding the same layout; or a local folder with the ``results/<model>/model_outputs.json``
    layout (a checkout of the repository). Whatever the source, every file must have the pinned sha256.
    Files already present in ``dest`` with the right hash are kept.
    """
    spec = load_spec(name)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    remote = source is None or str(source).startswith(("http://", "https://"))
    root = None if remote else _local_root(Path(str(source)))
    written = []
    for i, item in enumerate(spec.files, 1):
        target = dest / item.name
        if not (target.is_file() and sha256_file(target) == item.sha256):
            origin = _origin(spec, item, source, root)
            if progress:
                print(f"[{i}/{len(spec.files)}] {item.name} <- {origin}", flush=True)
            _fetch_one(item, origin, target, from_network=remote)
        written.append(target)
    with atomic_path(dest / "LABELS.csv") as tmp:
        shutil.copyfile(spec.labels, tmp)
    return [*written, dest / "LABELS.csv"]


def _origin(spec: BenchmarkSpec, item: BenchmarkFile, source: str | None, root: Path | None) -> str:
    if root is not None:
        return str(spec.local(root, item))
    if source is None:
        return spec.url(item)
    return f"{str(source).rstrip('/')}/{spec.layout.format(stem=item.stem)}"


def _local_root(root: Path) -> Path:
    if not root.is_dir():
        raise InputError("the source folder does not exist", path=root,
                         fix="give a folder with the layout results/<model>/model_outputs.json")
    return root


def _fetch_one(item: BenchmarkFile, origin: str, target: Path, *, from_network: bool) -> None:
    """Copy or download one file to a temporary name, verify its hash, then rename it into place."""
    with atomic_path(target) as tmp:
        if from_network:
            with urllib.request.urlopen(origin, timeout=_TIMEOUT_S) as response, open(tmp, "wb") as out:  # noqa: S310
                shutil.copyfileobj(response, out)
        else:
            if not Path(origin).is_file():
                raise InputError(f"{item.name}: not found in the source folder", path=origin,
                                 fix="give a copy of the source repository's results/ folder")
            shutil.copyfile(origin, tmp)
        got = sha256_file(tmp)
        if got != item.sha256:
            raise InputError(f"{item.name}: sha256 {got[:16]}... differs from the pinned {item.sha256[:16]}... "
                             "(the file is not the one the calibration was fitted on)", path=origin,
                             fix="fetch it again from the pinned commit; do not edit benchmark files")

