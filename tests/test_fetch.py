"""``forensics benchmark fetch``: pinned files, verified byte for byte, LABELS.csv beside them."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from forensics.cli import main
from forensics.custody import sha256_file
from forensics.errors import InputError
from forensics.fetch import fetch, load_spec

SHARED = Path(os.environ.get("FORENSICS_BENCHMARK_DIR",
                             Path(__file__).resolve().parents[1].parent / "shared" / "data" / "alpaca_eval"))


@pytest.fixture(scope="module")
def source_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local folder with the source repository's layout, standing in for the network."""
    if not SHARED.is_dir():
        pytest.skip(f"the development benchmark is not at {SHARED} (set FORENSICS_BENCHMARK_DIR)")
    root = tmp_path_factory.mktemp("alpaca_eval_repo")
    for item in load_spec().files:
        target = root / "results" / item.stem / "model_outputs.json"
        target.parent.mkdir(parents=True)
        shutil.copyfile(SHARED / item.name, target)
    return root


def test_the_spec_lists_every_labelled_file_with_a_hash() -> None:
    spec = load_spec()
    labelled = {line.split(",")[0] for line in spec.labels.read_text(encoding="utf-8").splitlines()[1:]}
    assert {f.name for f in spec.files} == labelled
    assert all(len(f.sha256) == 64 for f in spec.files)
    assert len(spec.commit) == 40


def test_fetch_from_a_local_folder_verifies_and_writes_labels(source_tree: Path, tmp_path: Path) -> None:
    dest = tmp_path / "bench"
    assert main(["benchmark", "fetch", str(dest), "--source", str(source_tree)]) == 0
    spec = load_spec()
    for item in spec.files:
        assert sha256_file(dest / item.name) == item.sha256
    assert (dest / "LABELS.csv").read_bytes() == spec.labels.read_bytes()
    # a second fetch keeps what is already verified
    before = {p.name: p.stat().st_mtime_ns for p in dest.iterdir()}
    fetch(dest, str(source_tree), progress=False)
    assert all(before[p.name] == p.stat().st_mtime_ns for p in dest.iterdir() if p.name != "LABELS.csv")


def test_a_changed_byte_stops_the_fetch_naming_the_file(source_tree: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    spec = load_spec()
    victim = spec.files[len(spec.files) // 2]
    tampered = tmp_path / "repo"
    shutil.copytree(source_tree, tampered)
    path = tampered / "results" / victim.stem / "model_outputs.json"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    dest = tmp_path / "bench"
    assert main(["benchmark", "fetch", str(dest), "--source", str(tampered)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and victim.name in err and "sha256" in err
    assert not (dest / victim.name).exists()  # nothing unverified under its final name
    assert not [p for p in dest.iterdir() if p.name.endswith(".tmp")]
    assert not (dest / "LABELS.csv").exists()


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "results").mkdir()
    with pytest.raises(InputError, match=load_spec().files[0].name):
        fetch(tmp_path / "bench", str(tmp_path), progress=False)


def test_a_missing_source_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        fetch(tmp_path / "bench", str(tmp_path / "nowhere"), progress=False)
