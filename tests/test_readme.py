"""The README documents what the tool rejects; the table must not drift from the code that decides it."""

from pathlib import Path

from forensics.exchanges import REJECTS

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_rejects_table_lists_every_condition() -> None:
    text = README.read_text(encoding="utf-8")
    missing = [condition for condition, _, _ in REJECTS if f"| {condition} |" not in text]
    assert not missing, f"README lacks rows for: {missing}"


def test_readme_names_the_two_commands() -> None:
    text = README.read_text(encoding="utf-8")
    assert "make demo" in text and "make test" in text
