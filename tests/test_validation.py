"""forensics.validation: labels, lineages, leave-one-lineage-out calibration, outcomes and their summary."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forensics import weighing
from forensics.case import MIN_PANEL_FAMILIES, Parameters
from forensics.errors import InputError
from forensics.scoring import preference_z
from forensics.validation import (
    PANEL_DRAWS,
    PANEL_MARK,
    PANEL_SIZES,
    SAMPLE_DRAWS,
    SAMPLE_SIZES,
    Benchmark,
    LevelTables,
    benchmark_cases,
    benchmark_tables,
    comparison_table,
    family_of_teachers,
    family_table,
    fit_levels,
    formatting_matrices,
    held_out,
    is_all_but,
    is_sample,
    is_subpanel,
    lineage_of,
    load_benchmark,
    load_labels,
    pair_table,
    pooled,
    prompt_sources,
    score_case,
    score_fused_lines,
    scored_cases,
    semantic_measurement,
    size_group,
    subpanel_size,
    subpanels,
    summarise_scheme,
    teacher_matches,
    transform_level,
    with_rival_leads,
    wording_overlap,
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
# Families, comparisons and held-out calibration (on a synthetic pair table)
# --------------------------------------------------------------------------------------------------

#: (suspect, role, lineage, {teacher: (hp, score)}); teachers t-a1 and t-a2 form family "A", t-b its own.
SYNTHETIC = [
    ("s-a", "student", "la", {"t-a1": (1, 2.4), "t-a2": (1, 2.2), "t-b": (0, 0.1)}),
    ("s-b", "student", "lb", {"t-a1": (0, 0.3), "t-a2": (0, -0.2), "t-b": (1, 1.9)}),
    ("s-a2", "student", "lc", {"t-a1": (1, 1.6), "t-a2": (1, 1.7), "t-b": (0, -0.4)}),
    ("s-b2", "student", "ld", {"t-a1": (0, 0.0), "t-a2": (0, 0.2), "t-b": (1, 2.6)}),
    ("s-wild", "student", "lw", {"t-a1": (1, 30.0), "t-a2": (1, 28.0), "t-b": (0, -20.0)}),
    ("c-1", "control", "le", {"t-a1": (0, -0.6), "t-a2": (0, 0.1), "t-b": (0, -1.0)}),
    ("c-2", "control", "lf", {"t-a1": (0, 0.4), "t-a2": (0, -0.9), "t-b": (0, 0.2)}),
]
FAMILY = {"t-a1": "A", "t-a2": "A", "t-b": "t-b"}


def synthetic_tables(sets: tuple[str, ...] = ("all",), shift: float = 0.0) -> LevelTables:
    rows = []
    for k, prompt_set in enumerate(sets):
        for suspect, role, lineage, teachers in SYNTHETIC:
            for teacher, (hp, score) in teachers.items():
                rows.append({"set": prompt_set, "n_prompts": 100 + k, "suspect": suspect, "teacher": teacher,
                             "family": FAMILY[teacher], "role": role, "lineage": lineage, "hp": hp,
                             "score": score + shift * k, "n_panel": 5, "n_panel_lines": 5})
    return tables_of(with_rival_leads(pd.DataFrame(rows)))


def score_preferences(pairs: pd.DataFrame) -> pd.DataFrame:
    """A stand-in comparison statistic: the difference of the two candidates' scores."""
    rows = []
    for (prompt_set, suspect), group in pairs.groupby(["set", "suspect"], sort=True):
        scores = dict(zip(group["teacher"], group["score"], strict=True))
        rows += [{"set": prompt_set, "suspect": suspect, "a": a, "b": b, "statistic": scores[a] - scores[b]}
                 for a in scores for b in scores if a != b]
    return pd.DataFrame(rows)


def tables_of(pairs: pd.DataFrame) -> LevelTables:
    families, preferences = family_table(pairs), score_preferences(pairs)
    return LevelTables(pairs, families, comparison_table(families, preferences), preferences)


def test_a_family_takes_its_best_member_and_is_hp_when_any_member_is() -> None:
    fam = synthetic_tables().family.set_index(["suspect", "family"])
    assert fam.loc[("s-a", "A"), ["score", "best_member", "hp"]].tolist() == [2.4, "t-a1", 1]
    assert fam.loc[("s-a2", "A"), ["score", "best_member"]].tolist() == [1.7, "t-a2"]
    assert fam.loc[("s-b", "A"), "hp"] == 0 and fam.loc[("s-b", "t-b"), "hp"] == 1
    assert fam.loc[("s-a", "A"), "members"] == "t-a1, t-a2"


def test_rival_leads_are_measured_against_other_families_and_a_family_takes_its_best_members() -> None:
    tables = synthetic_tables()
    pairs = tables.teacher.set_index(["suspect", "teacher"])["rival_lead"]
    assert pairs[("s-a", "t-a2")] == 0.0  # out-scored only by its sibling t-a1: no rival
    assert pairs[("s-a", "t-b")] == pytest.approx(2.3) and pairs[("s-b", "t-a1")] == pytest.approx(1.6)
    assert pairs[("c-1", "t-a1")] == 0.0 and pairs[("c-1", "t-b")] == pytest.approx(1.1)  # t-a2: A leads c-1
    families = tables.family.set_index(["suspect", "family"])["rival_lead"]
    assert families[("s-b", "A")] == pytest.approx(1.6) and families[("c-2", "A")] == 0.0


def test_comparisons_are_mirrored_pairs_of_documented_against_other_families() -> None:
    cmp = synthetic_tables().comparison
    assert set(cmp["role"]) == {"student"}  # controls have no documented family to compare
    s_a = cmp[cmp["suspect"] == "s-a"].set_index(["a", "b"])
    assert s_a.loc[("A", "t-b"), ["statistic", "hp"]].tolist() == [pytest.approx(2.3), 1]
    assert s_a.loc[("t-b", "A"), ["statistic", "hp"]].tolist() == [pytest.approx(-2.3), 0]
    assert len(cmp) == 2 * 5  # five students, one documented and one other family each


def test_a_mixed_student_is_not_compared_between_its_documented_families() -> None:
    tables = synthetic_tables()
    fam = tables.family.copy()
    fam.loc[fam["suspect"] == "s-a", "hp"] = 1  # s-a documented for both families
    assert comparison_table(fam, tables.preferences).query("suspect == 's-a'").empty


def test_each_lineage_gets_lrs_from_calibrations_fitted_without_it() -> None:
    tables = synthetic_tables()
    done, _ = held_out(tables, "lolo", (-0.3, 0.3))
    for lineage in tables.teacher["lineage"].unique():
        cals = fit_levels(tables, lambda f, lin=lineage: f["lineage"] != lin)
        for level, (frame, column) in done.tables().items():
            own = frame[frame["lineage"] == lineage]
            np.testing.assert_allclose(own["log10_lr"], transform_level(own, level, column, cals))


def test_a_one_member_family_gets_its_members_held_out_lr_and_a_family_of_several_the_family_level() -> None:
    """The synthetic family t-b has one member: its held-out family LR is t-b's teacher-level LR in every
    case; family A's come from the family calibration, fitted on every family (t-b's pairs included)."""
    tables = synthetic_tables()
    done, _ = held_out(tables, "lolo", (-0.3, 0.3))
    single = done.family[done.family["n_members"] == 1].set_index(["set", "suspect", "family"])["log10_lr"]
    member = done.teacher.set_index(["set", "suspect", "teacher"])["log10_lr"]
    assert len(single) and set(single.index.get_level_values("family")) == {"t-b"}
    np.testing.assert_array_equal(single.to_numpy(), member.loc[single.index].to_numpy())
    several = done.family[done.family["n_members"] == 2]
    cals = fit_levels(tables, lambda f: f["lineage"] != "la")
    own = several[several["lineage"] == "la"]
    leads = own["rival_lead"].to_numpy()
    np.testing.assert_allclose(own["log10_lr"], cals["family"].transform(own["score"].to_numpy(), leads))
    assert not np.allclose(cals["family"].transform(own["score"].to_numpy(), leads),
                           cals["teacher"].transform(own["score"].to_numpy(), leads))


def test_the_held_out_lineage_does_not_shape_its_own_calibration() -> None:
    """The check above can fail: a calibration fitted on every pair gives the wild lineage other LRs."""
    tables = synthetic_tables()
    done, _ = held_out(tables, "lolo", (-0.3, 0.3))
    everything = fit_levels(tables, lambda f: pd.Series(True, index=f.index))["teacher"]
    wild = done.teacher[done.teacher["lineage"] == "lw"]
    assert not np.allclose(wild["log10_lr"], everything.transform(wild["score"].to_numpy(),
                                                                  wild["rival_lead"].to_numpy()))


def test_cross_source_never_calibrates_on_the_held_out_source_or_all_prompts() -> None:
    """Each source's pairs get LRs from the other sources only: shifting one source's scores leaves its
    own LRs on the others' calibration, and the all-prompts set is never tested or trained on."""
    tables = synthetic_tables(("all", "s1", "s2", "s3"), shift=0.5)
    done, cases = held_out(tables, "cross_source", (-0.3, 0.3))
    assert set(done.teacher["set"]) == {"s1", "s2", "s3"} and set(cases["set"]) == {"s1", "s2", "s3"}
    lin, held = "la", "s2"
    cals = fit_levels(tables, lambda f: (f["lineage"] != lin) & f["set"].isin(["s1", "s3"]))
    own = done.teacher[(done.teacher["lineage"] == lin) & (done.teacher["set"] == held)]
    np.testing.assert_allclose(own["log10_lr"], cals["teacher"].transform(own["score"].to_numpy(),
                                                                        own["rival_lead"].to_numpy()))


def test_a_cross_source_fold_fits_the_union_of_its_sources_which_nothing_else_fits() -> None:
    """The fold that holds s2 out fits s1, s3 and their union (``all-but-s2``), as the shipped calibration
    fits the all-prompts set and each source; no other fold, no leave-one-lineage-out fold and not the shipped
    fit ever fit a union set: shifting every union set moves none of them, shifting all-but-s2 moves the s2
    fold. Leave-one-lineage-out tests the unions as case sizes, outside its pooled figures."""
    sets = ("all", "s1", "s2", "s3", "all-but-s1", "all-but-s2", "all-but-s3")
    tables = synthetic_tables(sets, shift=0.1)
    assert prompt_sources(list(sets)) == ["s1", "s2", "s3"] and is_all_but("all-but-s2") and not is_all_but("s2")
    done, cases = held_out(tables, "cross_source", (-0.3, 0.3))
    assert set(done.teacher["set"]) == {"s1", "s2", "s3"}
    lin = "la"
    seen = ["s1", "s3", "all-but-s2"]
    cals = fit_levels(tables, lambda f: (f["lineage"] != lin) & f["set"].isin(seen))
    own = done.teacher[(done.teacher["lineage"] == lin) & (done.teacher["set"] == "s2")]
    np.testing.assert_allclose(own["log10_lr"], cals["teacher"].transform(own["score"].to_numpy(),
                                                                        own["rival_lead"].to_numpy()))
    without = fit_levels(tables, lambda f: (f["lineage"] != lin) & f["set"].isin(["s1", "s3"]))
    assert not np.allclose(own["log10_lr"], without["teacher"].transform(own["score"].to_numpy(),
                                                                         own["rival_lead"].to_numpy()))
    pairs = tables.teacher.copy()
    pairs.loc[pairs["set"].map(is_all_but), "score"] += 5.0
    shifted = tables_of(pairs)
    lolo, shifted_lolo = held_out(tables, "lolo", (-0.3, 0.3))[0], held_out(shifted, "lolo", (-0.3, 0.3))[0]
    kept = pooled(lolo.teacher)
    np.testing.assert_array_equal(lolo.teacher.loc[kept, "log10_lr"], shifted_lolo.teacher.loc[kept, "log10_lr"])
    assert (~kept).sum() == 3 * 21  # the unions are tested, each suspect's pairs on each
    assert set(lolo.teacher.loc[~kept, "set"]) == {"all-but-s1", "all-but-s2", "all-but-s3"}
    summary = summarise_scheme(*held_out(tables, "lolo", (-0.3, 0.3)))
    assert summary["levels"]["teacher"]["n_pairs"] == 4 * 21 and "all-but-s2" in summary["per_prompt_set"]
    only = tables.teacher.copy()  # all-but-s2 holds s1's and s3's prompts: only the fold holding s2 out fits it
    only.loc[only["set"] == "all-but-s2", "score"] += 5.0
    moved = held_out(tables_of(only), "cross_source", (-0.3, 0.3))[0]
    for level, (frame, _) in done.tables().items():
        after = moved.tables()[level][0]
        s2 = frame["set"] == "s2"
        np.testing.assert_array_equal(frame.loc[~s2, "log10_lr"], after.loc[~s2, "log10_lr"])
        if level != "comparison":  # the fixture's comparison LRs all sit at their bounds
            assert not np.allclose(frame.loc[s2, "log10_lr"], after.loc[s2, "log10_lr"])
    for level, cal in fit_levels(tables, pooled).items():
        other = fit_levels(shifted, pooled)[level]
        assert (cal.intercept, cal.slope, cal.lower, cal.upper, cal.rival_slope) == \
            (other.intercept, other.slope, other.lower, other.upper, other.rival_slope)


def test_unions_of_all_sources_but_one_are_built_from_three_sources_of_their_prompts_only() -> None:
    """Unlabelled prompts (no source) are in no union; two sources give none (each would be the other)."""
    sets = _bench(700, ["a"] * 200 + ["b"] * 300 + [""] * 50 + ["c"] * 150).prompt_sets()
    assert [s for s in sets if not is_sample(s)] == ["all", "a", "b", "c", "all-but-a", "all-but-b", "all-but-c"]
    np.testing.assert_array_equal(sets["all-but-b"], np.concatenate([np.arange(200), np.arange(550, 700)]))
    assert prompt_sources(list(sets)) == ["a", "b", "c"]


def test_elub_bounds_come_from_one_prompt_set_not_the_pooled_copies() -> None:
    """Five copies of the same models' pairs are one set's worth of evidence, not five."""
    from forensics.calibration import Calibration, _elub

    tables = synthetic_tables(("a", "b", "c", "d", "e"))
    five = fit_levels(tables, lambda f: pd.Series(True, index=f.index))["teacher"]
    pairs = tables.teacher
    pooled = Calibration.fit(pairs["score"].to_numpy(), pairs["hp"].to_numpy())  # ELUB on every copy
    one = pairs[pairs["set"] == "a"]
    plain = five.intercept + five.slope * one["score"].to_numpy()
    assert five.rival_slope > 0  # the fixture's leads are weighed: the bounds are the discounted LRs'
    lower, upper = _elub(plain - five.rival_slope * one["rival_lead"].to_numpy(), one["hp"].to_numpy())
    upper = min(upper, _elub(plain, one["hp"].to_numpy())[1])  # never above the plain calibration's
    assert (five.lower, five.upper) == pytest.approx((lower, upper))
    assert five.upper < pooled.upper and five.lower > pooled.lower
    assert five.n_hp == 5 * int(one["hp"].sum())


def test_a_groups_family_metrics_are_those_of_its_own_cases() -> None:
    """Cases that share a prompt-set name but are grouped apart (sub-panels of one model line and of two) get
    the family AUC and Cllr of their own pairs, not of every pair of the set."""
    from forensics.validation import _group_metrics, level_metrics

    done, cases = held_out(synthetic_tables(), "lolo", (-0.3, 0.3))
    group = cases[cases["suspect"].isin(["s-a", "s-b", "c-1"])]
    own = done.family[done.family["suspect"].isin(["s-a", "s-b", "c-1"])]
    got = _group_metrics(done, group)
    assert (got["family_pair_auc"], got["family_cllr"]) == (level_metrics(own, "score")["pair_auc"],
                                                            level_metrics(own, "score")["cllr"])
    assert got["family_cllr"] != _group_metrics(done, cases)["family_cllr"]


def test_case_outcomes_and_their_summary() -> None:
    tables = synthetic_tables()
    done, cases = held_out(tables, "lolo", (-0.3, 0.3))
    cases = cases.set_index("suspect")
    assert list(cases.index) == sorted(cases.index)
    assert cases.loc["s-b", ["documented", "documented_family"]].tolist() == ["t-b", "t-b"]
    assert cases.loc["s-a", "documented"] == "t-a1, t-a2" and cases.loc["s-a", "documented_family"] == "A"
    assert cases.loc["c-1", ["documented", "documented_family"]].tolist() == ["none", "none"]
    for row in cases.itertuples():
        if row.role == "student":
            assert row.correct_family == (row.attributed_family in row.documented_family.split(", "))
        else:
            assert row.correct_family == (row.attributed_family == "none")
    summary = summarise_scheme(done, cases.reset_index())
    c = summary["cases"]
    assert (c["n_cases"], c["n_students"], c["n_controls"]) == (7, 5, 2)
    assert c["students_family_attributed_correctly"] == int(cases.loc[cases["role"] == "student",
                                                                      "correct_family"].sum())
    assert summary["levels"]["teacher"]["n_pairs"] == 21 and summary["levels"]["family"]["n_pairs"] == 14
    assert 0 <= summary["levels"]["family"]["cllr_min"] <= summary["levels"]["family"]["cllr"]
    assert set(summary["per_prompt_set"]) == {"all"}


def test_a_measured_decision_rule_decides_every_case_with_the_same_inputs_as_the_shipped_one() -> None:
    """held_out takes another rule (benchmarks measure variants so): it must see what decide sees."""
    tables = synthetic_tables()
    seen = []

    def recording(teachers: list, families: list, compare: object, band: object,
                  enough_references: bool = True) -> dict:
        seen.append(sorted(t["name"] for t in teachers))
        return {**weighing.decide(teachers, families, compare, band, enough_references=enough_references),
                "attributed_family": None, "outcome": "no teacher supported"}

    _, shipped = held_out(tables, "lolo", (-0.3, 0.3))
    _, measured = held_out(tables, "lolo", (-0.3, 0.3), recording)
    assert len(seen) == len(shipped) == len(measured)
    assert all(names == sorted(set(names)) and names for names in seen)  # each case's candidates, once
    assert set(measured["outcome"]) == {"no teacher supported"}
    assert set(measured["attributed_family"]) == {"none"}
    assert measured["supported"].tolist() == shipped["supported"].tolist()


def _bench(n: int, origins: list[str] | None = None) -> Benchmark:
    keys = [f"k{i:04d}" for i in range(n)]
    return Benchmark(labels=pd.DataFrame(), prompt_keys=keys, prompts=keys, responses={}, data_sha256="",
                     origins=origins or [])


def test_random_samples_are_seeded_sorted_distinct_draws_of_each_size() -> None:
    sets = _bench(700, ["a"] * 350 + ["b"] * 350).prompt_sets()
    samples = [s for s in sets if is_sample(s)]
    assert samples == [f"sample-{k}-{d}" for k in SAMPLE_SIZES for d in range(1, SAMPLE_DRAWS + 1)]
    assert [s for s in sets if not is_sample(s)] == ["all", "a", "b"]
    again = _bench(700).prompt_sets()
    for name in samples:
        idx = sets[name]
        size = int(name.split("-")[1])
        assert len(idx) == len(set(idx.tolist())) == size and (np.diff(idx) > 0).all() and idx.max() < 700
        np.testing.assert_array_equal(idx, again[name])  # the same draw whatever else the benchmark holds
        assert size_group(name) == f"sample-{size}"
    assert not np.array_equal(sets["sample-150-1"], sets["sample-150-2"])
    assert prompt_sources(list(sets)) == ["a", "b"]


def test_a_benchmark_too_small_for_a_size_is_not_sampled_at_it() -> None:
    assert [s for s in _bench(2 * max(SAMPLE_SIZES) - 1).prompt_sets() if is_sample(s)] == \
        [f"sample-{min(SAMPLE_SIZES)}-{d}" for d in range(1, SAMPLE_DRAWS + 1)]
    assert list(_bench(2 * min(SAMPLE_SIZES) - 1).prompt_sets()) == ["all"]


def test_samples_and_subpanels_are_tested_but_never_fitted_on() -> None:
    """Sample and sub-panel pairs get held-out LRs like every pair, but shifting them moves no calibration,
    and the scheme's pooled figures leave them out (they re-use the all-prompts set's answers); sub-panel
    cases are reported per panel size, apart from the case sizes."""
    subs = ("all~panel-2-1", "all~panel-2-2", "sample-150-1~panel-3-1")
    sets = ("all", "s1", "s2", "sample-150-1", "sample-150-2", *subs)
    base = synthetic_tables(sets)
    base.teacher["n_panel"] = [subpanel_size(s) if is_subpanel(s) else 5 for s in base.teacher["set"]]
    # the second 2-model sub-panel holds two versions of one model: one model line, which names nothing
    base.teacher["n_panel_lines"] = [1 if s == "all~panel-2-2" else n for s, n in zip(base.teacher["set"],
                                                                                       base.teacher["n_panel"],
                                                                                       strict=True)]
    pairs = base.teacher.copy()
    pairs.loc[pairs["set"].map(lambda s: is_sample(s) or is_subpanel(s)), "score"] += 5.0
    shifted = tables_of(pairs)
    everything = lambda f: pd.Series(True, index=f.index)  # noqa: E731
    for level, cal in fit_levels(base, everything).items():
        other = fit_levels(shifted, everything)[level]
        assert (cal.intercept, cal.slope, cal.lower, cal.upper) == (other.intercept, other.slope, other.lower,
                                                                    other.upper)
    done, cases = held_out(shifted, "lolo", (-0.3, 0.3))
    assert set(done.teacher["set"]) == set(sets) and set(cases["set"]) == set(sets)
    summary = summarise_scheme(done, cases)
    assert summary["levels"]["teacher"]["n_pairs"] == 3 * 21 and summary["cases"]["n_cases"] == 3 * 7
    sample = summary["per_prompt_set"]["sample-150"]
    assert sample["n_draws"] == 2 and sample["n_cases"] == 2 * 7 and summary["per_prompt_set"]["s1"]["n_draws"] == 1
    assert set(summary["per_prompt_set"]) == {"all", "s1", "s2", "sample-150"}
    panels = summary["per_panel_size"]
    assert set(panels) == {"2", "2 of one line", "3"} and panels["3"]["n_cases"] == 7
    assert panels["2"]["n_cases"] == panels["2 of one line"]["n_cases"] == 7
    assert panels["2"]["prompt_sets"] == ["all"] and panels["3"]["prompt_sets"] == ["sample-150"]
    assert panels["2"]["n_panel"] == panels["2 of one line"]["n_panel"] == 2
    assert not panels["2"]["one_line"] and panels["2 of one line"]["one_line"]
    assert panels["2"]["full_panels"] == [5, 5]
    one_line = cases[cases["set"] == "all~panel-2-2"]
    assert (one_line["attributed_family"] == "none").all() and (one_line["n_panel_lines"] == 1).all()
    assert (cases.loc[cases["set"] == "all~panel-2-1", "attributed_family"] != "none").any()
    crossed, crossed_cases = held_out(shifted, "cross_source", (-0.3, 0.3))
    assert set(crossed.teacher["set"]) == {"s1", "s2"}
    assert summarise_scheme(crossed, crossed_cases)["per_panel_size"] == {}


def test_subpanels_are_seeded_distinct_subsets_smaller_than_the_panel() -> None:
    panel = ["r1", "r2", "r3", "r4", "r5"]
    drawn = subpanels(panel, 7)
    assert drawn == subpanels(panel, 7) and drawn != subpanels(panel, 8)
    for size in PANEL_SIZES:
        of_size = [members for suffix, members in drawn if suffix.startswith(f"{PANEL_MARK}{size}-")]
        assert len(of_size) == PANEL_DRAWS and len({tuple(m) for m in of_size}) == PANEL_DRAWS
        assert all(len(m) == size and set(m) <= set(panel) for m in of_size)
    assert [s for s, _ in drawn if s.startswith(f"{PANEL_MARK}2-")] == [f"{PANEL_MARK}2-{d}" for d in range(1, 5)]
    assert subpanels(["r1", "r2"], 0) == []  # nothing smaller than a 2-model panel is validated
    assert [m for _, m in subpanels(["r1", "r2", "r3"], 0)] == [["r1", "r2"], ["r1", "r3"], ["r2", "r3"]]
    assert prompt_sources(["all", "s1", "all~panel-2-1", "sample-150-1"]) == ["s1"]


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
    from forensics.calibration import DEFAULT_CALIBRATION, CalibrationSet
    from forensics.validation import ALL_PROMPTS, line_leanings, read_validation

    result = read_validation(VALIDATION_DIR)
    summary, cases, pairs = result["summary"], result["cases"], result["pairs"]
    lolo_cases = cases[cases["scheme"] == "lolo"]
    for entry in summary["schemes"]["lolo"]["per_panel_size"].values():
        subs = lolo_cases[lolo_cases["set"].map(lambda s, n=entry["n_panel"]: is_subpanel(s) and subpanel_size(s) == n)
                          & ((lolo_cases["n_panel_lines"] < MIN_PANEL_FAMILIES) == entry["one_line"])]
        assert entry["n_cases"] == len(subs) > 0 and entry["false_attributions_controls"] == int(
            ((subs["role"] == "control") & (subs["attributed_family"] != "none")).sum())
    # the pooled figures leave the random samples, the sub-panels and the unions of all sources but one out
    assert lolo_cases["set"].map(is_all_but).any()
    cases, pairs = cases[pooled(cases)], pairs[pooled(pairs)]
    for scheme, sch in summary["schemes"].items():
        mine = cases[cases["scheme"] == scheme]
        students = mine[mine["role"] == "student"]
        assert sch["cases"]["n_cases"] == len(mine)
        assert sch["cases"]["students_family_attributed_correctly"] == int(students["correct_family"].sum())
        assert sch["levels"]["teacher"]["n_pairs"] == int((pairs["scheme"] == scheme).sum())
    lolo = pairs[(pairs["scheme"] == "lolo") & (pairs["set"] == ALL_PROMPTS)]
    pd.testing.assert_frame_equal(line_leanings(lolo).astype(str), result["leanings"].astype(str))
    shipped = CalibrationSet.load(DEFAULT_CALIBRATION)
    assert shipped.data_sha256 == summary["data_sha256"]
    fitted = pairs[pairs["scheme"] == "lolo"]  # the shipped teacher level is fitted on exactly the pooled pairs
    assert (shipped["teacher"].n_hp, shipped["teacher"].n_hd) == (int(fitted["hp"].sum()),
                                                                  int((1 - fitted["hp"]).sum()))
    assert not any(is_all_but(k) for k in shipped.metrics["summary"]["per_prompt_set"])
    assert shipped.metrics["summary"]["family"] == summary["schemes"]["lolo"]["levels"]["family"]
    assert set(summary["files"]) == set(pd.read_csv(DEFAULT_CALIBRATION.parents[1] / "labelled" / "alpaca_eval"
                                                    / "LABELS.csv")["file"])


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
    assert "documented family" in text and "lines_favouring_documented" in text


# --------------------------------------------------------------------------------------------------
# The fast path scores exactly as the pipeline does (real outputs shipped with the demo)
# --------------------------------------------------------------------------------------------------

DEMO_EXCHANGES = Path(__file__).resolve().parents[1] / "data" / "demo" / "exchanges"
DEMO_LABELS = """file,model,role,trained_on_outputs_of,family
text-davinci-003.json,text-davinci-003,teacher,,
gpt-3.5-turbo-0301.csv,gpt-3.5-turbo-0301,teacher,,OpenAI chat
gpt-4-0314.parquet,gpt-4-0314,teacher,,OpenAI chat
alpaca-7b.jsonl,alpaca-7b,student,text-davinci-003,
guanaco-13b.jsonl,guanaco-13b,control,none,
llama-2-13b-chat.csv,llama-2-13b-chat,control,none,
gemini-pro.json,gemini-pro,reference,,
cohere.jsonl,cohere,reference,,
"""


@pytest.fixture(scope="module")
def demo_bench(tmp_path_factory: pytest.TempPathFactory) -> Benchmark:
    folder = tmp_path_factory.mktemp("demo_bench")
    for f in DEMO_EXCHANGES.iterdir():
        (folder / f.name).symlink_to(f)
    (folder / "LABELS.csv").write_text(DEMO_LABELS)
    bench = load_benchmark(folder / "LABELS.csv")
    rng = np.random.default_rng(0)  # stand-in openings: this test is about the stylometric and fused scores
    for name in bench.responses:
        v = rng.normal(size=(len(bench.prompt_keys), 8))
        bench.openings[name] = (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)
    return bench


def test_the_benchmark_reader_joins_every_format_and_hashes_each_file(demo_bench: Benchmark) -> None:
    assert len(demo_bench.prompt_keys) >= 190 and len(demo_bench.responses) == 8
    assert set(demo_bench.files) == {line.split(",")[0] for line in DEMO_LABELS.splitlines()[1:]}
    assert family_of_teachers(demo_bench.labels) == {"text-davinci-003": "text-davinci-003",
                                                      "gpt-3.5-turbo-0301": "OpenAI chat",
                                                      "gpt-4-0314": "OpenAI chat"}


def test_the_fused_fast_path_equals_the_full_scoring(demo_bench: Benchmark) -> None:
    params = Parameters()
    formatting = formatting_matrices(demo_bench)
    overlap = wording_overlap(demo_bench, params.opening_words)
    idx = np.arange(0, len(demo_bench.prompt_keys), 2)
    for corpus in benchmark_cases(demo_bench, idx):
        openings = {s: demo_bench.openings[s][idx] for s in corpus.sources}
        fmt = {s: (formatting[s][0][idx], formatting[s][1][idx]) for s in corpus.sources}
        fast = score_fused_lines(corpus, openings, fmt, overlap.for_case(corpus, idx), params)
        full = score_case(corpus, openings, params)
        for t in corpus.teachers:
            assert fast.fused[t] == pytest.approx(full.fused[t], abs=1e-12)
            for line in fast.line_z:
                assert fast.line_z[line][t] == pytest.approx(full.line_z[line][t], abs=1e-12)


def test_the_pair_table_has_a_row_per_set_suspect_and_teacher(demo_bench: Benchmark) -> None:
    """The table `forensics calibrate` fits on: every fused line's z and the fused score on every prompt set,
    and the reported lines (markers, stylometric families) on the all-prompts set."""
    pairs = pair_table(demo_bench, Parameters())
    sets = demo_bench.prompt_sets()
    cases = benchmark_cases(demo_bench, np.arange(len(demo_bench.prompt_keys)))
    sub = pairs["set"].map(is_subpanel)
    assert (~sub).sum() == len(sets) * len(cases) * 3
    assert set(pairs.loc[~sub, "set"]) == set(sets)
    # sub-panels: on the all-prompts set (and samples), each of each case's seeded sub-panels, smaller than
    # its full panel, scored like it (tested only, never fitted on)
    assert sub.any() and set(pairs.loc[sub, "set"].str.split(PANEL_MARK).str[0]) == {"all"}
    for corpus in cases:
        rows = pairs[sub & (pairs["suspect"] == corpus.suspect)]
        assert set(rows["n_panel"]) <= {n for n in PANEL_SIZES if n < len(corpus.references)}
        assert (rows["n_panel_lines"] >= 1).all() and (rows["n_panel_lines"] <= rows["n_panel"]).all()
        assert len(rows) == 3 * len(subpanels(list(corpus.references), 0))
    assert pairs["score"].notna().all()
    np.testing.assert_allclose(pairs["score"], pairs[[f"z_{line}" for line in weighing.FUSED_LINES]].mean(axis=1),
                               rtol=0, atol=1e-12)
    full = pairs[pairs["set"] == "all"]
    assert full["z_markers"].notna().all() and full.filter(like="z_family_").shape[1] >= 1


def test_the_preference_table_compares_every_two_candidates_of_every_scored_case(demo_bench: Benchmark) -> None:
    """What the validation decides with: for every case it scores (sub-panels included), every ordered pair
    of candidates, antisymmetric, each computed with that case's own scoring panel and fused scores as the
    pipeline does (:func:`forensics.weighing.comparison_statistic`)."""
    params = Parameters()
    pairs, prefs = benchmark_tables(demo_bench, params, every_line=False)
    fused = pairs.set_index(["set", "suspect", "teacher"])["score"]
    scored = list(scored_cases(demo_bench))
    assert len(prefs) == len(scored) * 3 * 2  # three candidates: six ordered pairs
    value = prefs.set_index(["set", "suspect", "a", "b"])["statistic"]
    assert value.notna().all()
    for (prompt_set, suspect, a, b), v in value.items():
        assert value[(prompt_set, suspect, b, a)] == pytest.approx(-v, abs=1e-12)
    full = next(c for s, _, c in scored if s == "all" and c.suspect == "alpaca-7b")
    sub_set, _, sub = next((s, i, c) for s, i, c in scored if is_subpanel(s) and c.suspect == "alpaca-7b")
    for prompt_set, corpus in (("all", full), (sub_set, sub)):
        openings = {s: demo_bench.openings[s] for s in corpus.sources}
        measured = semantic_measurement(corpus, openings, params)
        semantic = preference_z(measured.openings, measured.sources, "alpaca-7b", "text-davinci-003",
                                "gpt-4-0314", corpus.references)
        difference = fused[(prompt_set, "alpaca-7b", "text-davinci-003")] - fused[(prompt_set, "alpaca-7b",
                                                                                   "gpt-4-0314")]
        expected = (semantic + difference / np.sqrt(2)) / 2
        assert value[(prompt_set, "alpaca-7b", "text-davinci-003", "gpt-4-0314")] == pytest.approx(expected, abs=1e-12)
    assert len(sub.references) < len(full.references)
