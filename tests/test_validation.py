"""forensics.validation: labels, lineages, leave-one-lineage-out calibration, outcomes and their summary."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forensics.calibration import Calibration
from forensics.errors import InputError
from forensics.validation import (
    case_outcomes,
    leave_one_lineage_out,
    lineage_of,
    load_labels,
    summarise,
    teacher_matches,
)

# --------------------------------------------------------------------------------------------------
# Which documented teacher names which teacher
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("label", "name", "expected"), [
    ("x-4", "x-4-0314", True),        # a version suffix extends the label
    ("x-4", "x-4", True),
    ("x-4", "x_4", False),
    ("x-4", "x-4_0314", True),        # an underscore suffix is a version too
    ("x_4", "x_4_0314", True),
    ("x-4", "x-40", False),           # another model, not a version of x-4
    ("x-4", "x-3.5", False),
    ("x-4", "x-3.5-turbo", False),
    ("x-3.5-turbo", "x-3.5-turbo-0301", True),
    ("x-3.5-turbo", "x-3.5", False),  # the label is more specific than the name
    ("X-4", "x-4-0314", True),        # case-insensitive
    ("x-4", "X-4-0314", True),
    (" x-4 ", "x-4-0314", True),
])
def test_teacher_matches_versions(label: str, name: str, expected: bool) -> None:
    assert teacher_matches(label, name) is expected


@pytest.mark.parametrize("name", ["a-1", "a-1-0613", "b-2", "b-2-0314"])
def test_mixed_label_matches_each_of_its_teachers(name: str) -> None:
    assert teacher_matches("mixed: a-1 and b-2", name)


@pytest.mark.parametrize("label", ["a-1, b-2", "a-1; b-2", "a-1 or b-2", "a-1 and b-2"])
def test_label_separators(label: str) -> None:
    assert teacher_matches(label, "a-1-x") and teacher_matches(label, "b-2-y")
    assert not teacher_matches(label, "c-3")


@pytest.mark.parametrize("name", ["a-10", "b-20", "c-3", "a", "1", "b"])
def test_mixed_label_matches_nothing_else(name: str) -> None:
    assert not teacher_matches("mixed: a-1 and b-2", name)


@pytest.mark.parametrize("name", ["x-4", "x-4-0314", "none", "human-written data", "human", "data"])
def test_none_label_matches_nothing(name: str) -> None:
    assert not teacher_matches("none (human-written data)", name)


def test_empty_label_matches_nothing() -> None:
    assert not teacher_matches("", "x-4")


# --------------------------------------------------------------------------------------------------
# Lineages
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("file", "lineage", "expected"), [
    ("llama-2-13b-chat-hf.json", "", "llama"),
    ("Vicuna-13b-v1.5.json", "", "vicuna"),
    ("gpt4_0314.json", "", "gpt4"),
    ("text_davinci_003.json", "", "text"),
    ("alpaca.7b.jsonl", "", "alpaca"),
    ("sub/dir/guanaco-7b.json", "", "guanaco"),       # the file's name, not its folder
    ("vicuna-13b-v1.5.json", "Llama2-Family ", "llama2-family"),  # the column wins (trimmed, lower case)
    ("anything.json", "   ", "anything"),            # a blank column falls back to the file name
])
def test_lineage_of(file: str, lineage: str, expected: str) -> None:
    assert lineage_of(pd.Series({"file": file, "lineage": lineage})) == expected


def test_lineage_of_without_the_column() -> None:
    assert lineage_of(pd.Series({"file": "zephyr-7b-beta.json"})) == "zephyr"
    assert lineage_of(pd.Series({"file": "zephyr-7b-beta.json", "lineage": float("nan")})) == "zephyr"


# --------------------------------------------------------------------------------------------------
# Loading the labels
# --------------------------------------------------------------------------------------------------

LABELS_CSV = """file,model,role,trained_on_outputs_of,lineage
t_one.json,Vendor t-1-0314,teacher,,
t-two.json,t-2,teacher,,
stud-a.json,stud-a,student,t-1,
other-b.json,,control,none (human-written data),studs
ref-c.json,Ref C,reference,,
"""


def test_load_labels_derives_name_lineage_and_teacher_name(tmp_path: Path) -> None:
    path = tmp_path / "LABELS.csv"
    path.write_text(LABELS_CSV)
    labels = load_labels(path).set_index("name")
    assert list(labels.index) == sorted(labels.index)  # sorted by name
    assert "t-1-0314" in labels.loc["t_one", "teacher_name"].split("|")  # the model column's last word
    assert "t-2" in labels.loc["t-two", "teacher_name"].split("|")
    assert labels.loc["other-b", "teacher_name"] == "other-b"  # empty model: the file's stem
    assert labels.loc["stud-a", "lineage"] == "stud"
    assert labels.loc["other-b", "lineage"] == "studs"  # the column wins
    assert labels.loc["t_one", "lineage"] == "t"
    assert labels.loc["other-b", "trained_on_outputs_of"] == "none (human-written data)"


@pytest.mark.parametrize("column", ["file", "role", "trained_on_outputs_of"])
def test_load_labels_names_the_file_and_the_missing_column(tmp_path: Path, column: str) -> None:
    frame = pd.read_csv(pd.io.common.StringIO(LABELS_CSV), dtype=str, keep_default_na=False)
    path = tmp_path / "my labels.csv"
    frame.drop(columns=[column]).to_csv(path, index=False)
    with pytest.raises(InputError) as caught:
        load_labels(path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}:1: ")
    assert f"missing column(s) {column}" in message
    assert "fix:" in message


def test_load_labels_lists_every_missing_column(tmp_path: Path) -> None:
    path = tmp_path / "LABELS.csv"
    path.write_text("file,model\na.json,a\n")
    with pytest.raises(InputError, match="missing column\\(s\\) role, trained_on_outputs_of"):
        load_labels(path)


def test_load_labels_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "LABELS.csv"
    with pytest.raises(InputError) as caught:
        load_labels(path)
    assert str(path) in str(caught.value)
    assert "not found" in str(caught.value)


# --------------------------------------------------------------------------------------------------
# Leave one lineage out
# --------------------------------------------------------------------------------------------------

def synthetic_pairs() -> pd.DataFrame:
    """Four lineages of (suspect, teacher) pairs; lineage "wild" has extreme scores of both kinds.

    Hp pairs score around +2, Hd pairs around -1, except "wild", whose Hp pair scores 40 and whose Hd
    pairs score -30: a calibration that saw "wild" would be far steeper than one that did not.
    """
    rows = []
    spec = {"alpha": [(2.1, 1), (-0.8, 0), (-1.3, 0)],
            "beta": [(1.7, 1), (0.4, 0), (-1.1, 0)],
            "gamma": [(2.6, 1), (-1.6, 0), (0.9, 1), (-0.2, 0)],
            "wild": [(40.0, 1), (-30.0, 0), (-25.0, 0)]}
    for lineage, pairs in spec.items():
        for i, (score, hp) in enumerate(pairs):
            rows.append({"suspect": f"{lineage}-{i // 2}", "teacher": f"t{i % 2}", "lineage": lineage,
                         "role": "student" if hp else "control", "hp": hp, "score": score,
                         "beats_share": 1.0 if hp else 0.0})
    return pd.DataFrame(rows)


def test_each_lineage_gets_lrs_from_a_calibration_fitted_without_it() -> None:
    pairs = synthetic_pairs()
    out = leave_one_lineage_out(pairs, (-1.0, 1.0))
    for lineage in pairs["lineage"].unique():
        own = pairs["lineage"] == lineage
        others = pairs[~own]
        expected = Calibration.fit(others["score"].to_numpy(), others["hp"].to_numpy()).transform(
            pairs.loc[own, "score"].to_numpy())
        np.testing.assert_allclose(out.loc[own, "log10_lr"].to_numpy(), expected, rtol=1e-12)


def test_the_held_out_lineage_does_not_shape_its_own_calibration() -> None:
    """The check above can fail: a calibration fitted on every pair gives "wild" other LRs."""
    pairs = synthetic_pairs()
    out = leave_one_lineage_out(pairs, (-1.0, 1.0))
    wild = pairs["lineage"] == "wild"
    everything = Calibration.fit(pairs["score"].to_numpy(), pairs["hp"].to_numpy())
    assert not np.allclose(out.loc[wild, "log10_lr"], everything.transform(pairs.loc[wild, "score"]))


def test_changing_a_lineages_scores_changes_the_others_calibrations_never_its_own() -> None:
    """Shrinking "wild"'s scores moves its LRs exactly along the (unchanged) calibration of the others,
    while every other lineage, whose calibration includes "wild", gets different LRs."""
    pairs = synthetic_pairs()
    changed = pairs.copy()
    wild = changed["lineage"] == "wild"
    changed.loc[wild, "score"] = changed.loc[wild, "score"] / 20
    before = leave_one_lineage_out(pairs, (-1.0, 1.0))
    after = leave_one_lineage_out(changed, (-1.0, 1.0))
    others = pairs[~wild]
    cal = Calibration.fit(others["score"].to_numpy(), others["hp"].to_numpy())
    np.testing.assert_allclose(after.loc[wild, "log10_lr"], cal.transform(changed.loc[wild, "score"]))
    # and the other lineages, whose calibrations include "wild", do change
    assert not np.allclose(before.loc[~wild, "log10_lr"], after.loc[~wild, "log10_lr"])


def test_leave_one_lineage_out_adds_supports_and_beats() -> None:
    out = leave_one_lineage_out(synthetic_pairs(), (-1.0, 1.0))
    for row in out.itertuples():
        expected = "Hp" if row.log10_lr > 1.0 else "Hd" if row.log10_lr < -1.0 else "inconclusive"
        assert row.supports == expected
    assert list(out["beats"]) == [bool(s >= 0.95) for s in out["beats_share"]]
    assert len(out) == len(synthetic_pairs())


def test_leave_one_lineage_out_does_not_modify_its_input() -> None:
    pairs = synthetic_pairs()
    before = pairs.copy()
    leave_one_lineage_out(pairs, (-1.0, 1.0))
    pd.testing.assert_frame_equal(pairs, before)


# --------------------------------------------------------------------------------------------------
# Case outcomes and the summary
# --------------------------------------------------------------------------------------------------

def outcome_pairs() -> pd.DataFrame:
    """Four cases, two teachers (t-a, t-b), LRs already calibrated:

    - s-good (student of t-a): t-a supported and beating t-b -> attributed to t-a, correct
    - s-miss (student of t-b): both inconclusive -> nothing attributed, wrong
    - c-clean (control): both Hd -> nothing attributed, correct
    - c-false (control): t-a supported and beating -> attributed to t-a, a false attribution
    """
    rows = [
        ("s-good", "student", "sg", "t-a", 1, 3.0, 1.8, "Hp", True),
        ("s-good", "student", "sg", "t-b", 0, 0.5, 0.2, "inconclusive", False),
        ("s-miss", "student", "sm", "t-a", 0, 0.4, 0.4, "inconclusive", False),
        ("s-miss", "student", "sm", "t-b", 1, 0.6, -0.3, "inconclusive", True),
        ("c-clean", "control", "cc", "t-a", 0, -2.0, -1.5, "Hd", False),
        ("c-clean", "control", "cc", "t-b", 0, -1.0, -1.2, "Hd", True),
        ("c-false", "control", "cf", "t-a", 0, 2.0, 1.2, "Hp", True),
        ("c-false", "control", "cf", "t-b", 0, -0.5, -0.6, "inconclusive", False),
    ]
    cols = ["suspect", "role", "lineage", "teacher", "hp", "score", "log10_lr", "supports", "beats"]
    return pd.DataFrame(rows, columns=cols)


def test_case_outcomes() -> None:
    cases = case_outcomes(outcome_pairs()).set_index("suspect")
    assert list(cases.index) == sorted(cases.index)
    assert cases.loc["s-good", ["attributed", "outcome", "documented"]].tolist() == ["t-a", "attributed", "t-a"]
    assert bool(cases.loc["s-good", "correct"])
    assert cases.loc["s-miss", ["attributed", "outcome", "documented"]].tolist() == \
        ["none", "no teacher supported", "t-b"]
    assert not bool(cases.loc["s-miss", "correct"])
    assert cases.loc["c-clean", ["attributed", "documented"]].tolist() == ["none", "none"]
    assert bool(cases.loc["c-clean", "correct"])
    assert cases.loc["c-false", ["attributed", "outcome"]].tolist() == ["t-a", "attributed"]
    assert not bool(cases.loc["c-false", "correct"])
    assert cases.loc["c-false", "role"] == "control" and cases.loc["c-false", "lineage"] == "cf"
    assert cases["supported"].tolist() == ["none", "t-a", "t-a", "none"]  # c-clean, c-false, s-good, s-miss
    assert cases["documented_supported"].tolist() == [True, False, True, False]


def test_an_inconclusive_student_counts_as_supported_when_its_teacher_is_among_the_candidates() -> None:
    """Both candidates supported, neither singled out: not attributed, but the documented one is supported."""
    pairs = outcome_pairs()
    pairs = pairs[pairs["suspect"] == "s-miss"].copy()
    pairs["supports"] = "Hp"
    cases = case_outcomes(pairs)
    assert cases[["outcome", "attributed", "supported"]].iloc[0].tolist() == ["inconclusive", "none", "t-a, t-b"]
    assert not bool(cases["correct"].iloc[0]) and bool(cases["documented_supported"].iloc[0])
    summary = summarise(pairs, cases)
    assert summary["students_documented_teacher_supported"] == 1 and summary["students_attributed_correctly"] == 0


def test_a_mixed_student_is_correct_when_attributed_to_either_teacher() -> None:
    pairs = outcome_pairs()
    pairs = pairs[pairs["suspect"] == "s-good"].copy()
    pairs["hp"] = 1  # documented teachers: t-a and t-b
    cases = case_outcomes(pairs)
    assert cases["documented"].iloc[0] == "t-a, t-b"
    assert bool(cases["correct"].iloc[0])


def test_summarise_counts() -> None:
    pairs = outcome_pairs()
    summary = summarise(pairs, case_outcomes(pairs))
    assert (summary["n_cases"], summary["n_students"], summary["n_controls"]) == (4, 2, 2)
    assert (summary["n_pairs"], summary["n_hp_pairs"], summary["n_hd_pairs"]) == (8, 2, 6)
    assert summary["n_lineages"] == 4
    assert summary["students_attributed_correctly"] == 1
    assert summary["student_attribution_accuracy"] == 0.5
    assert summary["false_attributions_controls"] == 1
    assert summary["false_attribution_rate_controls"] == 0.5
    assert summary["students_documented_teacher_supported"] == 1
    assert summary["controls_with_a_supported_teacher"] == 1
    # Hp pairs: log10 LR 1.8 and -0.3 -> one of two misleading; Hd pairs: 0.2, 0.4, 1.2 > 0 -> 3 of 6
    assert summary["rate_misleading_hp"] == 0.5
    assert summary["rate_misleading_hd"] == 0.5
    # pair AUC from the scores: Hp 3.0 and 0.6 against Hd 0.5, 0.4, -2.0, -1.0, 2.0, -0.5:
    # 3.0 beats all 6; 0.6 beats 5 of 6 (not 2.0) -> 11 / 12
    assert summary["pair_auc"] == pytest.approx(11 / 12, abs=1e-6)
    assert summary["tippett"] == {"hp": [-0.3, 1.8], "hd": [-1.5, -1.2, -0.6, 0.2, 0.4, 1.2]}
    assert summary["per_teacher"] == {"t-a": {"students": 1, "attributed_correctly": 1},
                                      "t-b": {"students": 1, "attributed_correctly": 0}}
    assert 0 <= summary["cllr_min"] <= summary["cllr"]


def test_summarise_per_teacher_does_not_confuse_names_that_contain_each_other() -> None:
    pairs = outcome_pairs().replace({"teacher": {"t-b": "t-ab"}})
    summary = summarise(pairs, case_outcomes(pairs))
    assert summary["per_teacher"]["t-a"] == {"students": 1, "attributed_correctly": 1}


def test_a_multi_word_model_name_is_matched_by_its_documented_label(tmp_path: Path) -> None:
    path = tmp_path / "LABELS.csv"
    path.write_text("file,model,role,trained_on_outputs_of\nclaude-2.json,Anthropic Claude 2,teacher,\n"
                    "stud.json,stud,student,claude-2\n")
    labels = load_labels(path).set_index("name")
    assert teacher_matches(labels.loc["stud", "trained_on_outputs_of"], labels.loc["claude-2", "teacher_name"])


# --------------------------------------------------------------------------------------------------
# The committed validation folder and its notebook
# --------------------------------------------------------------------------------------------------

VALIDATION_DIR = Path(__file__).resolve().parents[1] / "validation"


def test_the_committed_validation_is_complete_and_consistent() -> None:
    """The README and every report quote this folder: it must hold every file, and its counts must agree."""
    from forensics.calibration import DEFAULT_CALIBRATION
    from forensics.validation import line_leanings, read_validation

    result = read_validation(VALIDATION_DIR)
    summary, cases, pairs = result["summary"], result["cases"], result["pairs"]
    assert summary["n_cases"] == len(cases) and summary["n_pairs"] == len(pairs)
    assert summary["students_attributed_correctly"] == int(cases.loc[cases["role"] == "student", "correct"].sum())
    assert summary["false_attributions_controls"] == int((cases.loc[cases["role"] == "control", "attributed"]
                                                          != "none").sum())
    pd.testing.assert_frame_equal(line_leanings(pairs).astype(str), result["leanings"].astype(str))
    shipped = Calibration.load(DEFAULT_CALIBRATION)
    assert shipped.metrics["summary"]["pair_auc"] == summary["pair_auc"]


def test_reading_a_folder_without_validation_names_the_fix(tmp_path: Path) -> None:
    from forensics.validation import read_validation

    with pytest.raises(InputError, match="lacks pairs.csv.*forensics validate"):
        read_validation(tmp_path)


@pytest.mark.slow
def test_the_validation_notebook_runs_on_the_committed_folder(tmp_path: Path) -> None:
    import papermill as pm

    from forensics.pipeline import NOTEBOOK_DIR, ensure_kernel, kernel_config

    out = tmp_path / "validation.ipynb"
    pm.execute_notebook(str(NOTEBOOK_DIR / "validation.ipynb"), str(out), kernel_name=ensure_kernel(),
                        parameters={"validation_dir": str(VALIDATION_DIR), "rerun": False},
                        cwd=str(NOTEBOOK_DIR), progress_bar=False, config=kernel_config(tmp_path))
    text = out.read_text(encoding="utf-8")
    assert "students attributed to their documented teacher" in text and "lines_favouring_documented" in text
