"""forensics.weighing (rate z, fusion, candidate comparison, decision) and step 06's sentences (forensics.evidence)."""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from forensics import evidence, weighing
from forensics.calibration import Calibration, CalibrationSet
from forensics.scoring import panel_size_z, preference_z, rate_z
from forensics.weighing import BEATS_LEVEL, beats_others, decide, fuse, fuse_boot, rival_leads
from forensics.wording import WordingMatrices

# --------------------------------------------------------------------------------------------------
# rate_z: a per-teacher rate, suspect vs references, spread pooled over teachers
# --------------------------------------------------------------------------------------------------
#
# references A, B, C; teachers T1, T2
#   T1 rates 1, 2, 3 -> mean 2, centred -1, 0, 1
#   T2 rates 5, 6, 7 -> mean 6, centred -1, 0, 1
# pooled: sum of squares 4, dof = 6 values - 2 teachers = 4, sd = 1
#   suspect T1 = 4 -> raw z = (4 - 2) / 1 = 2;  suspect T2 = 5 -> raw z = (5 - 6) / 1 = -1
# and each raw z is then read for the panel's size (3 references): panel_size_z(raw, 3)

REFS = ["A", "B", "C"]
REF_RATES = {"T1": {"A": 1.0, "B": 2.0, "C": 3.0}, "T2": {"A": 5.0, "B": 6.0, "C": 7.0}}


def _read(raw: float, n_panel: int = 3) -> float:
    return float(panel_size_z(raw, n_panel))


def test_rate_z_by_hand() -> None:
    z = rate_z({"T1": 4.0, "T2": 5.0}, REF_RATES, REFS)
    assert z["T1"] == pytest.approx(_read(2.0))
    assert z["T2"] == pytest.approx(_read(-1.0))


def test_panel_size_z_by_hand() -> None:
    """t = z / sqrt(1 + 1/R) on R - 1 degrees of freedom, back to the normal deviate of its tail.

    R = 2: t = 2 / sqrt(1.5) = 1.63299; Cauchy tail 1/2 - atan(t)/pi = 0.17490; normal deviate 0.93497.
    """
    t = 2 / math.sqrt(1.5)
    tail = 0.5 - math.atan(t) / math.pi
    assert tail == pytest.approx(0.174901, abs=1e-6)
    assert _read(2.0, 2) == pytest.approx(0.934974, abs=1e-6)
    assert _read(-2.0, 2) == pytest.approx(-0.934974, abs=1e-6)


def test_panel_size_z_tames_small_panels_and_leaves_large_ones_nearly_alone() -> None:
    """Two near-twin references give raw z of 12-15 to human-data controls (their spread is tiny); read
    for a 2-model panel that is a modest deviate. A 200-model panel's z is almost the raw one, and the
    reading keeps order and sign; a panel of one has no spread at all (NaN)."""
    assert _read(15.0, 2) < 3.0
    assert _read(2.0, 200) == pytest.approx(2.0, abs=0.02)
    raws = np.linspace(-6, 6, 25)
    for n in (2, 3, 5, 7):
        read = panel_size_z(raws, n)
        assert np.all(np.diff(read) > 0) and np.allclose(read, -read[::-1])
        assert np.all(np.abs(read) <= np.abs(raws) + 1e-12)
    assert math.isnan(_read(2.0, 1)) and math.isnan(_read(float("nan"), 5))


def test_rate_z_pools_the_spread_over_teachers() -> None:
    """Widening T2's panel spread lowers T1's z too (one pooled sd), not only T2's.

    T2 rates 4, 6, 8: centred -2, 0, 2; sum of squares 2 + 8 = 10; sd = sqrt(10 / 4).
    """
    rates = {"T1": REF_RATES["T1"], "T2": {"A": 4.0, "B": 6.0, "C": 8.0}}
    z = rate_z({"T1": 4.0, "T2": 5.0}, rates, REFS)
    sd = math.sqrt(10 / 4)
    assert z["T1"] == pytest.approx(_read(2.0 / sd))
    assert z["T2"] == pytest.approx(_read(-1.0 / sd))


def test_rate_z_skips_a_missing_reference_rate() -> None:
    """T2's rate for C is unknown (None): T2 mean 5.5 from A, B; centred -0.5, 0.5.

    sum of squares 2 + 0.5 = 2.5 over 5 finite values - 2 teachers = 3 dof; T2's z is read for the two
    references that have a rate.
    """
    rates = {"T1": REF_RATES["T1"], "T2": {"A": 5.0, "B": 6.0, "C": None}}
    z = rate_z({"T1": 4.0, "T2": 5.0}, rates, REFS)
    sd = math.sqrt(2.5 / 3)
    assert z["T1"] == pytest.approx(_read(2.0 / sd))
    assert z["T2"] == pytest.approx(_read(-0.5 / sd, 2))


def test_rate_z_without_spread_is_nan() -> None:
    rates = {"T1": {"A": 1.0, "B": 1.0, "C": 1.0}}
    assert math.isnan(rate_z({"T1": 3.0}, rates, REFS)["T1"])


def test_rate_z_of_equal_rates_with_rounding_noise_is_nan() -> None:
    """0.1, 0.1, 0.1 centre to 1e-17 residues, not to zero: that is no spread, not a z of 1e16."""
    equal = {"T1": {r: 0.1 for r in REFS}, "T2": {r: 0.7 for r in REFS}}
    assert all(math.isnan(z) for z in rate_z({"T1": 0.3, "T2": 0.9}, equal, REFS).values())


def test_rate_z_of_an_unknown_suspect_rate_is_nan() -> None:
    assert math.isnan(rate_z({"T1": None, "T2": 5.0}, REF_RATES, REFS)["T1"])


# --------------------------------------------------------------------------------------------------
# Fusion (written against weighing.FUSED_LINES, whichever lines the method fuses)
# --------------------------------------------------------------------------------------------------

FUSED = list(weighing.FUSED_LINES)
NOT_FUSED = [line for line in ("embedding", "wording", "stylometry", "markers", "clusters") if line not in FUSED]


def test_at_least_two_lines_are_fused() -> None:
    assert len(FUSED) >= 2
    assert set(FUSED) <= {"embedding", "wording", "stylometry", "markers"}


def test_fuse_is_the_mean_of_the_fused_lines_only() -> None:
    """The fused score is the fused lines' mean; the reported lines never enter it."""
    values = [1.0 + 2 * i for i in range(len(FUSED))]  # 1, 3, (5)
    line_z = {line: {"T": v, "U": -v} for line, v in zip(FUSED, values, strict=True)}
    line_z.update({line: {"T": 100.0, "U": 100.0} for line in NOT_FUSED})  # reported, never fused
    got = fuse(line_z, ["T", "U"])
    assert got["T"] == pytest.approx(np.mean(values))
    assert got["U"] == pytest.approx(-np.mean(values))


def test_one_high_line_alone_carries_only_its_share() -> None:
    line_z = {line: {"T": 0.1} for line in FUSED}
    line_z[FUSED[0]] = {"T": 2.8}
    assert fuse(line_z, ["T"])["T"] == pytest.approx((2.8 + 0.1 * (len(FUSED) - 1)) / len(FUSED))


def test_fuse_skips_a_line_that_could_not_be_computed() -> None:
    values = [float("nan"), *(2.0 + i for i in range(len(FUSED) - 1))]
    line_z = {line: {"T": v} for line, v in zip(FUSED, values, strict=True)}
    assert fuse(line_z, ["T"])["T"] == pytest.approx(float(np.mean(values[1:])))


def test_fuse_skips_a_missing_line() -> None:
    line_z = {FUSED[0]: {"T": 1.5}}
    assert fuse(line_z, ["T"])["T"] == pytest.approx(1.5)


def test_fuse_of_no_line_is_nan() -> None:
    line_z = {line: {"T": float("nan")} for line in FUSED}
    line_z.update({line: {"T": 4.0} for line in NOT_FUSED})
    assert math.isnan(fuse(line_z, ["T"])["T"])


def test_fuse_boot_takes_the_replicatewise_mean_of_the_available_lines() -> None:
    line_boot = {FUSED[0]: {"T": np.array([1.0, 6.0, 3.0])},
                 FUSED[1]: {"T": np.array([3.0, 4.0, 5.0, 99.0])}}  # longer: truncated to 3
    line_boot.update({line: {"T": np.array([])} for line in FUSED[2:]})  # no replicates: left out
    line_boot.update({line: {"T": np.array([-50.0, -50.0, -50.0])} for line in NOT_FUSED})
    np.testing.assert_allclose(fuse_boot(line_boot, ["T"])["T"], [2.0, 5.0, 4.0])


def test_fuse_boot_ignores_nan_in_one_line() -> None:
    line_boot = {FUSED[0]: {"T": np.array([1.0, np.nan])}, FUSED[1]: {"T": np.array([3.0, 5.0])}}
    np.testing.assert_allclose(fuse_boot(line_boot, ["T"])["T"], [2.0, 5.0])


def test_fuse_boot_without_replicates_is_empty() -> None:
    got = fuse_boot({line: {"T": np.array([])} for line in FUSED}, ["T"])["T"]
    assert got.size == 0


# --------------------------------------------------------------------------------------------------
# Rival leads: how far a candidate of another family out-scores each candidate
# --------------------------------------------------------------------------------------------------

def test_a_rival_is_the_best_candidate_outside_the_family_and_a_leader_has_none() -> None:
    scores = {"a1": 1.5, "a2": 0.9, "b": 1.2, "c": 0.2}
    leads = rival_leads(scores, {"A": ["a1", "a2"], "b": ["b"], "c": ["c"]})
    assert leads["a1"] == (0.0, None)  # leads
    assert leads["a2"] == (pytest.approx(0.3), "b")  # its sibling a1 is no rival: only b counts
    assert leads["b"] == (pytest.approx(0.3), "a1")
    assert leads["c"] == (pytest.approx(1.3), "a1")


def test_undeclared_siblings_are_each_others_rivals_and_missing_scores_nobodys() -> None:
    scores = {"t1": 1.0, "t2": 0.4, "u": float("nan")}
    leads = rival_leads(scores, {"t1": ["t1"], "t2": ["t2"], "u": ["u"]})
    assert leads["t2"] == (pytest.approx(0.6), "t1") and leads["t1"] == (0.0, None)
    assert np.isnan(leads["u"][0]) and leads["u"][1] is None
    assert rival_leads({"t": 0.5}, {"t": ["t"]}) == {"t": (0.0, None)}  # one family: no rival


# --------------------------------------------------------------------------------------------------
# Beating the other candidates
# --------------------------------------------------------------------------------------------------

def test_one_candidate_has_nothing_to_beat() -> None:
    assert beats_others({"T": np.array([-5.0, -6.0])}, {"T": -5.5}) == {"T": 1.0}


def test_a_clear_winner_beats_the_others_in_every_replicate() -> None:
    rng = np.random.default_rng(1)
    boot = {"T": 5 + rng.normal(0, 0.3, 200), "U": rng.normal(0, 0.3, 200), "V": rng.normal(0, 0.3, 200)}
    share = beats_others(boot, {"T": 5.0, "U": 0.0, "V": 0.0})
    assert share["T"] == pytest.approx(1.0)
    assert share["T"] >= BEATS_LEVEL
    assert share["U"] + share["V"] == pytest.approx(0.0)


def test_ties_beat_nobody() -> None:
    same = np.linspace(0, 1, 50)
    share = beats_others({"T": same, "U": same.copy()}, {"T": 0.5, "U": 0.5})
    assert share == {"T": 0.0, "U": 0.0}


def test_close_candidates_share_the_wins() -> None:
    """Two candidates that swap places from replicate to replicate: neither reaches the 95% level."""
    rng = np.random.default_rng(2)
    base = rng.normal(0, 1, 400)
    share = beats_others({"T": base + 0.1, "U": base + rng.normal(0, 0.5, 400)}, {"T": 0.1, "U": 0.0})
    assert share["T"] + share["U"] == pytest.approx(1.0)
    assert max(share.values()) < BEATS_LEVEL


def test_without_replicates_the_full_data_ranking_decides() -> None:
    share = beats_others({"T": np.array([]), "U": np.array([])}, {"T": 0.2, "U": 1.3})
    assert share == {"T": 0.0, "U": 1.0}


def test_replicates_of_unequal_length_are_compared_on_the_common_ones() -> None:
    share = beats_others({"T": np.array([2.0, 2.0, -9.0]), "U": np.array([1.0, 1.0])}, {"T": 2.0, "U": 1.0})
    assert share == {"T": 1.0, "U": 0.0}


# --------------------------------------------------------------------------------------------------
# Families and the decision
# --------------------------------------------------------------------------------------------------

BAND = (-0.30103, 0.30103)


def by_score(teachers: list[dict[str, Any]]) -> Callable[[str, str], float]:
    """A stand-in comparison of two candidates by name: log10 LR = their score difference (antisymmetric)."""
    scores = {t["name"]: t["score"] for t in teachers}
    return lambda a, b: scores[a] - scores[b]


def teacher(name: str, supports: str, score: float, log10_lr: float | None = None) -> dict[str, Any]:
    verbal = {"Hp": "moderate support", "Hd": "weak support"}.get(supports, "no meaningful support")
    return {"name": name, "supports": supports, "score": score, "log10_lr": score if log10_lr is None else log10_lr,
            "verbal": verbal}


def family(name: str, members: list[str], supports: str, score: float) -> dict[str, Any]:
    """A family whose first member is its best (the one it is compared through)."""
    return {**teacher(name, supports, score), "members": members, "best_member": members[0]}


def singles(*teachers: dict[str, Any]) -> list[dict[str, Any]]:
    """Each teacher a family of its own, with the same score and support."""
    return [family(t["name"], [t["name"]], t["supports"], t["score"]) for t in teachers]


def test_a_family_scores_as_its_best_member() -> None:
    got = weighing.family_scores({"a1": 0.4, "a2": 1.7, "b": float("nan")}, {"A": ["a1", "a2"], "B": ["b"]})
    assert got["A"] == (1.7, "a2")
    assert math.isnan(got["B"][0])


def test_a_clear_lead_is_named_even_when_a_second_candidate_is_supported() -> None:
    """2.95 vs 1.39, both 'supporting Hp': the comparison favours the first, so it is named."""
    t = [teacher("T", "Hp", 2.95), teacher("U", "Hp", 1.39), teacher("V", "Hd", -1.0)]
    got = decide(t, singles(*t), by_score(t), BAND)
    assert got["attributed_teacher"] == "T" and got["attributed_family"] == "T"
    assert got["outcome"] == "attributed"
    assert got["candidates_supported"] == ["T", "U"]
    assert got["family_comparisons"] == {"U": pytest.approx(1.56), "V": pytest.approx(3.95)}


def test_two_candidates_the_comparison_cannot_separate_are_inconclusive() -> None:
    t = [teacher("T", "Hp", 1.5), teacher("U", "Hp", 1.4)]
    got = decide(t, singles(*t), by_score(t), BAND)
    assert got["outcome"] == "inconclusive"
    assert got["attributed_teacher"] is None and got["attributed_family"] is None
    assert got["families_supported"] == ["T", "U"]


def test_a_panel_too_small_to_attribute_names_nothing_even_a_lone_supported_candidate() -> None:
    """With references of one model line nothing is named: not a clear lead, not a single supported candidate
    (a case with one candidate), not a family; what is supported is still listed, and without support the
    outcome stays "no teacher supported". With enough references the same inputs are attributed."""
    cases = [
        [teacher("T", "Hp", 2.95), teacher("U", "Hp", 1.39), teacher("V", "Hd", -1.0)],
        [teacher("T", "Hp", 2.95), teacher("U", "inconclusive", 0.2), teacher("V", "Hd", -1.0)],
        [teacher("T", "Hp", 1.2)],
    ]
    for t in cases:
        got = decide(t, singles(*t), by_score(t), BAND, enough_references=False)
        assert (got["outcome"], got["attributed_family"], got["attributed_teacher"]) == ("inconclusive", None, None)
        assert "T" in got["candidates_supported"] and "T" in got["families_supported"]
        assert got["family_comparisons"] == {} and got["sibling_comparisons"] == {}
        assert decide(t, singles(*t), by_score(t), BAND)["attributed_teacher"] == "T"
    t = [teacher("a1", "Hp", 2.0), teacher("a2", "Hp", 0.9), teacher("b", "Hd", -0.5)]
    fams = [family("A", ["a1", "a2"], "Hp", 2.0), family("b", ["b"], "Hd", -0.5)]
    assert decide(t, fams, by_score(t), BAND, enough_references=False)["attributed_family"] is None
    assert decide(t, fams, by_score(t), BAND)["attributed_teacher"] == "a1"
    t = [teacher("T", "inconclusive", 0.2), teacher("U", "Hd", -1.0)]
    assert decide(t, singles(*t), by_score(t), BAND, enough_references=False)["outcome"] == "no teacher supported"


def test_statement_with_references_of_one_model_line_says_why_nothing_is_named() -> None:
    t = [teacher("T", "Hp", 1.2), teacher("U", "Hd", -1.0)]
    decided = decide(t, singles(*t), by_score(t), BAND, enough_references=False)
    text = evidence.statement("S", t, singles(*t), decided, n_references=3, n_lines=1)
    assert text.startswith("Inconclusive: the evidence leans towards training on outputs of T, but the 3 "
                           "reference models are of only 1 model line, so no candidate is named")
    assert "references of at least 2 model lines are needed" in text and "U" not in text


def test_a_lead_without_support_attributes_nothing() -> None:
    t = [teacher("T", "inconclusive", 0.2), teacher("U", "Hd", -1.0)]
    got = decide(t, singles(*t), by_score(t), BAND)
    assert got["outcome"] == "no teacher supported"
    assert got["candidates_supported"] == [] and got["attributed_family"] is None


def test_siblings_that_cannot_be_separated_give_the_family_without_a_teacher() -> None:
    t = [teacher("a1", "Hp", 1.6), teacher("a2", "Hp", 1.5), teacher("b", "Hd", -0.5)]
    fams = [family("A", ["a1", "a2"], "Hp", 1.6), family("b", ["b"], "Hd", -0.5)]
    got = decide(t, fams, by_score(t), BAND)
    assert got["outcome"] == "family attributed"
    assert got["attributed_family"] == "A" and got["attributed_teacher"] is None
    assert got["sibling_comparisons"] == {"a2": pytest.approx(0.1)}


def test_a_sibling_that_stands_out_is_named_with_its_family() -> None:
    t = [teacher("a1", "Hp", 2.0), teacher("a2", "inconclusive", 0.5), teacher("b", "Hd", -0.5)]
    fams = [family("A", ["a1", "a2"], "Hp", 2.0), family("b", ["b"], "Hd", -0.5)]
    got = decide(t, fams, by_score(t), BAND)
    assert (got["outcome"], got["attributed_family"], got["attributed_teacher"]) == ("attributed", "A", "a1")


def test_a_family_whose_best_member_is_not_supported_on_its_own_stays_at_family_level() -> None:
    t = [teacher("a1", "inconclusive", 1.0), teacher("b", "Hd", -0.5)]
    fams = [family("A", ["a1"], "Hp", 1.0), family("b", ["b"], "Hd", -0.5)]
    got = decide(t, fams, by_score(t), BAND)
    assert (got["outcome"], got["attributed_family"], got["attributed_teacher"]) == ("family attributed", "A", None)


def test_a_single_candidate_case() -> None:
    t = [teacher("T", "Hp", 1.0)]
    assert decide(t, singles(*t), by_score(t), BAND)["attributed_teacher"] == "T"
    t = [teacher("T", "inconclusive", 0.0)]
    assert decide(t, singles(*t), by_score(t), BAND)["outcome"] == "no teacher supported"


def test_a_candidate_without_a_score_is_never_named() -> None:
    t = [teacher("T", "Hp", 1.0), {**teacher("U", "inconclusive", 0.0), "score": None}]
    fams = singles(*t)
    fams[1]["score"] = None
    got = decide(t, fams, by_score(t), BAND)
    assert got["attributed_teacher"] == "T" and "U" not in got["family_comparisons"]


# --------------------------------------------------------------------------------------------------
# The statement (one sentence for the legal reader)
# --------------------------------------------------------------------------------------------------

def conclusion(outcome: str, teacher_name: str | None = None, family_name: str | None = None,
               **extra: Any) -> dict[str, Any]:
    return {"outcome": outcome, "attributed_teacher": teacher_name, "attributed_family": family_name, **extra}


def test_statement_attributed() -> None:
    teachers = [teacher("T", "Hp", 2.0), teacher("U", "Hd", -1.0)]
    text = evidence.statement("S", teachers, singles(*teachers),
                              conclusion("attributed", "T", "T", family_comparisons={"U": 3.0}))
    assert text.startswith("The evidence supports the proposition that S was trained on outputs of T")
    assert "about 100 times more probable" in text
    assert "(moderately strong support for Hp)" in text  # words from the LR itself, as the LR quoted
    assert ("were it trained on one of the candidate families, the observations favour this one over each of the "
            "others by a factor of 1,000 or more") in text
    assert "U" not in text


def test_statement_attributed_with_a_small_lr_keeps_a_decimal() -> None:
    teachers = [teacher("T", "Hp", math.log10(3.2))]
    text = evidence.statement("S", teachers, singles(*teachers), conclusion("attributed", "T", "T"))
    assert "about 3.2 times more probable" in text


def test_statement_family_names_the_family_and_its_members() -> None:
    teachers = [teacher("a1", "Hp", 1.6), teacher("a2", "Hp", 1.5)]
    fams = [family("Fam A", ["a1", "a2"], "Hp", 1.6)]
    text = evidence.statement("S", teachers, fams, conclusion("family attributed", None, "Fam A"))
    assert "a model of the Fam A family (a1, a2)" in text
    assert "does not single out one member" in text


def test_statement_inconclusive_names_the_supported_candidates() -> None:
    teachers = [teacher("T", "Hp", 1.5), teacher("U", "Hp", 1.4), teacher("V", "Hd", -2)]
    text = evidence.statement("S", teachers, singles(*teachers),
                              conclusion("inconclusive", families_supported=["T", "U"]))
    assert text.startswith("Inconclusive:")
    assert "T, U" in text
    assert "V" not in text
    assert "does not single out one candidate" in text
    assert "consistent with training on any one of them or on several" in text  # a mixed student's answer


def test_statement_when_a_teacher_but_no_family_is_supported_says_why_nothing_is_named() -> None:
    teachers = [teacher("a1", "Hp", 0.5), teacher("a2", "inconclusive", 0.1), teacher("V", "Hd", -2)]
    fams = [family("Fam A", ["a1", "a2"], "inconclusive", 0.2), family("V", ["V"], "Hd", -2)]
    decided = decide(teachers, fams, by_score(teachers), BAND)
    assert decided["outcome"] == "inconclusive" and decided["families_supported"] == []
    text = evidence.statement("S", teachers, fams, decided)
    assert text.startswith("Inconclusive: the evidence leans towards training on outputs of a1, but not "
                           "towards its family (Fam A: LR about 1.6, no meaningful support for Hp)")
    assert "a teacher is named only within a family the evidence supports" in text
    assert "V" not in text and "single out" not in text


def test_statement_no_teacher_supported() -> None:
    teachers = [teacher("T", "Hd", -1.5), teacher("U", "inconclusive", 0.1)]
    text = evidence.statement("S", teachers, singles(*teachers), conclusion("no teacher supported"))
    assert text.startswith("No candidate teacher or family is supported")
    assert "S's resemblance" in text


# --------------------------------------------------------------------------------------------------
# Limitations are generated from the case
# --------------------------------------------------------------------------------------------------

CAL = CalibrationSet(levels={
    "teacher": Calibration(intercept=0.0, slope=1.0, lower=-1.25, upper=1.5, n_hp=12, n_hd=48),
    "family": Calibration(intercept=0.0, slope=1.0, lower=-1.5, upper=1.75, n_hp=10, n_hd=30),
    "comparison": Calibration(intercept=0.0, slope=1.0, lower=-1.0, upper=1.0, n_hp=20, n_hd=20)})


def test_a_family_of_one_member_carries_its_members_lr_and_a_family_of_several_the_family_calibrations() -> None:
    """One proposition, one strength: a one-member family's LR and bounds are its member's (teacher level);
    a family of several is weighed by the family calibration (here with other bounds, so the two differ)."""
    entries = {f["name"]: f for f in evidence.family_entries({"a1": 2.0, "a2": 0.3, "b": 1.6},
                                                            {"A": ["a1", "a2"], "b": ["b"]}, CAL, BAND)}
    assert entries["b"]["log10_lr"] == 1.5 and entries["b"]["lr_bounds"] == [-1.25, 1.5]
    assert entries["A"]["log10_lr"] == 1.75 and entries["A"]["lr_bounds"] == [-1.5, 1.75]
    fields = ("log10_lr", "lr_bounds", "at_bound", "verbal", "supports")
    assert {k: v for k, v in evidence.lr_fields(1.6, CAL["teacher"], BAND).items() if k in fields} == {
        k: entries["b"][k] for k in fields}


DISCOUNTING = CalibrationSet(levels={
    "teacher": Calibration(intercept=0.0, slope=1.0, lower=-2.0, upper=2.0, n_hp=12, n_hd=48, rival_slope=0.5),
    "family": Calibration(intercept=-0.5, slope=1.0, lower=-2.0, upper=2.0, n_hp=10, n_hd=30, rival_slope=1.0),
    "comparison": CAL["comparison"]})


def test_a_trailing_candidate_loses_what_its_rival_lead_costs_and_the_leader_nothing() -> None:
    """The rival discount as the findings carry it: a trailing candidate's LR is its score's less the
    calibration's rival slope times its lead, with the rival named (a family's: its family); the leader's
    LR is its score's alone."""
    scores, groups = {"a1": 1.5, "a2": 0.9, "b": 1.2}, {"A": ["a1", "a2"], "b": ["b"]}
    one_line = SimpleNamespace(references=["r1"])  # a panel of one line: no comparison is made
    teachers, families, _ = evidence.conclude("S", scores, groups, DISCOUNTING, BAND, one_line)
    t = {e["name"]: e for e in teachers}
    assert (t["a1"]["log10_lr"], t["a1"]["rival_lead"], t["a1"]["rival"], t["a1"]["rival_discount"]) == (
        1.5, 0.0, None, 0.0)
    assert t["a2"]["log10_lr"] == pytest.approx(0.9 - 0.5 * 0.3) and t["a2"]["rival"] == "b"
    assert t["b"]["log10_lr"] == pytest.approx(1.2 - 0.5 * 0.3) and t["b"]["rival_discount"] == pytest.approx(0.15)
    f = {e["name"]: e for e in families}
    assert f["A"]["log10_lr"] == pytest.approx(1.5 - 0.5) and f["A"]["rival"] is None
    # a family of one member carries its member's (teacher-level) LR and rival, here a family's name
    assert f["b"]["log10_lr"] == t["b"]["log10_lr"] and f["b"]["rival"] == "A"


def make_case(references: list[tuple[str, str | None]], suspect_base: str | None) -> SimpleNamespace:
    return SimpleNamespace(
        suspect=SimpleNamespace(name="S", base_model=suspect_base),
        references=[SimpleNamespace(name=n, base_model=b) for n, b in references],
        reference_family={n: None for n, _ in references})


def make_corpus(references: list[str], n_prompts: int, groups: list[str] | None = None,
                words: dict[str, int] | None = None) -> SimpleNamespace:
    """Every source answers in 50 words unless ``words`` says otherwise (its own words: no two sources
    answer alike)."""
    lengths = defaultdict(lambda: 50, words or {})

    def answers(source: str, n: int) -> list[str]:
        return [f"{source} " + "word " * (n - 1)] * n_prompts

    responses = defaultdict(list, {s: answers(s, n) for s, n in lengths.items()})
    for name in ["S", *references]:
        responses.setdefault(name, answers(name, lengths[name]))
    return SimpleNamespace(references=references, prompt_keys=[f"{i:04d}" for i in range(n_prompts)],
                           groups=groups, suspect="S", responses=responses, teachers=[])


def limitations(refs: list[tuple[str, str | None]], suspect_base: str | None = "Base-7B", n_prompts: int = 500,
                teachers: list[dict[str, Any]] | None = None, coverage: dict[str, Any] | None = None,
                families: list[dict[str, Any]] | None = None, groups: list[str] | None = None,
                words: dict[str, int] | None = None) -> list[str]:
    teachers = teachers or [teacher("T", "Hd", -1.0)]
    corpus = make_corpus([n for n, _ in refs], n_prompts, groups, words)
    return evidence.limitations(make_case(refs, suspect_base), corpus, coverage or {}, teachers,
                                families or singles(*teachers), CAL)


def test_answers_far_shorter_than_every_reference_are_named_as_an_alternative_explanation() -> None:
    teachers = [teacher("T", "Hp", 1.2), teacher("U", "Hd", -1.0)]
    refs = {name: 200 for name, _ in FIVE}
    got = mentions(limitations(FIVE, teachers=teachers, words={"S": 40, "T": 30, **refs}), "much shorter")
    assert len(got) == 1 and "median 40 words" in got[0]
    assert "(median 200 words); the supported candidate T answers with a median of 30 words." in got[0]
    assert " U:" not in got[0]  # only the supported candidates' lengths
    assert mentions(limitations(FIVE, words={"S": 900, **refs}), "much longer (median 900 words)")
    assert not mentions(limitations(FIVE, words={"S": 120, **refs}), "much shorter")  # within a factor 2
    assert not mentions(limitations(FIVE), "much shorter")


def test_turns_of_conversations_are_a_stated_limitation() -> None:
    got = mentions(limitations(FIVE, n_prompts=6, groups=["a", "a", "b", "b", "c", "prompt x"]),
                   "turns of 4 conversations")
    assert len(got) == 1 and "resample whole conversations" in got[0] and "single-turn" in got[0]
    assert not mentions(limitations(FIVE, n_prompts=3, groups=["a", "b", "c"]), "conversations")
    assert not mentions(limitations(FIVE), "conversations")


FIVE = [("R1", "X"), ("R2", "Y"), ("R3", "Z"), ("R4", None), ("R5", None)]


def mentions(sentences: list[str], fragment: str) -> list[str]:
    return [s for s in sentences if fragment in s]


def test_a_two_reference_panel_produces_the_small_panel_sentence() -> None:
    got = limitations([("R1", "X"), ("R2", "Y")])
    assert len(mentions(got, "The reference panel has only 2 models")) == 1


def test_a_five_reference_panel_has_no_small_panel_sentence() -> None:
    assert not mentions(limitations(FIVE), "reference panel has only")


def test_few_prompts_sentence_states_the_number() -> None:
    assert mentions(limitations(FIVE, n_prompts=60), "Only 60 prompts were analysed")
    assert not mentions(limitations(FIVE, n_prompts=500), "prompts were analysed")


def test_a_reference_sharing_the_suspects_base_model_is_named() -> None:
    refs = [("R1", "Base-7B"), ("R2", "Y"), ("R3", "Base-7B"), ("R4", None), ("R5", None)]
    got = mentions(limitations(refs, suspect_base="Base-7B"), "share the suspect's base model")
    assert len(got) == 1
    assert got[0].startswith("R1, R3 share the suspect's base model (Base-7B)")
    assert "R2" not in got[0]


def test_no_shared_base_model_no_sentence() -> None:
    got = limitations(FIVE, suspect_base="Base-7B")
    assert not mentions(got, "base model")


def test_an_unstated_base_model_is_a_limitation() -> None:
    got = limitations(FIVE, suspect_base=None)
    assert mentions(got, "The suspect's base model is not stated")


def test_several_supported_candidates_are_named() -> None:
    teachers = [teacher("T", "Hp", 1.2), teacher("U", "Hp", 1.9), teacher("V", "Hd", -1)]
    got = mentions(limitations(FIVE, teachers=teachers), "More than one candidate teacher is supported")
    assert len(got) == 1
    assert "(U, T)" in got[0]  # strongest first


def test_several_supported_candidates_get_one_sentence_whatever_the_panel() -> None:
    teachers = [teacher("T", "Hp", 1.2), teacher("U", "Hp", 1.9), teacher("V", "Hd", -1)]
    for refs in ([("R1", "X"), ("R2", "Y")], FIVE[:3]):
        got = mentions(limitations(refs, teachers=teachers), "More than one candidate")
        assert len(got) == 1 and "not compared" not in got[0]


def test_one_supported_candidate_has_no_such_sentence() -> None:
    teachers = [teacher("T", "Hp", 1.2), teacher("U", "Hd", -1)]
    assert not mentions(limitations(FIVE, teachers=teachers), "More than one candidate")


def test_the_calibration_size_and_bounds_are_stated() -> None:
    got = mentions(limitations(FIVE), "calibrated on labelled pairs")
    assert len(got) == 1
    assert "12 trained-on and 48 independent suspect/teacher pairs" in got[0]
    assert "10 and 30 suspect/family pairs" in got[0]
    assert "[-1.25, +1.50] (teacher)" in got[0] and "[-1.50, +1.75] (family)" in got[0]


def test_a_family_of_several_members_is_a_stated_limitation() -> None:
    teachers = [teacher("a1", "Hp", 1.2), teacher("a2", "Hd", -1)]
    assert not mentions(limitations(FIVE, teachers=teachers), "Members of one family")
    fams = [family("A", ["a1", "a2"], "Hp", 1.2)]
    assert len(mentions(limitations(FIVE, teachers=teachers, families=fams), "Members of one family")) == 1
    # a family of several members that the evidence does not support: nothing is named within it
    fams = [family("A", ["a1", "a2"], "Hd", -1.0), family("B", ["b"], "Hp", 1.2)]
    assert not mentions(limitations(FIVE, teachers=teachers, families=fams), "Members of one family")


def test_excluded_prompts_are_counted() -> None:
    got = limitations(FIVE, coverage={"excluded": [{"prompt_key": "a"}, {"prompt_key": "b"}]})
    assert mentions(got, "2 prompts were excluded")
    assert mentions(limitations(FIVE, coverage={"excluded": [{"prompt_key": "a"}]}), "1 prompt was excluded")
    assert not mentions(limitations(FIVE), "excluded")


def test_limitations_differ_between_cases() -> None:
    """Not boilerplate: a small, base-sharing, short case and a large clean one get different lists."""
    assert limitations([("R1", "Base-7B"), ("R2", None)], n_prompts=50) != limitations(FIVE, n_prompts=900)


SIZES = {"all": {"n_prompts": 800, "false_attributions_controls": 0, "n_controls": 5},
         "a": {"n_prompts": 80, "false_attributions_controls": 3, "n_controls": 5},
         "b": {"n_prompts": 130, "false_attributions_controls": 0, "n_controls": 5},
         "c": {"n_prompts": 250, "false_attributions_controls": 0, "n_controls": 5}}


def test_a_suspect_whose_answers_helped_fit_the_calibration_is_told() -> None:
    from forensics.calibration import answer_fingerprints

    answers = [" ".join(f"w{i}x{k}" for k in range(30)) for i in range(100)]
    prints = answer_fingerprints({"m-7b": ("student", answers)})
    text = evidence.fitted_on_the_suspect(answers[:40] + ["other " * 30], prints)
    assert text is not None and text.startswith("The suspect's answers match a labelled model the calibration")
    assert "40 of its 41 distinct answers of 20 words or more are word for word answers of m-7b (a student" in text
    assert "no independent test" in text and "reproduces m-7b's published answers" in text
    assert evidence.fitted_on_the_suspect(answers[:2], prints) is None  # two could be chance
    assert evidence.fitted_on_the_suspect(answers, None) is None
    # through the limitations step 06 writes, from the calibration's own record
    cal = dataclasses.replace(CAL, metrics={**CAL.metrics, "labelled_answers": answer_fingerprints(
        {"m-7b": ("student", [f"S {'word ' * 49}"])})})
    corpus = make_corpus([n for n, _ in FIVE], 500)
    got = evidence.limitations(make_case(FIVE, "Base-7B"), corpus, {}, [teacher("T", "Hd", -1.0)],
                               singles(teacher("T", "Hd", -1.0)), cal)
    assert mentions(got, "word for word answers of m-7b") == []  # one answer, repeated: a single fingerprint
    corpus.responses["S"] = answers[:50] * 10
    cal = dataclasses.replace(CAL, metrics={**CAL.metrics, "labelled_answers": prints})
    got = evidence.limitations(make_case(FIVE, "Base-7B"), corpus, {}, [teacher("T", "Hd", -1.0)],
                               singles(teacher("T", "Hd", -1.0)), cal)
    assert len(mentions(got, "50 of its 50 distinct answers of 20 words or more are word for word answers of "
                             "m-7b")) == 1


def test_answers_that_are_a_sources_own_word_for_word_are_a_caution() -> None:
    """A suspect whose answers are a candidate's answers to the same prompts (a relay, or a copy): said, with
    the count; a reference's too; short answers and a couple of coincidences are not."""
    corpus = make_corpus(["R1", "R2"], 10)
    corpus.teachers = ["T"]
    corpus.responses["T"] = [f"teacher answer {i} " + "word " * 30 for i in range(10)]
    corpus.responses["S"] = [" ".join(a.split()) for a in corpus.responses["T"][:6]] + ["own " * 30] * 4
    text = evidence.repeated_answers(corpus)
    assert text is not None and text.startswith("The suspect's answers repeat those of T: 6 of its 10 answers")
    assert "check how the file was collected" in text
    corpus.responses["S"][2:6] = ["own " * 30] * 4
    assert evidence.repeated_answers(corpus) is None  # two alike: not enough to say anything
    big = make_corpus(["R1", "R2"], 100)  # three alike of 100: what related models share, not a copy
    big.teachers = ["T"]
    big.responses["T"] = [f"teacher answer {i} " + "word " * 30 for i in range(100)]
    big.responses["S"] = big.responses["T"][:3] + [f"own answer {i} " + "word " * 30 for i in range(97)]
    assert evidence.repeated_answers(big) is None
    corpus.responses["R2"] = list(corpus.responses["S"])
    assert evidence.repeated_answers(corpus).startswith("The suspect's answers repeat those of R2: 10 of its")


def test_a_case_smaller_than_the_safely_validated_sizes_says_so() -> None:
    text = evidence.below_validated_size(100, SIZES)
    assert text is not None and "Only 100 prompts" in text and "fewer than 130, the smallest validated size" in text
    assert "with 80 prompts, 3 of 5 human-data controls" in text
    assert evidence.below_validated_size(130, SIZES) is None
    assert evidence.below_validated_size(5000, SIZES) is None


def test_without_any_unsafe_size_the_smallest_validated_size_is_the_floor() -> None:
    safe = {k: {**v, "false_attributions_controls": 0} for k, v in SIZES.items()}
    assert "fewer than 80, the smallest" in evidence.below_validated_size(50, safe)
    assert evidence.below_validated_size(80, safe) is None
    assert evidence.below_validated_size(10, {}) is None


def test_a_size_where_a_control_had_a_supported_candidate_is_not_safe_either() -> None:
    """Only the decision rule kept such a control from being named: the size is below the safe floor."""
    sizes = {k: {**v, "false_attributions_controls": 0, "controls_with_a_supported_teacher_or_family": 0}
             for k, v in SIZES.items()}
    sizes["a"]["controls_with_a_supported_teacher_or_family"] = 1
    text = evidence.below_validated_size(100, sizes)
    assert text is not None and "fewer than 130, the smallest validated size" in text
    assert "with 80 prompts, 1 of 5 human-data controls had a supported teacher or family, though none" in text
    assert evidence.below_validated_size(130, sizes) is None
    # even the largest validated size had one: no size is known to be free of it, whatever the case's
    sizes["all"]["controls_with_a_supported_teacher_or_family"] = 1
    for n in (100, 5000):
        assert "Even at the largest validated size (800 prompts), 1 of 5" in evidence.below_validated_size(n, sizes)
    # the shipped calibration's validation: 80 prompts had one such control, 128 none
    shipped = CalibrationSet.load().metrics["summary"]["per_prompt_set"]
    assert "fewer than 128, the smallest" in evidence.below_validated_size(100, shipped)
    assert evidence.below_validated_size(128, shipped) is None


PANELS = {"2": {"n_panel": 2, "one_line": False, "full_panels": [4, 7], "n_students": 64,
                "students_family_attributed_correctly": 20,
                "students_misattributed_family": 3, "n_controls": 20, "false_attributions_controls": 2},
          "2 of one line": {"n_panel": 2, "one_line": True, "full_panels": [4, 7], "n_students": 10,
                            "students_family_attributed_correctly": 0, "students_misattributed_family": 0,
                            "n_controls": 4, "false_attributions_controls": 0},
          "3": {"n_panel": 3, "one_line": False, "full_panels": [4, 7], "n_students": 64,
                "students_family_attributed_correctly": 30,
                "students_misattributed_family": 1, "n_controls": 20, "false_attributions_controls": 0}}


def test_a_small_panel_quotes_the_validated_outcomes_at_its_size() -> None:
    calm = evidence.small_panel(3, PANELS)
    assert calm is not None and calm.startswith("The reference panel has only 3 models.")
    assert "panels of 3 references (drawn from their full panels of 4 to 7)" in calm
    assert "30 of 64 students" in calm and "0 of 20 human-data controls" in calm and "less reliable" not in calm
    shaky = evidence.small_panel(3, {"3": {**PANELS["3"], "false_attributions_controls": 2}})
    assert shaky is not None and "2 of 20 human-data controls" in shaky and "less reliable" in shaky
    assert evidence.small_panel(5, PANELS) is None and evidence.small_panel(3, {}) is None
    two = evidence.small_panel(2, PANELS, n_lines=2)  # two lines name candidates: their own validated outcomes
    assert two is not None and "panels of 2 references" in two and "20 of 64 students" in two
    assert "2 of 20 human-data controls" in two and "too few" not in two
    # an older calibration's entries (no one_line) were validated under another rule: not quoted as this one's
    older = {k: {f: v for f, v in e.items() if f != "one_line"} for k, e in PANELS.items()}
    assert evidence.small_panel(2, older, n_lines=2) is None and evidence.small_panel(3, older) is None


def test_a_panel_of_one_model_line_says_it_cannot_attribute_with_the_controls_validated_so() -> None:
    """References all of one line (sharing a family): the limitation says nothing can be named and why,
    quoting how many validation controls had a supported candidate with such panels where the calibration
    recorded it (and not otherwise), never the outcomes of panels of that size with several lines."""
    one_line = {**PANELS["2 of one line"], "controls_with_a_supported_teacher_or_family": 3}
    text = evidence.small_panel(2, {**PANELS, "2 of one line": one_line}, n_lines=1)
    assert text is not None and text.startswith("The reference panel's 2 models are of only 1 model line "
                                                "(references sharing a family count once): too few to name a "
                                                "candidate (references of at least 2 model lines are needed)")
    assert "3 of 4 human-data control cases had a teacher or family whose likelihood ratio supported Hp" in text
    assert "they are not a finding" in text
    for bare in (evidence.small_panel(2, PANELS, n_lines=1), evidence.small_panel(3, {}, n_lines=1)):
        assert bare is not None and "too few to name a candidate" in bare and "control cases" not in bare


def test_only_references_whose_absence_leaves_two_lines_are_left_out_and_the_others_are_named() -> None:
    """A panel with one reference of its own line beside versions of another: leaving out that reference
    would leave one line, so it is kept, and the limitation says the conclusion rests on it."""
    twins = {"A1": "A", "A2": "A", "A3": "A"}
    assert evidence.removable_references(["A1", "A2", "A3", "B"], twins) == ["A1", "A2", "A3"]
    assert evidence.removable_references(["A1", "B"], {}) == []  # one reference cannot be scored
    assert evidence.removable_references(["A1", "B", "C"], {}) == ["A1", "B", "C"]
    conclusion = {"outcome": "attributed", "attributed_family": "T1", "attributed_teacher": "T1"}
    same = [(r, conclusion) for r in ("A1", "A2", "A3")]
    text = evidence.robustness_sentence(conclusion, same, 4, n_lines=2, kept=["B"])
    assert text is not None and text.startswith("Decided again with each of the 3 references left out in turn, "
                                                "the conclusion is the same")
    assert text.endswith("B was not left out: without it the panel would be of one model line, so the "
                         "conclusion rests on it.")
    both = evidence.robustness_sentence(conclusion, [], 2, n_lines=2)
    assert both is not None and "rests on both of them" in both


def test_two_near_twin_references_no_longer_make_a_huge_z() -> None:
    """Two versions of one model as the whole panel: their affinities to every candidate nearly agree, so
    the raw z of an unrelated suspect is enormous; read for a 2-model panel it stays modest."""
    from forensics.scoring import affinities, panel_relative

    sources = ["S", "T1", "T2", "R1", "R2"]
    sim = np.array([[1.00, 0.70, 0.68, 0.66, 0.66],
                    [0.70, 1.00, 0.75, 0.69, 0.69],
                    [0.68, 0.75, 1.00, 0.67, 0.672],
                    [0.66, 0.69, 0.67, 1.00, 0.95],
                    [0.66, 0.69, 0.672, 0.95, 1.00]])
    teachers, panel = ["T1", "T2"], ["R1", "R2"]
    refs = {t: affinities(sim, sources, t, panel, panel) for t in teachers}
    sd = math.sqrt(sum(((a - a.mean()) ** 2).sum() for a in refs.values()) / (4 - 2))
    raw = (affinities(sim, sources, "T1", panel, ["S"])[0] - refs["T1"].mean()) / sd
    z = panel_relative(sim, sources, "S", teachers, panel)["T1"]["z"]
    assert raw > 100 and float(z) == pytest.approx(_read(raw, 2)) and float(z) < 3.5


def _loo_case(suspect_lean: float, close_reference: float) -> tuple[Any, ...]:
    """Two candidates, four references; the suspect and reference R4 lean towards T1 by the given amounts
    (similarities of 0.60 elsewhere), on both fused lines."""
    from forensics.semantic import SemanticMatrices

    sources = ["S", "T1", "T2", "R1", "R2", "R3", "R4"]
    sim = np.full((7, 7), 0.60)

    def put(a: str, b: str, value: float) -> None:
        i, j = sources.index(a), sources.index(b)
        sim[i, j] = sim[j, i] = value

    put("S", "T1", suspect_lean)
    put("R4", "T1", close_reference)
    for i, r in enumerate(["R1", "R2", "R3", "R4"]):
        put(r, "T2", 0.60 + 0.01 * i)
    put("R1", "T1", 0.61), put("R2", "T1", 0.59), put("R3", "T1", 0.605)
    np.fill_diagonal(sim, 1.0)
    refs = ["R1", "R2", "R3", "R4"]
    semantic = SemanticMatrices(sources=tuple(sources), suspect="S", teachers=("T1", "T2"), references=tuple(refs),
                                openings=sim, openings_boot=np.empty((0, 7, 7)))
    stylo = {"sources": sources, "families": {"formatting": {"sim": sim}}}
    return semantic, stylo, refs


@pytest.mark.parametrize(("lean", "close", "outcome", "changed"), [
    (0.80, 0.80, "attributed", []),  # a clear lead survives leaving out any reference
    (0.645, 0.70, "attributed", ["without R1, no teacher supported", "without R2, no teacher supported",
                                 "without R3, no teacher supported"]),  # a borderline one, read with one fewer
    (0.63, 0.68, "no teacher supported", ["without R4, attributed to T1"]),  # R4 leans like the suspect
])
def test_leaving_out_each_reference_decides_the_case_again(lean: float, close: float, outcome: str,
                                                           changed: list[str]) -> None:
    """The sentence names every reference whose absence changes the conclusion, and only those."""
    semantic, stylo, refs = _loo_case(lean, close)
    band, groups = (-math.log10(2), math.log10(2)), {"T1": ["T1"], "T2": ["T2"]}
    markers = {"teachers": {t: {"suspect": 0.0, "references": {r: 0.0 for r in refs}} for t in ("T1", "T2")}}
    wording = WordingMatrices(sources=semantic.sources, similarity=semantic.openings, boot=semantic.openings_boot)
    scored = evidence.score_lines(semantic, stylo, markers, wording, "S", ["T1", "T2"], refs)
    conclusion = evidence.conclude("S", scored.fused, groups, CAL, band, semantic)[2]
    assert conclusion["outcome"] == outcome
    left_out = evidence.leave_one_reference_out(semantic, stylo, wording, "S", ["T1", "T2"], refs, groups, CAL,
                                                band)
    assert [r for r, _ in left_out] == refs
    text = evidence.robustness_sentence(conclusion, left_out, 4)
    assert text is not None and "each of the 4 references left out in turn" in text
    if changed:
        assert f"changes in {len(changed)} of 4 ({'; '.join(changed)})" in text
    else:
        assert "the conclusion is the same" in text
    assert evidence.robustness_sentence(conclusion, [], 2, n_lines=1) is None


def test_the_comparison_statistic_is_the_mean_of_the_semantic_preference_and_the_scaled_score_difference() -> None:
    """What the comparison level calibrates (weighing.comparison_statistic): antisymmetric, the mean of the
    semantic preference z and the fused scores' difference over sqrt(2); undefined (no evidence, LR 1) when
    the panel shows no spread of the preference."""

    semantic, stylo, refs = _loo_case(0.80, 0.70)
    markers = {"teachers": {t: {"suspect": 0.0, "references": {r: 0.0 for r in refs}} for t in ("T1", "T2")}}
    wording = WordingMatrices(sources=semantic.sources, similarity=semantic.openings, boot=semantic.openings_boot)
    fused = evidence.score_lines(semantic, stylo, markers, wording, "S", ["T1", "T2"], refs).fused
    forward = weighing.comparison_statistic(semantic, fused, "T1", "T2")
    semantic_z = preference_z(semantic.openings, list(semantic.sources), "S", "T1", "T2", refs)
    assert forward == pytest.approx((semantic_z + (fused["T1"] - fused["T2"]) / math.sqrt(2)) / 2)
    assert forward > 0 and weighing.comparison_statistic(semantic, fused, "T2", "T1") == pytest.approx(-forward)
    flat = dataclasses.replace(semantic, openings=np.full_like(semantic.openings, 0.5))
    assert math.isnan(weighing.comparison_statistic(flat, fused, "T1", "T2"))
    assert evidence.comparison(CAL["comparison"], flat, fused)("T1", "T2") == 0.0


def test_the_same_clear_lead_is_named_with_two_references_of_two_lines_and_not_of_one() -> None:
    """conclude(), as step 06 calls it: the lead that four references attribute is named by two of them as
    well, but not when the case file says those two are of one model line (versions of one model), and
    the statement says why."""
    semantic, stylo, refs = _loo_case(0.80, 0.80)
    band, groups = (-math.log10(2), math.log10(2)), {"T1": ["T1"], "T2": ["T2"]}
    markers = {"teachers": {t: {"suspect": 0.0, "references": {r: 0.0 for r in refs}} for t in ("T1", "T2")}}
    wording = WordingMatrices(sources=semantic.sources, similarity=semantic.openings, boot=semantic.openings_boot)
    full = evidence.score_lines(semantic, stylo, markers, wording, "S", ["T1", "T2"], refs)
    assert evidence.conclude("S", full.fused, groups, CAL, band, semantic)[2]["attributed_teacher"] == "T1"
    two = dataclasses.replace(semantic, references=tuple(refs[:2]))
    scored = evidence.score_lines(two, stylo, markers, wording, "S", ["T1", "T2"], refs[:2])
    assert evidence.conclude("S", scored.fused, groups, CAL, band, two)[2]["attributed_teacher"] == "T1"
    twins = {refs[0]: "R", refs[1]: "R"}
    teachers, _, conclusion = evidence.conclude("S", scored.fused, groups, CAL, band, two, twins)
    assert conclusion["attributed_teacher"] is None and conclusion["attributed_family"] is None
    assert conclusion["outcome"] == "inconclusive" and conclusion["candidates_supported"] == ["T1"]
    assert next(t for t in teachers if t["name"] == "T1")["supports"] == "Hp"  # supported, yet not named
    assert conclusion["statement"].startswith("Inconclusive: the evidence leans towards training on outputs of "
                                              "T1, but the 2 reference models are of only 1 model line, so no "
                                              "candidate is named")


def test_a_panel_that_one_absence_would_silence_is_not_decided_again_without_it() -> None:
    """Leaving out a reference that would leave too few references to score (one) or model lines to name
    anything (two versions of one model) would "change" every attribution by construction: that reference
    is kept, and the check is skipped when no reference can be left out, and said to be (a panel of one line:
    no sentence at all). Three references of three lines are decided again with each left out."""
    semantic, stylo, refs = _loo_case(0.80, 0.80)
    band, groups = (-math.log10(2), math.log10(2)), {"T1": ["T1"], "T2": ["T2"]}
    wording = WordingMatrices(sources=semantic.sources, similarity=semantic.openings, boot=semantic.openings_boot)

    def left_out(kept: list[str], family: dict[str, str]) -> list[str]:
        small = dataclasses.replace(semantic, references=tuple(kept))
        return [r for r, _ in evidence.leave_one_reference_out(small, stylo, wording, "S", ["T1", "T2"], kept,
                                                               groups, CAL, band, family)]

    assert left_out(refs[:3], {refs[0]: "R", refs[1]: "R"}) == refs[:2]  # refs[2] alone is the other line
    assert left_out(refs[:2], {}) == []
    assert left_out(refs[:3], {}) == refs[:3]
    conclusion = {"outcome": "attributed", "attributed_family": "T1", "attributed_teacher": "T1"}
    text = evidence.robustness_sentence(conclusion, [], 2, n_lines=2)
    assert text is not None and "not decided again with each reference left out" in text
    assert "rests on both of them" in text
    assert evidence.robustness_sentence(conclusion, [], 3, n_lines=1) is None


def test_case_file_warnings_keep_their_own_code_with_the_case_file_as_source() -> None:
    got = evidence._data_block({}, 10, ["family_spelling: teachers a, b name their family 'X', 'x'", "odd text"])
    assert got["warnings"] == [
        {"code": "family_spelling", "source": None, "origin": "case file", "count": 1,
         "message": "teachers a, b name their family 'X', 'x'"},
        {"code": "case", "source": None, "origin": "case file", "count": 1, "message": "odd text"}]
