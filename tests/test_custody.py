"""Chain of custody: hashes, atomic writes, the manifest's artifact records and the tamper check."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest

from forensics.custody import (
    Manifest,
    RunFolder,
    atomic_path,
    atomic_write_json,
    canonical_json,
    environment,
    sha256_file,
    sha256_text,
)
from forensics.errors import ForensicsError, VerificationError


def test_sha256_file_streams_the_exact_bytes(tmp_path: Path) -> None:
    data = bytes(range(256)) * 10_000  # larger than one read chunk
    path = tmp_path / "input.bin"
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()


def test_sha256_text_hashes_utf8_and_never_fails_on_odd_text() -> None:
    assert sha256_text("é") == hashlib.sha256("é".encode()).hexdigest()
    assert len(sha256_text("\ud800")) == 64  # a lone surrogate still hashes


def test_canonical_json_is_sorted_and_rejects_nan() -> None:
    assert canonical_json({"b": 1, "a": 2}).index('"a"') < canonical_json({"b": 1, "a": 2}).index('"b"')
    with pytest.raises(ValueError):
        canonical_json({"x": float("nan")})


def test_atomic_path_keeps_the_old_file_when_the_write_fails(tmp_path: Path) -> None:
    target = tmp_path / "findings.json"
    atomic_write_json(target, {"version": 1})
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half written")
        raise RuntimeError("killed")
    assert json.loads(target.read_text()) == {"version": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["findings.json"]  # no temporary file left


def test_run_folder_records_every_artifact_with_its_hash(tmp_path: Path) -> None:
    run = RunFolder(tmp_path / "run")
    path = run.write_json("artifacts/a.json", {"x": 1}, step="00_case")
    run.write_parquet("artifacts/t.parquet", pd.DataFrame({"k": ["a", "b"]}), step="00_case")
    manifest = Manifest.load(run.root)
    assert manifest.artifact_sha256("artifacts/a.json") == sha256_file(path)
    assert set(manifest.data["artifacts"]) == {"artifacts/a.json", "artifacts/t.parquet"}
    assert manifest.data["artifacts"]["artifacts/a.json"]["step"] == "00_case"


def test_reading_a_tampered_artifact_is_refused(tmp_path: Path) -> None:
    run = RunFolder(tmp_path / "run")
    run.write_parquet("artifacts/t.parquet", pd.DataFrame({"k": [1, 2, 3]}), step="00_case")
    assert run.read_parquet("artifacts/t.parquet")["k"].tolist() == [1, 2, 3]
    path = run.path("artifacts/t.parquet")
    raw = bytearray(path.read_bytes())
    raw[-10] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(VerificationError, match="artifact changed"):
        run.read_parquet("artifacts/t.parquet")
    with pytest.raises(VerificationError, match="artifact changed"):  # reading a few columns checks too
        run.read_parquet("artifacts/t.parquet", columns=["k"])


def test_reading_some_columns_skips_the_others_and_those_the_file_lacks(tmp_path: Path) -> None:
    run = RunFolder(tmp_path / "run")
    run.write_parquet("artifacts/t.parquet", pd.DataFrame({"k": [1, 2], "big": ["x", "y"], "z": [0, 1]}),
                      step="00_case")
    frame = run.read_parquet("artifacts/t.parquet", columns=["z", "k", "added-later"])
    assert list(frame.columns) == ["z", "k"] and frame["k"].tolist() == [1, 2]


def test_reading_an_edited_json_artifact_is_refused_naming_it(tmp_path: Path) -> None:
    """JSON artifacts get the same check as Parquet ones: an edit after the write is refused, in one line."""
    run = RunFolder(tmp_path / "run")
    path = run.write_json("artifacts/a.json", {"x": 1}, step="00_case")
    assert run.read_json("artifacts/a.json") == {"x": 1}
    path.write_text(json.dumps({"x": 2}), encoding="utf-8")
    with pytest.raises(VerificationError, match="artifact changed") as refused:
        run.read_json("artifacts/a.json")
    assert str(path) in str(refused.value) and "\n" not in str(refused.value)


def test_a_json_file_the_manifest_does_not_record_is_read_as_it_is(tmp_path: Path) -> None:
    """Only artifacts the manifest vouches for are checked (a run folder may hold other files)."""
    run = RunFolder(tmp_path / "run")
    run.path("notes.json").write_text('{"y": 3}', encoding="utf-8")
    assert run.read_json("notes.json") == {"y": 3}


def test_parquet_bytes_are_deterministic(tmp_path: Path) -> None:
    frame = pd.DataFrame({"k": ["a", "b"], "v": [0.5, 1.5]})
    a = RunFolder(tmp_path / "a").write_parquet("t.parquet", frame, step="s")
    b = RunFolder(tmp_path / "b").write_parquet("t.parquet", frame, step="s")
    assert a.read_bytes() == b.read_bytes()


def test_step_records_replace_earlier_attempts(tmp_path: Path) -> None:
    manifest = Manifest(tmp_path)
    manifest.record_step("01_x", "t0", "t1", "failed")
    manifest.record_step("01_x", "t2", "t3", "ok")
    manifest.record_step("00_y", "t4", "t5")
    assert [(s["step"], s["status"]) for s in manifest.data["steps"]] == [("00_y", "ok"), ("01_x", "ok")]


def test_environment_names_the_versions_that_matter() -> None:
    env = environment()
    assert env["python"] and env["packages"]["sentence-transformers"] != "not installed"
    assert env["packages"]["lir"] != "not installed"


@pytest.mark.slow
def test_the_evidence_step_refuses_an_edited_json_artifact_of_a_finished_step(
        small_case: Path, forensics_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real small case: steps 00-04 run, then one number in ``artifacts/semantic.json`` is changed by
    hand; the evidence step, which reads it, refuses to go on and names the file. Step 05 (clusters) is
    skipped: its artifact is optional to the evidence step and its UMAP takes longest."""
    from forensics import embeddings, evidence, exchanges, markers, semantic, stylometry
    from forensics.notebook import open_case
    from forensics.notebook import run_step as run_notebook_step

    monkeypatch.setenv("FORENSICS_CACHE", str(forensics_cache))
    case, run = open_case(small_case, small_case.parent / "run")
    for module, name in ((exchanges, "00_case"), (embeddings, "01_embeddings"), (semantic, "02_semantic"),
                         (stylometry, "03_stylometry"), (markers, "04_markers")):
        run_notebook_step(module, case, run, name)
    edited = run.path("artifacts/semantic.json")
    line = json.loads(edited.read_text(encoding="utf-8"))
    line["references"] = line["references"][:-1]  # one reference quietly dropped from the panel
    edited.write_text(json.dumps(line), encoding="utf-8")
    with pytest.raises(VerificationError, match="artifact changed since it was written") as refused:
        run_notebook_step(evidence, case, run, "06_evidence")
    message = str(refused.value)
    assert "artifacts/semantic.json" in message and "\n" not in message
    assert not run.path("findings.json").exists()
    steps = {s["step"]: s["status"] for s in run.manifest().data["steps"]}
    assert steps["06_evidence"] == "failed"
    assert list(steps) == ["00_case", "01_embeddings", "02_semantic", "03_stylometry", "04_markers",
                           "06_evidence"]  # each step recorded once
    # the investigator corrects an input and runs step 00 again: nothing derived from the old data survives
    run_notebook_step(exchanges, case, run, "00_case")
    assert not run.path("artifacts/semantic.json").exists() and not run.path("artifacts/markers.json").exists()
    assert [s["step"] for s in run.manifest().data["steps"]] == ["00_case"]
    with pytest.raises(ForensicsError, match="the step that writes it has not run") as skipped:
        run_notebook_step(evidence, case, run, "06_evidence")
    assert "\n" not in str(skipped.value) and "run the numbered notebooks in order" in str(skipped.value)


def test_a_step_run_again_discards_what_later_steps_wrote(tmp_path: Path) -> None:
    run = RunFolder(tmp_path / "run")
    for rel, step in (("a/00.json", "00_case"), ("a/03.json", "03_stylometry"), ("a/06.json", "06_evidence")):
        run.write_json(rel, {"step": step}, step=step)
    (tmp_path / "run" / "notebooks").mkdir()
    (tmp_path / "run" / "notebooks" / "x.ipynb").write_text("{}", encoding="utf-8")
    manifest = run.manifest()
    manifest.record_artifact(tmp_path / "run" / "notebooks" / "x.ipynb", "run")  # not a numbered step
    for step in ("00_case", "03_stylometry", "06_evidence"):
        manifest.record_step(step, "t0", "t1")
    manifest.save()
    assert run.discard_after("03_stylometry") == ["a/06.json"]
    assert not run.path("a/06.json").exists() and run.path("a/03.json").exists()
    assert sorted(run.manifest().data["artifacts"]) == ["a/00.json", "a/03.json", "notebooks/x.ipynb"]
    assert [s["step"] for s in run.manifest().data["steps"]] == ["00_case", "03_stylometry"]
    assert run.discard_after("run") == []  # only numbered steps order the data
    with pytest.raises(ForensicsError, match="no a/06.json in the run folder"):
        run.read_json("a/06.json")
