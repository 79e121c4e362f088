"""Failing, killed and corrupted runs: fail in one line, lose nothing, trust nothing torn (issue 6).

An evidentiary run that dies must not leave anything that looks like a result, and the work it finished
(the slow embeddings) must not be lost or, worse, trusted when torn. These tests drive the real command
line (``python -m forensics.cli run``) in subprocesses on a 4-source, 40-prompt case of real demo outputs:

- bad input: exit code 2, exactly one ``forensics: error: file:line: ...`` line, no traceback, no
  findings or report in ``--out`` (a previous complete run there is left untouched);
- SIGKILL / SIGINT during embedding, then the same command again: it embeds only what is missing and
  completes, its store byte for byte an uninterrupted one's;
- a flipped byte and a truncated cache entry: detected, deleted, recomputed to the same bytes (in
  process, through the run's own preparation);

and, in process, that every artifact write of ``RunFolder`` is atomic (a write failing half-way leaves
the previous file and its manifest hash intact, and no temporary file behind), as is the promotion of a
staged run folder.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from runlog import embedding_stats

from forensics import custody, pipeline
from forensics.case import load_case
from forensics.custody import RunFolder
from forensics.errors import ForensicsError
from forensics.store import _HEADER, DB_NAME

HEADER_BYTES = _HEADER.size
OUTPUTS = ("findings.json", "report.html", "report.pdf")
RUN_TIMEOUT_S = 300
#: Run the real CLI with embedding groups of one batch (32 chunks) instead of 16, so a 40-prompt case
#: writes its cache in several steps, as a 20,000-prompt case does: a kill can then land between two
#: groups, with part of the cache written. Nothing else changes.
SMALL_GROUPS = ("import sys; import forensics.embeddings as e; e.GROUP_BATCHES = 1; "
                "from forensics.cli import main; sys.exit(main(sys.argv[1:]))")


# --------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------

def cli_env(cache: Path) -> dict[str, str]:
    """The environment of every run: this test's cache, offline, deterministic hashing."""
    return {**os.environ, "FORENSICS_CACHE": str(cache), "PYTHONHASHSEED": "0", "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def run_cli(case_file: Path, out: Path, cache: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``forensics run CASE --out OUT`` to completion (or failure), capturing its output."""
    cmd = [sys.executable, "-m", "forensics.cli", *args, "run", str(case_file), "--out", str(out)]
    return subprocess.run(cmd, capture_output=True, text=True, env=cli_env(cache), cwd=out.parent,
                          timeout=RUN_TIMEOUT_S, check=False)


def cache_rows(cache: Path) -> dict[tuple[str, str], bytes]:
    """Committed entries of the packed store, ``(fingerprint, text hash) -> entry bytes`` (an uncommitted
    transaction of a killed writer is not an entry)."""
    db = cache / DB_NAME
    if not db.exists():
        return {}
    with contextlib.closing(sqlite3.connect(db, timeout=60)) as conn:
        try:
            rows = conn.execute("SELECT n.fingerprint, v.text_hash, v.entry FROM vectors v "
                                "JOIN namespaces n ON n.id = v.ns").fetchall()
        except sqlite3.OperationalError:  # the writer has created the file, not yet its tables
            return {}
    return {(fp, h): bytes(entry) for fp, h, entry in rows}


def cache_entries(cache: Path) -> list[tuple[str, str]]:
    """The keys of the committed entries, sorted."""
    return sorted(cache_rows(cache))


def damage_entry(cache: Path, entry: tuple[str, str], data: bytes) -> None:
    """Overwrite one stored entry's bytes behind the store's back."""
    with contextlib.closing(sqlite3.connect(cache / DB_NAME, timeout=60)) as conn, conn:
        conn.execute("UPDATE vectors SET entry = ? WHERE text_hash = ? AND ns = "
                     "(SELECT id FROM namespaces WHERE fingerprint = ?)", (data, entry[1], entry[0]))


def assert_no_result(out: Path) -> None:
    """Nothing that looks complete: no findings or report, not in ``out`` nor in its staging folder."""
    for folder in (out, out.with_name(out.name + ".partial")):
        for name in OUTPUTS:
            assert not (folder / name).exists(), f"{folder / name} exists after a failed run"


def assert_ok(done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode == 0, f"exit {done.returncode}:\n{done.stderr[-4000:]}"
    assert "Traceback" not in done.stderr


# --------------------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def case_file(tmp_path_factory: pytest.TempPathFactory, make_small_case: Callable[..., Path]) -> Path:
    """One case for the module, so every run below analyses byte-identical inputs at the same paths."""
    return make_small_case(tmp_path_factory.mktemp("robust-case"))


@pytest.fixture(scope="module")
def reference(case_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The store an uninterrupted preparation fills from empty, in process (:func:`forensics.pipeline.prepare`,
    the step of ``forensics run`` that embeds): what every interrupted or damaged store must end up as."""
    cache = tmp_path_factory.mktemp("reference") / "cache"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FORENSICS_CACHE", str(cache))
        pipeline.prepare(load_case(case_file))
    assert cache_entries(cache)
    return cache


# --------------------------------------------------------------------------------------------------
# A failing run leaves nothing that looks complete
# --------------------------------------------------------------------------------------------------

def _break_jsonl(case_dir: Path) -> tuple[str, int]:
    path = case_dir / "exchanges" / "alpaca-7b.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[6] = lines[6][: len(lines[6]) // 2] + "\n"  # a record cut in the middle, as a torn export
    path.write_text("".join(lines), encoding="utf-8")
    return "alpaca-7b.jsonl", 7


def _break_csv(case_dir: Path) -> tuple[str, int]:
    path = case_dir / "exchanges" / "guanaco-13b.csv"
    frame = pd.read_csv(path)
    text = frame.iloc[:3].to_csv(index=False) + 'one,"two",three\n' + frame.iloc[3:].to_csv(index=False,
                                                                                           header=False)
    path.write_text(text, encoding="utf-8")
    return "guanaco-13b.csv", text.count("\n", 0, text.index('one,"two",three')) + 1


def _break_case_file(case_dir: Path) -> tuple[str, int]:
    path = case_dir / "case.yaml"
    text = path.read_text(encoding="utf-8").replace("  bootstrap: 50", "  bootstrapp: 50")
    path.write_text(text, encoding="utf-8")
    return "case.yaml", text[: text.index("bootstrapp")].count("\n") + 1


@pytest.mark.parametrize("breaker", [_break_jsonl, _break_csv, _break_case_file],
                         ids=["malformed-jsonl-line", "csv-extra-field", "case-unknown-key"])
def test_bad_input_fails_in_one_line_and_leaves_no_result(small_case: Path, tmp_path: Path,
                                                          forensics_cache: Path,
                                                          breaker: Callable[[Path], tuple[str, int]]) -> None:
    name, line = breaker(small_case.parent)
    out = tmp_path / "run"
    done = run_cli(small_case, out, forensics_cache)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("forensics: error: ")
    assert f"{name}:{line}: " in lines[0] and "(fix: " in lines[0]
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert not out.exists() and not out.with_name("run.partial").exists()


def test_failure_keeps_the_previous_complete_run(small_case: Path, tmp_path: Path,
                                                 forensics_cache: Path) -> None:
    """A failed re-run into a folder holding a complete run leaves that run byte for byte."""
    out = tmp_path / "run"
    out.mkdir()
    before = {name: f"previous {name}".encode() for name in (*OUTPUTS, "manifest.json")}
    for name, data in before.items():
        (out / name).write_bytes(data)
    _break_jsonl(small_case.parent)
    done = run_cli(small_case, out, forensics_cache)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert not out.with_name("run.partial").exists()


# --------------------------------------------------------------------------------------------------
# Interrupted runs resume from the cache and reach the same findings
# --------------------------------------------------------------------------------------------------

def kill_during_embedding(case_file: Path, out: Path, cache: Path, sig: signal.Signals) -> tuple[int, str]:
    """Start ``forensics run``, wait until it has added cache entries, send ``sig``; return the exit code
    and stderr. The run is started with a partly filled cache too, so it is signalled only once it wrote
    entries of its own."""
    before = len(cache_entries(cache))
    cmd = [sys.executable, "-c", SMALL_GROUPS, "run", str(case_file), "--out", str(out)]
    # A shell runs background jobs with SIGINT ignored, and children inherit that: restore the default so
    # the run reacts to SIGINT as it does in a terminal, however the test suite itself was started.
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=cli_env(cache), cwd=out.parent,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None and len(cache_entries(cache)) <= before:
        time.sleep(0.05)
    assert proc.poll() is None, f"the run ended before the signal:\n{proc.communicate()[1][-3000:]}"
    assert len(cache_entries(cache)) > before, "no cache entry was written in time"
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    return proc.returncode, stderr


@pytest.mark.slow
def test_run_killed_during_embedding_resumes_with_same_vectors(case_file: Path, reference: Path,
                                                                tmp_path: Path) -> None:
    """SIGKILL during embedding, then SIGINT during the resumed embedding, then a third run finishes:
    it embeds only what neither interrupted run cached, and its store holds byte for byte what an
    uninterrupted one does (so its findings are an uninterrupted run's: test_pipeline.py shows a run's
    findings are a function of its inputs and these bytes)."""
    out, cache = tmp_path / "run", tmp_path / "cache"
    code, _ = kill_during_embedding(case_file, out, cache, signal.SIGKILL)
    assert code == -signal.SIGKILL
    assert_no_result(out)
    after_kill = len(cache_entries(cache))
    code, stderr = kill_during_embedding(case_file, out, cache, signal.SIGINT)
    assert code == 130, stderr[-3000:]  # a clean, one-line exit that says how to resume
    assert stderr.strip().splitlines()[-1].startswith("forensics: interrupted; re-run the same command")
    assert "Traceback" not in stderr
    assert_no_result(out)
    kept = len(cache_entries(cache))
    assert kept > after_kill
    done = run_cli(case_file, out, cache)
    assert_ok(done)
    texts, cached, embedded = embedding_stats(done.stderr)
    assert 0 < kept < texts, "the interruptions did not land during embedding"
    assert (cached, embedded) == (kept, texts - kept)
    assert cache_rows(cache) == cache_rows(reference)


# --------------------------------------------------------------------------------------------------
# A corrupted cache is rebuilt, never trusted
# --------------------------------------------------------------------------------------------------

def test_corrupted_cache_entries_are_recomputed(case_file: Path, reference: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """A flipped bit and a truncated entry are caught by the store's checks, deleted and recomputed, and the
    store then holds byte for byte what the uninterrupted run's holds. Run in process through the run's own
    preparation (:func:`forensics.pipeline.prepare`, where ``forensics run`` embeds): the findings are a
    function of the inputs and these bytes (test_pipeline.py)."""
    cache = tmp_path / "cache"
    shutil.copytree(reference, cache)
    entries = cache_entries(cache)
    rows = cache_rows(cache)
    flipped, truncated = entries[0], entries[len(entries) // 2]
    data = bytearray(rows[flipped])
    data[len(data) // 2] ^= 0x01  # one bit of one float: a plausible vector, only the hash can tell
    damage_entry(cache, flipped, bytes(data))
    damage_entry(cache, truncated, rows[truncated][:-20])
    monkeypatch.setenv("FORENSICS_CACHE", str(cache))
    with caplog.at_level("WARNING"):
        pipeline.prepare(load_case(case_file))
    texts, cached, embedded = embedding_stats(capsys.readouterr().err)
    assert (cached, embedded) == (texts - 2, 2)
    rejected = [r.getMessage() for r in caplog.records if "is invalid" in r.getMessage()]
    assert len(rejected) == 2, rejected
    assert any(flipped[1] in line and "checksum" in line for line in rejected)
    assert any(truncated[1] in line and "size" in line for line in rejected)
    assert cache_rows(cache) == rows == cache_rows(reference)  # rebuilt in place, the same bytes


# --------------------------------------------------------------------------------------------------
# Every artifact write is atomic
# --------------------------------------------------------------------------------------------------

class DiskFull(OSError):
    """Raised by the patched writers half-way through a write."""


def _half_then_fail(path: Any) -> None:
    Path(path).write_bytes(b"PAR1 half of a file")
    raise DiskFull("no space left on device (simulated)")


def _write(run: RunFolder, kind: str, version: int) -> Path:
    """Write artifact ``kind`` with content that depends on ``version``; return its path."""
    if kind == "json":
        return run.write_json("artifacts/a.json", {"version": version}, step="t")
    if kind == "text":
        return run.write_text("report.html", f"<p>version {version}</p>", step="t")
    if kind == "parquet":
        return run.write_parquet("artifacts/a.parquet", pd.DataFrame({"v": [version] * 3}), step="t")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, version])
    try:
        return run.write_figure("figures/f", fig, step="t")[0]
    finally:
        plt.close(fig)


def _break_writer(monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    """Make the next write of ``kind`` fail after part of the bytes reached the temporary file."""
    if kind == "parquet":
        monkeypatch.setattr(pd.DataFrame, "to_parquet", lambda self, path, **_: _half_then_fail(path))
    elif kind == "figure":
        import matplotlib.figure

        monkeypatch.setattr(matplotlib.figure.Figure, "savefig",
                            lambda self, path, **_: _half_then_fail(path))
    else:
        real = Path.write_bytes

        def torn(self: Path, data: bytes) -> int:
            real(self, data[: len(data) // 2])
            raise DiskFull("no space left on device (simulated)")

        monkeypatch.setattr(Path, "write_bytes", torn)


@pytest.mark.parametrize("kind", ["json", "text", "parquet", "figure"])
def test_failed_write_keeps_previous_artifact_and_leaves_no_temp(tmp_path: Path, kind: str,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    run = RunFolder(tmp_path / "run")
    target = _write(run, kind, 1)
    before = target.read_bytes()
    rel = target.relative_to(run.root).as_posix()
    recorded = run.manifest().artifact_sha256(rel)
    with monkeypatch.context() as patch:
        _break_writer(patch, kind)
        with pytest.raises(DiskFull):
            _write(run, kind, 2)
    assert target.read_bytes() == before
    assert run.manifest().artifact_sha256(rel) == recorded
    run.check(rel)  # the manifest still vouches for the file on disk
    leftovers = [p for p in run.root.rglob("*") if p.name.endswith(".tmp")]
    assert not leftovers, leftovers
    assert _write(run, kind, 3).read_bytes() != before  # and the next write goes through


def test_failed_rename_keeps_previous_manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The manifest itself is replaced atomically: a failed rename leaves the old one whole."""
    run = RunFolder(tmp_path / "run")
    run.write_json("artifacts/a.json", {"v": 1}, step="t")
    before = (run.root / custody.MANIFEST_NAME).read_bytes()

    def no_rename(src: Any, dst: Any) -> None:
        raise DiskFull("rename failed (simulated)")

    with monkeypatch.context() as patch:
        patch.setattr(custody.os, "replace", no_rename)
        with pytest.raises(DiskFull):
            run.write_json("artifacts/b.json", {"v": 2}, step="t")
    assert (run.root / custody.MANIFEST_NAME).read_bytes() == before
    assert not (run.root / "artifacts" / "b.json").exists()
    assert not [p for p in run.root.rglob("*") if p.name.endswith(".tmp")]


# --------------------------------------------------------------------------------------------------
# The staged run folder is promoted only when complete
# --------------------------------------------------------------------------------------------------

def _fake_notebooks(written: tuple[str, ...], fail: bool) -> Callable[..., None]:
    """Stand-in for the notebooks: write some outputs into the staging folder, then maybe fail."""

    def execute(case_file: Path, run_dir: Path, kernel: str, on_step: Any = None) -> None:
        for name in written:  # the manifest as the steps write it (JSON), the rest as stand-in text
            (run_dir / name).write_text("{}" if name == "manifest.json" else f"new {name}", encoding="utf-8")
        if fail:
            raise ForensicsError("notebook 05_clusters.ipynb failed: simulated", path=run_dir)

    return execute


@pytest.mark.parametrize(("written", "fail"), [
    (("manifest.json", "findings.json"), True),              # a notebook failed after 06 wrote findings
    (("manifest.json", "findings.json", "report.html"), False),  # finished without report.pdf
], ids=["notebook-failed", "output-missing"])
def test_incomplete_run_is_never_promoted(small_case: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          written: tuple[str, ...], fail: bool) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "findings.json").write_text("previous", encoding="utf-8")
    monkeypatch.setattr(pipeline, "prepare", lambda *args, **kwargs: None)
    monkeypatch.setattr(pipeline, "ensure_kernel", lambda: "forensics")
    monkeypatch.setattr(pipeline, "execute_notebooks", _fake_notebooks(written, fail))
    with pytest.raises(ForensicsError):
        pipeline.run_case(small_case, out, quiet=True)
    assert (out / "findings.json").read_text(encoding="utf-8") == "previous"
    assert sorted(p.name for p in out.iterdir()) == ["findings.json"]


def test_complete_run_replaces_the_previous_one(small_case: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "run"
    (out / "figures").mkdir(parents=True)
    (out / "figures" / "stale.png").write_text("from the previous run", encoding="utf-8")
    monkeypatch.setattr(pipeline, "prepare", lambda *args, **kwargs: None)
    monkeypatch.setattr(pipeline, "ensure_kernel", lambda: "forensics")
    monkeypatch.setattr(pipeline, "execute_notebooks", _fake_notebooks(pipeline.REQUIRED_OUTPUTS, False))
    assert pipeline.run_case(small_case, out, quiet=True) == out.resolve()
    assert sorted(p.name for p in out.iterdir()) == sorted(pipeline.REQUIRED_OUTPUTS)
    assert not out.with_name("run.partial").exists() and not out.with_name("run.old").exists()
