"""verify_run: re-hash inputs and artifacts, re-execute through an injected stub, compare findings exactly."""

from __future__ import annotations

import copy
import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from forensics.custody import RunFolder, sha256_file
from forensics.errors import VerificationError
from forensics.verify import Difference, compare_findings, json_path, verify_run

#: findings.json of a real run (tests/data/make_findings_sample.py), so verify sees what step 06 writes.
FINDINGS = json.loads((Path(__file__).parent / "data" / "findings_sample.json").read_text(encoding="utf-8"))
LR = FINDINGS["teachers"][0]["log10_lr"]


@pytest.fixture
def run(tmp_path: Path) -> Path:
    """A case folder with two inputs and a run folder whose manifest records them, as step 00 does."""
    case_dir = tmp_path / "case"
    (case_dir / "exchanges").mkdir(parents=True)
    (case_dir / "case.yaml").write_text("case: demo\n")
    inputs = []
    for name, role in (("s", "suspect"), ("t1", "teacher")):
        path = case_dir / "exchanges" / f"{name}.jsonl"
        path.write_text('{"prompt": "p", "response": "r"}\n')
        inputs.append({"name": name, "role": role, "path": f"exchanges/{name}.jsonl", "abs_path": str(path),
                       "sha256": sha256_file(path), "bytes": path.stat().st_size})
    folder = RunFolder(tmp_path / "run")
    manifest = folder.manifest()
    case_file = case_dir / "case.yaml"
    manifest.set("case_file", {"path": str(case_file), "sha256": sha256_file(case_file)})
    manifest.set("inputs", inputs)
    manifest.save()
    folder.write_json("findings.json", FINDINGS, step="06_evidence")
    return folder.root


def stub(edit: Callable[[dict[str, Any]], None] | None = None, calls: list[Path] | None = None
         ) -> Callable[[Path, Path], None]:
    """A re-execution that writes the recorded findings again, optionally edited."""
    def rerun(case_file: Path, out_dir: Path) -> None:
        if calls is not None:
            calls.append(case_file)
        findings = copy.deepcopy(FINDINGS)
        if edit:
            edit(findings)
        (out_dir / "findings.json").write_text(json.dumps(findings))
    return rerun


def test_untouched_run_verifies(run: Path) -> None:
    calls: list[Path] = []
    result = verify_run(run, stub(calls=calls))
    assert result.ok, result.lines()
    assert calls == [run.parent / "case" / "case.yaml"]  # the recorded case file is what gets re-executed
    assert result.lines()[-1].startswith("verified:") and "2 inputs" in result.lines()[-1]


def test_one_changed_input_byte_names_the_file_and_both_hashes(run: Path) -> None:
    path = run.parent / "case" / "exchanges" / "t1.jsonl"
    expected = sha256_file(path)
    data = bytearray(path.read_bytes())
    data[3] ^= 1
    path.write_bytes(bytes(data))
    result = verify_run(run, stub())
    assert not result.ok
    [changed] = result.changed_inputs
    line = changed.line()
    assert "t1.jsonl" in line and expected in line and sha256_file(path) in line
    assert "input t1 (teacher)" in line
    assert result.lines()[-1].startswith("NOT verified:")


def test_missing_input_is_reported_with_where_it_was_looked_for(run: Path) -> None:
    (run.parent / "case" / "exchanges" / "s.jsonl").unlink()
    result = verify_run(run, stub())
    [missing] = result.changed_inputs
    assert missing.actual is None and "is missing" in missing.line() and "s.jsonl" in missing.line()


def test_edited_finding_names_the_field_and_both_values(run: Path) -> None:
    drifted = LR + 2e-16 * max(abs(LR), 1.0)  # the next representable float or so: exact means exact
    assert drifted != LR
    result = verify_run(run, stub(lambda f: f["teachers"][0].update(log10_lr=drifted)))
    assert not result.ok
    assert [d.path for d in result.differences] == ["teachers[0].log10_lr"]
    line = result.differences[0].line()
    assert "teachers[0].log10_lr" in line and repr(LR) in line and repr(drifted) in line


def test_timestamps_and_platform_are_ignored(run: Path) -> None:
    def edit(f: dict[str, Any]) -> None:
        f["generated"] = "2030-01-01T00:00:00+00:00"
        f["environment"]["platform"] = "Darwin"
        f["environment"]["embedding_seconds"] = 12.0
        f["teachers"][0]["evidence"]["embedding"]["timestamp"] = "now"
    assert verify_run(run, stub(edit)).ok


def test_edited_findings_artifact_in_the_run_folder_is_caught(run: Path) -> None:
    tampered = copy.deepcopy(FINDINGS)
    tampered["teachers"][0]["log10_lr"] = 4.0
    (run / "findings.json").write_text(json.dumps(tampered))
    result = verify_run(run, stub())
    assert [c.path for c in result.changed_artifacts] == ["findings.json"]
    assert [d.path for d in result.differences] == ["teachers[0].log10_lr"]


def test_recorded_findings_off_the_contract_are_reported(run: Path) -> None:
    broken = copy.deepcopy(FINDINGS)
    broken["conclusion"]["outcome"] = "guilty"
    RunFolder(run).write_json("findings.json", broken, step="06_evidence")
    result = verify_run(run, stub(lambda f: f["conclusion"].update(outcome="guilty")))
    assert not result.ok and not result.differences
    assert any("do not follow the findings contract" in e and "conclusion.outcome" in e for e in result.errors)


def test_failed_rerun_is_a_result_not_a_crash(run: Path) -> None:
    def rerun(case_file: Path, out_dir: Path) -> None:
        raise RuntimeError("notebook 03 failed\nlong traceback")
    result = verify_run(run, rerun)
    assert not result.ok
    assert result.errors == ["re-execution failed: RuntimeError: notebook 03 failed"]


def test_rerun_into_a_kept_workdir(run: Path, tmp_path: Path) -> None:
    assert verify_run(run, stub(), workdir=tmp_path / "keep").ok
    assert (tmp_path / "keep" / "rerun" / "findings.json").is_file()
    with pytest.raises(VerificationError):
        verify_run(run, stub(), workdir=tmp_path / "keep")


def test_a_folder_without_manifest_is_refused(tmp_path: Path) -> None:
    with pytest.raises(VerificationError, match="manifest.json not found"):
        verify_run(tmp_path, stub())


def test_missing_case_file_means_no_rerun(run: Path) -> None:
    shutil.move(run.parent / "case" / "case.yaml", run.parent / "case.yaml.moved")
    result = verify_run(run, stub())
    assert not result.ok and not result.rerun_done
    assert any("case file" in line and "missing" in line for line in result.lines())


def test_compare_findings_is_exact_and_typed() -> None:
    a = {"x": 0.1 + 0.2, "flag": True, "n": 1, "list": [1, 2, 3], "nan": math.nan, "odd key": {"é": 1},
         "only_a": 1}
    b = {"x": 0.3, "flag": 1, "n": 1.0, "list": [1, 2], "nan": math.nan, "odd key": {"é": 2}, "only_b": None}
    diffs = {d.path: d for d in compare_findings(a, b)}
    assert set(diffs) == {"x", "flag", "list[2]", '["odd key"]["\\u00e9"]', "only_a", "only_b"}
    assert diffs["flag"].kind == "type" and diffs["list[2]"].kind == "missing"
    assert diffs["only_a"].kind == "missing" and diffs["only_b"].kind == "added"


def test_lines_are_terminal_safe() -> None:
    line = Difference("teachers[0].name", "t\x1b[31m", "t\u202e").line()
    assert "\x1b" not in line and "\u202e" not in line and "\\u001b" in line


def test_a_changed_input_named_with_hostile_characters_is_reported_visibly(tmp_path: Path) -> None:
    """A manifest's names and paths are input too: a bidi override or an escape sequence in them is shown as
    [U+XXXX] in verify's one-line report, not sent to the terminal."""
    from forensics.verify import ChangedFile

    line = ChangedFile("input m", "x/\x1b[2Jfile\u202e.jsonl", "0" * 64, None).line()
    assert "\u202e" not in line and "\x1b" not in line
    assert "[U+202E]" in line and "[U+001B]" in line


def test_json_path() -> None:
    assert json_path(("teachers", 0, "evidence", "embedding", "z")) == "teachers[0].evidence.embedding.z"
    assert json_path(()) == "(whole file)"


def test_compare_into_a_closed_pipe_stops_quietly(tmp_path: Path) -> None:
    """`forensics compare a b | head -1`: the reader goes away after one line; no traceback, exit 141."""
    import subprocess
    import sys

    changed = copy.deepcopy(FINDINGS)
    for i, teacher in enumerate(changed["teachers"]):
        teacher["log10_lr"] = i + 10.0
    changed["limitations"] = [f"limitation {i}" for i in range(5000)]  # more lines than a pipe buffer holds
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(FINDINGS), encoding="utf-8")
    b.write_text(json.dumps(changed), encoding="utf-8")
    proc = subprocess.Popen([sys.executable, "-m", "forensics.cli", "compare", str(a), str(b)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline().startswith(b"finding differs")
    proc.stdout.close()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 141 and b"Traceback" not in err, err.decode(errors="replace")
