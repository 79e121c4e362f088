"""forensics.calibration: verbal scale, inconclusive band, the lir adapter (logistic fit + ELUB), Cllr."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import norm

from forensics.calibration import (
    DEFAULT_CALIBRATION,
    FORMAT_VERSION,
    LEVELS,
    VERBAL_PHRASES,
    Calibration,
    CalibrationSet,
    answer_fingerprint,
    answer_fingerprints,
    calibration_record,
    cllr,
    family_level,
    labelled_model_matches,
    supports,
    verbal,
    verbal_for,
)
from forensics.custody import sha256_file

# --------------------------------------------------------------------------------------------------
# Verbal scale (ENFSI 2015): LR 1-2 none, 2-10 weak, 10-100 moderate, 100-1000 moderately strong,
# 1000-10^4 strong, 10^4-10^6 very strong, above 10^6 extremely strong
# --------------------------------------------------------------------------------------------------

SCALE = [
    (1.5, "no meaningful support"),
    (5, "weak support"),
    (50, "moderate support"),
    (500, "moderately strong support"),
    (5_000, "strong support"),
    (5e5, "very strong support"),
    (5e6, "extremely strong support"),
]


@pytest.mark.parametrize(("lr", "words"), SCALE)
def test_verbal_is_the_contracts_phrase_alone(lr: float, words: str) -> None:
    """CONTRACTS.md shows ``"verbal": "moderately strong support"``: the phrase, the direction elsewhere."""
    assert verbal(math.log10(lr)) == words
    assert words in VERBAL_PHRASES


@pytest.mark.parametrize(("lr", "words"), SCALE)
def test_verbal_for_names_the_proposition_with_the_lr_inverted_for_hd(lr: float, words: str) -> None:
    assert verbal_for(math.log10(lr)) == f"{words} for Hp"
    assert verbal_for(-math.log10(lr)) == f"{words} for Hd"
    assert verbal(-math.log10(lr)) == words


def test_verbal_at_lr_one() -> None:
    assert verbal(0.0) == "no meaningful support"
    assert verbal_for(0.0) == "no support for either proposition"


def test_verbal_refuses_what_is_not_a_number() -> None:
    for value in (float("nan"), float("inf"), -float("inf")):
        with pytest.raises(ValueError, match="no verbal equivalent"):
            verbal(value)


@pytest.mark.parametrize(("lr", "words"), [
    (1.99, "no meaningful support"), (2.01, "weak support"),
    (9.9, "weak support"), (10.1, "moderate support"),
    (990, "moderately strong support"), (1010, "strong support"),
    (9.9e3, "strong support"), (1.01e4, "very strong support"),
    (9.9e5, "very strong support"), (1.01e6, "extremely strong support"),
])
def test_verbal_either_side_of_each_boundary(lr: float, words: str) -> None:
    assert verbal(math.log10(lr)) == words
    assert verbal(-math.log10(lr)) == words


@pytest.mark.parametrize(("log10_lr", "words"), [
    (1.0, "moderate support"), (2.0, "moderately strong support"), (3.0, "strong support"),
    (4.0, "very strong support"), (6.0, "extremely strong support"),
])
def test_verbal_exact_decades_belong_to_the_stronger_phrase(log10_lr: float, words: str) -> None:
    """The scale's numbers are upper bounds (exclusive): LR exactly 10 is already 'moderate'."""
    assert verbal(log10_lr) == words


def test_verbal_is_symmetric_everywhere() -> None:
    for x in np.linspace(0.01, 8, 200):
        assert verbal(x) == verbal(-x)
        assert verbal_for(x).replace("for Hp", "") == verbal_for(-x).replace("for Hd", "")


# --------------------------------------------------------------------------------------------------
# The inconclusive band
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "expected"), [
    (-1.0, "inconclusive"), (1.0, "inconclusive"), (0.0, "inconclusive"), (0.999, "inconclusive"),
    (1.000001, "Hp"), (-1.000001, "Hd"), (5.0, "Hp"), (-5.0, "Hd"),
])
def test_supports_with_band_edges_inside_the_band(value: float, expected: str) -> None:
    assert supports(value, (-1.0, 1.0)) == expected


def test_supports_with_an_asymmetric_band() -> None:
    band = (-0.5, 2.0)
    assert supports(1.5, band) == "inconclusive"
    assert supports(-0.6, band) == "Hd"
    assert supports(2.0, band) == "inconclusive"
    assert supports(2.01, band) == "Hp"


def test_supports_with_an_empty_band_splits_at_zero() -> None:
    assert supports(0.01, (0.0, 0.0)) == "Hp"
    assert supports(-0.01, (0.0, 0.0)) == "Hd"
    assert supports(0.0, (0.0, 0.0)) == "inconclusive"


# --------------------------------------------------------------------------------------------------
# Fitting
# --------------------------------------------------------------------------------------------------

def gaussian_pairs(n_hd: int, n_hp: int, shift: float) -> tuple[np.ndarray, np.ndarray]:
    """Evenly spaced quantiles of N(0, 1) (Hd) and N(shift, 1) (Hp): a noise-free sample of both."""
    hd = norm.ppf((np.arange(n_hd) + 0.5) / n_hd)
    hp = shift + norm.ppf((np.arange(n_hp) + 0.5) / n_hp)
    return np.r_[hd, hp], np.r_[np.zeros(n_hd, dtype=int), np.ones(n_hp, dtype=int)]


def test_fit_on_separable_scores() -> None:
    scores, labels = gaussian_pairs(40, 10, shift=5.0)
    cal = Calibration.fit(scores, labels)
    assert cal.slope > 0
    assert cal.lower <= 0 <= cal.upper
    assert cal.lower < 0 < cal.upper  # separable data earn some strength both ways
    assert cal.upper <= math.log10(cal.n_hd + 1)
    assert cal.lower >= -math.log10(cal.n_hp + 1)
    assert (cal.n_hp, cal.n_hd) == (10, 40)


def test_fit_recovers_the_true_log10_lr_of_two_gaussians() -> None:
    """N(2,1) vs N(0,1): ln LR(x) = 2x - 2, so log10 LR = (2x - 2) / ln 10 (slope 0.8686, intercept -0.8686).

    Pins the adapter's conversion from the natural-log logistic coefficients to log10, and the class
    balancing (unequal class sizes must not move the intercept: the proportion of Hp pairs is not a prior).
    """
    scores, labels = gaussian_pairs(4000, 1000, shift=2.0)
    cal = Calibration.fit(scores, labels)
    assert cal.slope == pytest.approx(2 / math.log(10), rel=0.02)
    assert cal.intercept == pytest.approx(-2 / math.log(10), rel=0.02)


def test_fit_equals_balanced_logistic_regression_in_log10() -> None:
    from sklearn.linear_model import LogisticRegression

    scores, labels = gaussian_pairs(30, 12, shift=1.5)
    cal = Calibration.fit(scores, labels)
    ref = LogisticRegression(class_weight="balanced").fit(scores.reshape(-1, 1), labels)
    assert cal.slope == pytest.approx(float(ref.coef_[0, 0]) / math.log(10), rel=1e-6)
    assert cal.intercept == pytest.approx(float(ref.intercept_[0]) / math.log(10), rel=1e-6)


def test_fit_bounds_grow_with_the_calibration_data() -> None:
    small = Calibration.fit(*gaussian_pairs(10, 10, shift=6.0))
    large = Calibration.fit(*gaussian_pairs(400, 400, shift=6.0))
    assert large.upper > small.upper
    assert large.lower < small.lower


def test_fit_needs_both_kinds_of_pair() -> None:
    with pytest.raises(ValueError, match="both kinds"):
        Calibration.fit(np.array([1.0, 2.0, 3.0]), np.array([1, 1, 1]))
    with pytest.raises(ValueError, match="both kinds"):
        Calibration.fit(np.array([1.0, 2.0, 3.0]), np.array([0, 0, 0]))


def test_fit_does_not_modify_its_inputs() -> None:
    scores, labels = gaussian_pairs(20, 5, shift=3.0)
    before = scores.copy(), labels.copy()
    Calibration.fit(scores, labels)
    np.testing.assert_array_equal(scores, before[0])
    np.testing.assert_array_equal(labels, before[1])


# --------------------------------------------------------------------------------------------------
# Applying
# --------------------------------------------------------------------------------------------------

CAL = Calibration(intercept=-1.0, slope=0.5, lower=-1.5, upper=2.0, n_hp=10, n_hd=40)


def test_transform_is_linear_inside_the_bounds_and_clipped_outside() -> None:
    got = CAL.transform(np.array([-100.0, -1.0, 0.0, 2.0, 4.0, 6.0, 100.0]))
    np.testing.assert_allclose(got, [-1.5, -1.5, -1.0, 0.0, 1.0, 2.0, 2.0])


def test_log10_lr_agrees_with_transform() -> None:
    for score in (-9.0, -1.0, 0.3, 2.0, 5.9, 50.0):
        assert CAL.log10_lr(score) == pytest.approx(float(CAL.transform(np.array([score]))[0]))
    assert isinstance(CAL.log10_lr(1.0), float)


def test_log10_lr_or_zero_weighs_an_undefined_statistic_as_no_evidence() -> None:
    assert CAL.log10_lr_or_zero(float("nan")) == 0.0
    assert math.isnan(CAL.log10_lr(float("nan")))  # the plain map keeps it undefined
    for score in (-9.0, 0.3, 5.9):
        assert CAL.log10_lr_or_zero(score) == CAL.log10_lr(score)


def calibration_set() -> CalibrationSet:
    levels = {level: Calibration.fit(*gaussian_pairs(40, 10, shift=3.0 + i)) for i, level in enumerate(LEVELS)}
    return CalibrationSet(levels=levels, data_sha256="f" * 64, description="fit",
                          metrics={"summary": {"pair_auc": 0.97, "n_cases": 15}})


def test_save_load_round_trip(tmp_path: Path) -> None:
    cal = calibration_set()
    path = cal.save(tmp_path / "cal.json")
    again = CalibrationSet.load(path)
    assert again.to_dict() == json.loads(path.read_text())
    for level in LEVELS:
        for name in ("intercept", "slope", "lower", "upper"):
            assert getattr(again[level], name) == pytest.approx(getattr(cal[level], name), abs=1e-6)
        assert (again[level].n_hp, again[level].n_hd) == (10, 40)
        scores = np.linspace(-3, 8, 23)
        np.testing.assert_allclose(again[level].transform(scores), cal[level].transform(scores), atol=1e-5)
    assert (again.data_sha256, again.description) == ("f" * 64, "fit")
    assert again.metrics == {"summary": {"pair_auc": 0.97, "n_cases": 15}}
    # the file is stable: saving the loaded calibration writes the same bytes
    assert again.save(tmp_path / "again.json").read_bytes() == path.read_bytes()


def test_load_refuses_another_format(tmp_path: Path) -> None:
    data = {**calibration_set().to_dict(), "format_version": FORMAT_VERSION + 1}
    path = tmp_path / "cal.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="format"):
        CalibrationSet.load(path)


def test_load_refuses_a_file_without_every_level(tmp_path: Path) -> None:
    data = calibration_set().to_dict()
    del data["levels"]["comparison"]
    path = tmp_path / "cal.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="comparison"):
        CalibrationSet.load(path)


def test_calibration_record_names_the_file_and_its_hash(tmp_path: Path) -> None:
    cal = calibration_set()
    path = cal.save(tmp_path / "mine.json")
    record = calibration_record(path)
    assert record["calibration_file"] == "mine.json"
    assert record["calibration_sha256"] == sha256_file(path)
    assert record["data_sha256"] == "f" * 64
    assert set(record["levels"]) == set(LEVELS)
    assert record["levels"]["family"]["n_hp"] == 10


# --------------------------------------------------------------------------------------------------
# Cllr
# --------------------------------------------------------------------------------------------------

LABELS = np.array([1] * 5 + [0] * 5)


def test_cllr_of_uninformative_lrs_is_one() -> None:
    value, value_min = cllr(np.zeros(10), LABELS)
    assert value == pytest.approx(1.0)
    assert value_min == pytest.approx(1.0)


def test_cllr_of_strong_correct_lrs_is_near_zero() -> None:
    value, value_min = cllr(np.r_[[3.0] * 5, [-3.0] * 5], LABELS)
    assert value < 0.01
    assert value_min == pytest.approx(0.0, abs=1e-9)


def test_cllr_of_misleading_lrs_exceeds_one() -> None:
    value, value_min = cllr(np.r_[[-2.0] * 5, [2.0] * 5], LABELS)
    assert value > 1.0
    assert value_min <= value


def test_cllr_min_removes_miscalibration_only() -> None:
    """Well-separated but over-stated LRs: Cllr is poor, Cllr_min (after the best monotone map) is 0."""
    value, value_min = cllr(np.r_[[12.0] * 5, [8.0] * 5], LABELS)
    assert value > 1.0
    assert value_min == pytest.approx(0.0, abs=1e-9)


def test_a_family_of_one_member_is_weighed_at_teacher_level() -> None:
    assert [family_level(n) for n in (1, 2, 5)] == ["teacher", "family", "family"]


def words(i: int, n: int = 25) -> str:
    return " ".join(f"w{i}x{k}" for k in range(n))


def test_answer_fingerprints_keep_every_long_answer_whitespace_aside() -> None:
    assert answer_fingerprint("a  b\n c") == answer_fingerprint("a b c") != answer_fingerprint("a b d")
    assert answer_fingerprint("a b c") == "0e9f64031f"  # the first 40 bits of SHA-256("a b c"): any machine
    models = {"m": ("student", [words(i) for i in range(200)]), "short": ("control", ["too short"] * 200)}
    got = answer_fingerprints(models)
    assert got["hex"] == 10 and got["models"]["short"] == {"role": "control", "n": 0, "answers": ""}
    kept = got["models"]["m"]
    assert kept["n"] == 200 and len(kept["answers"]) == 2000
    prints = [kept["answers"][i:i + 10] for i in range(0, 2000, 10)]
    assert prints == sorted(prints)  # nothing of the prompt order is kept


def test_a_suspect_answering_like_a_labelled_model_is_recognised_and_others_are_not() -> None:
    answers = [words(i) for i in range(200)]
    prints = answer_fingerprints({"m": ("student", answers), "n": ("control", [words(i + 1000) for i in range(200)])})
    # a case on a quarter of the benchmark's prompts, reformatted, with answers of its own beside them
    subset = ["  ".join(a.split()) for a in answers[::4]] + [words(i + 9000) for i in range(10)]
    assert labelled_model_matches(subset, prints) == [("m", "student", 50, 60)]
    assert labelled_model_matches([words(i + 5000) for i in range(200)], prints) == []
    assert labelled_model_matches(answers[:2], prints) == []  # fewer than FINGERPRINT_MATCHES: chance
    # a related model that gives 4 of the same long answers among 700 of its own (greedy decoding of siblings
    # does that on a few factual prompts): not the labelled model, and not said to be
    sibling = answers[:4] + [words(i + 7000) for i in range(696)]
    assert labelled_model_matches(sibling, prints) == []
    assert labelled_model_matches(sibling[:30], prints) == [("m", "student", 4, 30)]  # 4 of 30 is a share
    assert labelled_model_matches(answers, None) == []  # a calibration without fingerprints
    assert labelled_model_matches(answers, {"models": {"m": {"answers": 7}}}) == []  # malformed: ignored


def test_the_shipped_calibration_recognises_the_demo_suspect_as_a_labelled_student() -> None:
    """The demo's alpaca-7b answers are AlpacaEval outputs of a labelled student: its case must say so; a
    reference's answers are recognised as that reference's; a model outside the labels as nobody's."""
    from forensics.exchanges import read_exchanges

    demo = Path(__file__).resolve().parents[1] / "data" / "demo" / "exchanges"
    prints = CalibrationSet.load().metrics["labelled_answers"]

    def answers(name: str) -> list[str]:
        frame = read_exchanges(next(demo.glob(f"{name}.*"))).frame
        return [str(r) for r in frame["response"]]

    assert labelled_model_matches(answers("alpaca-7b"), prints)[0][:2] == ("alpaca-7b", "student")
    assert labelled_model_matches(answers("guanaco-13b"), prints)[0][:2] == ("guanaco-13b", "control")
    fresh = [" ".join(reversed(a.split())) for a in answers("alpaca-7b")]
    assert labelled_model_matches(fresh, prints) == []



# --------------------------------------------------------------------------------------------------
# The rival discount
# --------------------------------------------------------------------------------------------------

def rival_pairs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hp pairs that lead; Hd pairs of two kinds: independent (low scores, leading) and trained on a rival
    (as high scores as Hp, but trailing that rival by 0.5 to 1.5): only the lead tells the last apart."""
    hd_scores, hd_labels = gaussian_pairs(200, 0, shift=0.0)
    hp_scores = 2.0 + norm.ppf((np.arange(100) + 0.5) / 100)
    sibling_scores = 2.0 + norm.ppf((np.arange(100) + 0.5) / 100)[::-1]
    scores = np.r_[hd_scores, sibling_scores, hp_scores]
    labels = np.r_[hd_labels, np.zeros(100, dtype=int), np.ones(100, dtype=int)]
    leads = np.r_[np.zeros(200), np.linspace(0.5, 1.5, 100), np.zeros(100)]
    return scores, labels, leads


def test_the_rival_discount_is_fitted_where_trailing_pairs_are_independent() -> None:
    scores, labels, leads = rival_pairs()
    cal = Calibration.fit(scores, labels, leads=leads)
    assert cal.rival_slope > 0.5
    # a leader is weighed by the plain calibration: the discount is fitted after it, with it fixed
    plain = Calibration.fit(scores, labels)
    assert (cal.intercept, cal.slope) == (plain.intercept, plain.slope)
    assert cal.log10_lr(2.0, 1.0) < cal.log10_lr(2.0) == pytest.approx(
        min(plain.intercept + plain.slope * 2.0, cal.upper))
    # and the discount sharpens the separation of the labelled pairs
    own, without = cal.transform(scores, leads), plain.transform(scores)
    assert cllr(own, labels)[0] < cllr(without, labels)[0]


def test_the_discount_never_raises_the_strongest_lr_a_leader_can_get() -> None:
    """ELUB on the discounted LRs may allow a stronger upper bound (they separate the pairs better); the
    upper bound stays the plain calibration's at most, so a leader is never weighed more strongly."""
    scores, labels, leads = rival_pairs()
    groups = np.arange(len(scores)) % 2
    cal = Calibration.fit(scores, labels, leads=leads, groups=groups)
    plain = Calibration.fit(scores, labels, groups=groups)
    assert cal.upper <= plain.upper
    assert cal.log10_lr(100.0) <= plain.log10_lr(100.0)


def test_no_lr_is_raised_towards_hp_by_the_discount() -> None:
    """Over a grid of scores and leads, the discounted LR is never above the plain calibration's, except at
    the lower (Hd-side) bound, which is re-estimated from the discounted LRs."""
    scores, labels, leads = rival_pairs()
    cal, plain = Calibration.fit(scores, labels, leads=leads), Calibration.fit(scores, labels)
    grid_scores, grid_leads = np.meshgrid(np.linspace(-5, 8, 131), np.linspace(0, 3, 31))
    new = cal.transform(grid_scores.ravel(), grid_leads.ravel())
    old = plain.transform(grid_scores.ravel())
    assert np.all((new <= old + 1e-12) | (new == cal.lower))


def test_the_rival_slope_is_scikit_learns_balanced_l2_logistic_regression() -> None:
    """With no offset, the discount is a logistic regression through the origin on the lead, with
    scikit-learn's class balancing and default L2 penalty (C = 1), which lir's calibrator uses for the slope."""
    from sklearn.linear_model import LogisticRegression

    from forensics.calibration import _rival_slope

    rng = np.random.default_rng(3)
    leads = np.r_[rng.uniform(0, 1, 30), rng.uniform(0.5, 2.0, 70)]
    labels = np.r_[np.ones(30, dtype=int), np.zeros(70, dtype=int)]
    ref = LogisticRegression(class_weight="balanced", fit_intercept=False).fit(leads.reshape(-1, 1), labels)
    assert _rival_slope(np.zeros(100), leads, labels) == pytest.approx(-ref.coef_[0, 0] / math.log(10), rel=1e-4)


def test_rival_leads_must_be_one_finite_non_negative_value_per_pair() -> None:
    scores, labels, leads = rival_pairs()
    for bad in (leads[:-1], np.where(leads > 1.0, np.nan, leads), -leads - 0.1):
        with pytest.raises(ValueError, match="rival leads"):
            Calibration.fit(scores, labels, leads=bad)


def test_no_lead_no_discount_and_never_a_bonus() -> None:
    scores, labels, leads = rival_pairs()
    assert Calibration.fit(scores, labels, leads=np.zeros(len(scores))).rival_slope == 0.0
    # trailing Hp pairs and leading Hd pairs would call for a negative slope: it stays 0 (never a bonus)
    assert Calibration.fit(scores, labels, leads=np.where(labels == 1, 1.0, 0.0)).rival_slope == 0.0


def test_transform_and_log10_lr_take_the_rival_lead_off_before_clipping() -> None:
    cal = Calibration(intercept=0.0, slope=1.0, lower=-1.0, upper=1.0, n_hp=1, n_hd=1, rival_slope=0.5)
    np.testing.assert_allclose(cal.transform(np.array([0.5, 0.5, 3.0, 3.0]), np.array([0.0, 1.0, 2.0, 8.0])),
                               [0.5, 0.0, 1.0, -1.0])
    assert cal.log10_lr(0.5, 1.0) == 0.0 and cal.log10_lr(0.5) == 0.5
    np.testing.assert_allclose(cal.transform(np.array([0.5])), [0.5])  # no leads given: none taken off


def test_an_older_calibration_without_a_rival_slope_loads_without_a_discount(tmp_path: Path) -> None:
    data = json.loads(DEFAULT_CALIBRATION.read_text(encoding="utf-8"))
    for level in data["levels"].values():
        level.pop("rival_slope", None)
    old = tmp_path / "old.json"
    old.write_text(json.dumps(data), encoding="utf-8")
    assert all(c.rival_slope == 0.0 for c in CalibrationSet.load(old).levels.values())
