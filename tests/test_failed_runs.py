"""Every failing case of the bad-input corpus, run through ``forensics run``, leaves no output behind.

The reader-level tests (test_bad_inputs.py) check each error's message; here the same inputs go through
the whole command (in process, so 80-odd failures take seconds) and the run folder must not exist
afterwards: no findings.json, no report, no half-written staging folder that could pass for a run.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from forensics import errors
from forensics.cli import main
from forensics.pipeline import run_case


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory,
           bad_input_generator: ModuleType) -> tuple[Path, dict[str, dict[str, Any]]]:
    root = tmp_path_factory.mktemp("failed_runs")
    return root, bad_input_generator.build(root)


def _good_jsonl(path: Path, n: int = 40) -> None:
    rows = [{"prompt": f"Question number {i}?", "response": f"Answer {i}."} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def _case_around(bad_file: Path) -> Path:
    """A case whose suspect is the bad exchange file; teacher and references are small valid files."""
    folder = bad_file.parent
    _good_jsonl(folder / "teacher_ok.jsonl")
    _good_jsonl(folder / "reference_ok.jsonl")
    _good_jsonl(folder / "reference2_ok.jsonl")
    case = folder / "wrapped_case.yaml"
    case.write_text(
        "case: wrapped\n"
        f"suspect: {{name: suspect, path: {json.dumps(bad_file.name)}}}\n"
        "teachers: [{name: teacher, path: teacher_ok.jsonl}]\n"
        "references: [{name: reference, path: reference_ok.jsonl}, {name: reference2, path: reference2_ok.jsonl}]\n",
        encoding="utf-8")
    return case


def _failing(cases: dict[str, dict[str, Any]]) -> list[str]:
    return sorted(name for name, c in cases.items() if c["error"])


def test_every_failing_input_leaves_no_run_folder(corpus: tuple[Path, dict[str, dict[str, Any]]],
                                                   tmp_path: Path) -> None:
    root, cases = corpus
    failing = _failing(cases)
    assert len(failing) >= 45
    for name in failing:
        expected = cases[name]
        target = root / expected["target"]
        case_file = _case_around(target) if expected["kind"] == "read" else target
        out = tmp_path / name / "run"
        with pytest.raises(errors.ForensicsError) as info:
            run_case(case_file, out, quiet=True)
        if expected["kind"] == "read":  # the case loader may catch it first (e.g. an unsupported extension)
            assert target.name in str(info.value), (name, info.value)
        else:
            assert isinstance(info.value, getattr(errors, expected["error"])), (name, info.value)
        assert not out.exists(), name
        assert not out.with_name("run.partial").exists(), name


def test_the_command_prints_one_line_and_exits_non_zero(corpus: tuple[Path, dict[str, dict[str, Any]]],
                                                        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root, cases = corpus
    name = "jsonl_malformed_line"
    case_file = _case_around(root / cases[name]["target"])
    code = main(["run", str(case_file), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and err.startswith("forensics: error:")
    assert "bad.jsonl:3:" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("where", ["case folder", "a file", "folder with other files", "stale .partial"])
def test_a_run_never_replaces_what_it_did_not_write(where: str, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """A run replaces its output folder in one rename; pointed at anything but an earlier run's folder it
    must stop before it deletes (or embeds) anything, and say why in one line."""
    folder = tmp_path / "case"
    folder.mkdir()
    bad = folder / "suspect.jsonl"
    _good_jsonl(bad)
    case_file = _case_around(bad)
    out = {"case folder": folder, "a file": bad, "folder with other files": tmp_path / "mine",
           "stale .partial": tmp_path / "run"}[where]
    if where == "folder with other files":
        out.mkdir()
        (out / "notes.txt").write_text("my notes", encoding="utf-8")
    if where == "stale .partial":
        (tmp_path / "run.partial").mkdir()
        (tmp_path / "run.partial" / "thesis.tex").write_text("keep", encoding="utf-8")
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    code = main(["run", str(case_file), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "not" in err and "Traceback" not in err, err
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_an_earlier_run_folder_may_be_replaced(tmp_path: Path) -> None:
    from forensics.pipeline import check_replaceable

    run = tmp_path / "run"
    (run / "notebooks").mkdir(parents=True)
    (run / "findings.json").write_text("{}", encoding="utf-8")
    (run / ".manifest.json.x1.tmp").write_text("", encoding="utf-8")  # an interrupted atomic write
    (run / ".DS_Store").write_bytes(b"\0")  # the folder was looked at in a file browser
    check_replaceable(run)
    check_replaceable(tmp_path / "absent")
