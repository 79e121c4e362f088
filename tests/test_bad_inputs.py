"""Every case of the generated bad-input corpus produces exactly its expected error or warnings.

The corpus (tests/bad_inputs/make_bad_inputs.py) is generated once per session into a temporary folder;
each case is one test, so a regression names the input that slipped through.
"""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from forensics import errors
from forensics.case import load_case
from forensics.exchanges import REJECTS, join_case, read_exchanges


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory,
           bad_input_generator: ModuleType) -> tuple[Path, dict[str, dict[str, Any]]]:
    root = tmp_path_factory.mktemp("bad_inputs")
    return root, bad_input_generator.build(root)


def _run(kind: str, target: Path) -> Any:
    if kind == "read":
        return read_exchanges(target, max_response_chars=20000)
    if kind == "case":
        return load_case(target)
    return join_case(load_case(target))


def _dotted(data: dict[str, Any], key: str) -> Any:
    for part in key.split("."):
        data = data[part]
    return data


def _check_ok(result: Any, expected: dict[str, Any]) -> None:
    kind = expected["kind"]
    if kind == "read":
        assert result.warning_counts() == expected["warnings"]
        assert len(result.frame) == expected["rows"]
    elif kind == "case":
        assert [w.split(":")[0] for w in result.warnings] == expected["case_warnings"]
    else:
        totals: Counter[str] = Counter()
        for warning in result.coverage["warnings"]:
            totals[warning["code"]] += warning["count"]
        assert dict(totals) == expected["warnings"]
        for key, value in expected.get("coverage", {}).items():
            assert _dotted(result.coverage, key) == value, key


def test_bad_input(bad_input_name: str, corpus: tuple[Path, dict[str, dict[str, Any]]]) -> None:
    root, cases = corpus
    expected = cases[bad_input_name]
    target = root / expected["target"]
    if expected["error"] is None:
        _check_ok(_run(expected["kind"], target), expected)
        return
    with pytest.raises(getattr(errors, expected["error"])) as info:
        _run(expected["kind"], target)
    message = str(info.value)
    assert "\n" not in message and "(fix: " in message  # one actionable line
    for part in expected["contains"]:
        assert part in message, f"{part!r} not in {message!r}"


def test_corpus_is_large_and_written_to_disk(corpus: tuple[Path, dict[str, dict[str, Any]]]) -> None:
    root, cases = corpus
    assert len(cases) >= 60
    assert (root / "expected.json").is_file()
    errors_expected = sum(1 for c in cases.values() if c["error"])
    assert errors_expected >= 45 and len(cases) - errors_expected >= 10


def test_generator_runs_as_a_script(tmp_path: Path, bad_input_generator: ModuleType) -> None:
    """The documented command line works (for people building their own fixtures)."""
    assert bad_input_generator.main([str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "expected.json").is_file()
    shutil.rmtree(tmp_path / "out")


def test_every_warning_code_is_in_the_rejects_table(corpus: tuple[Path, dict[str, dict[str, Any]]]) -> None:
    """The README quotes REJECTS: a warning the code can emit but the table omits would go unexplained."""
    _, cases = corpus
    table = " ".join(outcome for _, outcome, _ in REJECTS)
    codes = {code for c in cases.values() for code in c.get("warnings", {})}
    codes |= {w for c in cases.values() for w in c.get("case_warnings", [])}
    assert codes, "the corpus exercises warnings"
    for code in codes:
        assert f"warning: {code}" in table, code


def test_error_lines_show_controls_but_keep_the_joiners_of_real_names() -> None:
    """Escape sequences and bidi overrides from hostile input are shown, not obeyed, by a terminal; a Persian
    file name's ZWNJ and an emoji's ZWJ are part of the text and stay."""
    line = errors.InputError("column \x1b[31mred\u202e", path="/data/\u067e\u0627\u0633\u062e\u200c\u0647\u0627.jsonl",
                             line=3, fix="rename \U0001F468\u200d\U0001F469").one_line()
    assert "[U+001B][31mred[U+202E]" in line
    assert "\u200c" in line and "\u200d" in line and "\x1b" not in line and "\u202e" not in line
