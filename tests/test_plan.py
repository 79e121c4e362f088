"""``forensics plan``: prompts needed for each candidate's LR interval to leave the inconclusive band.

Findings here are small dicts shaped like a real run's (test_pipeline.py runs ``forensics plan`` on a real
run folder too); the shipped calibration maps scores to LRs.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from forensics.calibration import DEFAULT_CALIBRATION, Calibration, CalibrationSet
from forensics.cli import main
from forensics.plan import MAX_PROMPTS, calibration_path, estimate, plan, prompts_needed

BAND = (-math.log10(2), math.log10(2))


@pytest.fixture(scope="module")
def cal() -> Calibration:
    return CalibrationSet.load()["teacher"]


def findings(*teachers: dict, n: int = 100) -> dict:
    return {"data": {"n_prompts_analysed": n}, "parameters": {"inconclusive_band": list(BAND)},
            "teachers": list(teachers), "validation": {"calibration_file": "default.json"},
            "some_future_field": {"families": []}}


def teacher(name: str, score: float | None, ci: list | None, cal: Calibration) -> dict:
    lr = None if score is None else cal.log10_lr(score)
    return {"name": name, "score": score, "score_ci95": ci, "log10_lr": lr, "supports": "?"}


def lr_interval(cal: Calibration, score: float, half: float, n: int, big_n: int) -> tuple[float, float]:
    h = half * math.sqrt(n / big_n)
    return cal.log10_lr(score - h), cal.log10_lr(score + h)


def outside(interval: tuple[float, float]) -> bool:
    return interval[0] > BAND[1] or interval[1] < BAND[0]


def score_at(cal: Calibration, log10_lr: float) -> float:
    """The score the calibration maps to this log10 LR (so the tests follow whatever calibration ships)."""
    return (log10_lr - cal.intercept) / cal.slope


def needed_by_search(cal: Calibration, score: float, half: float, n: int) -> int:
    """An independent count: the smallest N whose scaled interval leaves the band."""
    big_n = n
    while not outside(lr_interval(cal, score, half, n, big_n)):
        big_n += 1
    return big_n


#: (log10 LR of the point estimate, bootstrap half-width in score units): intervals that straddle the band
CASES = [(0.6, 0.5), (0.5, 0.6), (-0.7, 0.7), (0.8, 3.0)]


@pytest.mark.parametrize(("lr", "half"), CASES)
def test_needed_is_the_smallest_count_that_leaves_the_band(cal: Calibration, lr: float, half: float) -> None:
    score = score_at(cal, lr)
    verdict, needed = prompts_needed(score, (score - half, score + half), 100, cal, BAND)
    assert verdict == "collect" and needed > 100
    assert outside(lr_interval(cal, score, half, 100, needed))
    assert not outside(lr_interval(cal, score, half, 100, needed - 1))


def test_a_trailing_candidate_is_planned_with_its_rival_held() -> None:
    """A trailing candidate's LR weighs its lead over it (the rival discount); the plan holds the rival's
    score, so the lead moves with the candidate's own score, and the count agrees with a direct search over
    that LR."""
    cal = Calibration(intercept=-1.0, slope=1.0, lower=-2.0, upper=2.0, n_hp=1, n_hd=1, rival_slope=0.5)
    score, lead, half = 1.8, 0.5, 0.5

    def lr(s: float) -> float:
        return cal.log10_lr(s, max(0.0, score + lead - s))

    def leaves(big_n: int) -> bool:
        return lr(score - half * math.sqrt(100 / big_n)) > BAND[1]

    verdict, needed = prompts_needed(score, (score - half, score + half), 100, cal, BAND, rival_lead=lead)
    assert verdict == "collect" and leaves(needed) and not leaves(needed - 1)
    assert needed > prompts_needed(score, (score - half, score + half), 100, cal, BAND)[1]  # the discount costs
    assert prompts_needed(1.5, (1.4, 1.6), 100, cal, BAND) == ("enough", 100)
    assert prompts_needed(1.5, (1.4, 1.6), 100, cal, BAND, rival_lead=0.4) == ("panel-limited", None)
    pilot = {"name": "t", "score": score, "score_ci95": [score - half, score + half], "log10_lr": lr(score),
             "supports": "Hp", "rival_lead": lead}
    assert estimate(findings(pilot), cal)[0].prompts_needed == needed
    limited = dict(pilot, score=1.5, score_ci95=[1.4, 1.6], rival_lead=0.4)
    assert "after the rival discount" in estimate(findings(limited), cal)[0].message
    near = dict(pilot, score=1.35, score_ci95=[1.3, 1.4], rival_lead=0.0)  # its interval touches the band
    bonus = dict(near, rival_lead=-0.4)  # malformed: no bonus
    assert estimate(findings(bonus), cal)[0].verdict == estimate(findings(near), cal)[0].verdict == "collect"


def test_a_leader_is_planned_with_its_runner_up_held() -> None:
    """A leader whose interval reaches below the best candidate of another family would be discounted there:
    the plan holds that runner-up's score (read from the pilot's other candidates; a sibling is no rival), so
    the count agrees with a direct search over the LR the pipeline would give, and is larger than without."""
    cal = Calibration(intercept=-1.0, slope=1.0, lower=-2.0, upper=2.0, n_hp=1, n_hd=1, rival_slope=0.5)
    score, runner_up, half = 1.8, 1.6, 0.8

    def lr(s: float) -> float:
        return cal.log10_lr(s, max(0.0, runner_up - s))

    def leaves(big_n: int) -> bool:
        return lr(score - half * math.sqrt(100 / big_n)) > BAND[1]

    verdict, needed = prompts_needed(score, (score - half, score + half), 100, cal, BAND, runner_up=runner_up)
    alone = prompts_needed(score, (score - half, score + half), 100, cal, BAND)[1]
    assert verdict == "collect" and leaves(needed) and not leaves(needed - 1) and needed > alone
    leader = {"name": "t", "family": "F", "score": score, "score_ci95": [score - half, score + half],
              "log10_lr": lr(score), "supports": "Hp", "rival_lead": 0.0}
    other = {"name": "u", "family": "G", "score": runner_up, "score_ci95": [1.5, 1.7], "log10_lr": lr(runner_up),
             "supports": "Hp", "rival_lead": 0.0}
    sibling = dict(other, name="v", family="F", score=1.75)
    by = {e.name: e for e in estimate(findings(leader, other, sibling), cal)}
    assert by["t"].prompts_needed == needed
    assert estimate(findings(leader, dict(other, family="F")), cal)[0].prompts_needed == alone
    assert estimate(findings(leader, dict(other, family=None, name="w")), cal)[0].prompts_needed == needed


def test_pilot_already_enough_and_panel_limited(cal: Calibration) -> None:
    sure = score_at(cal, 0.9)
    assert prompts_needed(sure, (sure - 0.1, sure + 0.1), 100, cal, BAND) == ("enough", 100)
    inside = (BAND[1] - cal.intercept) / cal.slope - 0.05  # LR just inside the band
    assert prompts_needed(inside, (inside - 0.01, inside + 0.01), 100, cal, BAND) == ("panel-limited", None)


def test_estimate_reads_findings_defensively(cal: Calibration) -> None:
    a = score_at(cal, 0.6)
    b = score_at(cal, 0.1)  # the point LR inside the band: more prompts will not help
    one = [teacher("a", a, [a - 0.5, a + 0.5], cal), teacher("b", b, [b - 0.4, b + 0.4], cal),
           teacher("c", None, None, cal), {"name": "d"}, teacher("e", a, [a - 0.5, 1e9], cal)]
    # one family: no candidate is another's rival (the runner-up test covers that)
    result = estimate(findings(*(dict(t, family="F") for t in one)))
    by = {e.name: e for e in result}
    assert by["a"].verdict == "collect" and by["a"].prompts_needed == needed_by_search(cal, a, 0.5, 100)
    assert by["b"].verdict == "panel-limited" and "will not help" in by["b"].message
    assert by["c"].verdict == by["d"].verdict == "unknown"
    assert by["e"].verdict == "collect"  # the lower side is what matters for a candidate above the band
    huge = prompts_needed(0.5 + (BAND[1] - cal.intercept) / cal.slope, (-1e6, 1e6), 100, cal, BAND)
    assert huge == ("collect", MAX_PROMPTS)


def test_cli_prints_a_line_per_candidate_and_json(cal: Calibration, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    a = score_at(cal, 0.6)
    (tmp_path / "findings.json").write_text(json.dumps(findings(teacher("a", a, [a - 0.5, a + 0.5], cal))))
    expected = needed_by_search(cal, a, 0.5, 100)
    assert main(["plan", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "pilot: 100 prompts" in out and "a: log10 LR" in out and f"about {expected:,} prompts" in out
    assert main(["plan", str(tmp_path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["teachers"][0]["prompts_needed"] == expected and data["calibration_matches_pilot"]
    assert plan(tmp_path)["n_prompts_pilot"] == 100
    assert main(["plan", str(tmp_path / "nowhere")]) != 0


def test_a_pilot_with_references_of_one_model_line_is_told_that_more_prompts_will_not_name_anyone(
        cal: Calibration, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = score_at(cal, 0.6)
    pilot = findings(teacher("a", a, [a - 0.5, a + 0.5], cal))
    one_line = [{"name": f"r{i}", "role": "reference", "family": "R"} for i in range(3)]
    distinct = [{"name": f"other{i}", "role": "reference"} for i in range(2)]
    for panel, warned, lines in ((one_line, True, 1), (distinct, False, 2), (one_line[:2] + distinct[:1], False, 2)):
        pilot["panel"] = panel
        (tmp_path / "findings.json").write_text(json.dumps(pilot))
        assert main(["plan", str(tmp_path)]) == 0
        out = capsys.readouterr().out
        assert ("no candidate is named however many prompts" in out) is warned
        assert plan(tmp_path)["n_references"] == len(panel) and plan(tmp_path)["n_panel_lines"] == lines


@pytest.mark.parametrize("broken", [
    [], {"validation": "x"}, {"parameters": {"inconclusive_band": [1]}},
    {"parameters": {"inconclusive_band": ["a", "b"]}}, {"teachers": "abc"}, {"teachers": [1, 2]},
    {"parameters": {"inconclusive_band": [float("nan"), float("nan")]}},
    {"parameters": {"inconclusive_band": [0.5, -0.5]}},
])
def test_a_malformed_pilot_is_refused_in_one_line(broken: object, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "findings.json").write_text(json.dumps(broken))
    assert main(["plan", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "findings.json" in err and "not as a run writes them" in err


def test_odd_values_and_a_calibration_outside_the_package_are_not_followed(cal: Calibration,
                                                                            tmp_path: Path) -> None:
    a = score_at(cal, 0.6)
    pilot = findings(teacher("a", a, [a - 0.5, a + 0.5], cal),
                     {"name": "b", "score": "1.2", "score_ci95": "wide", "evidence": "none"})
    pilot["validation"]["calibration_file"] = "../../../../../../etc/passwd"
    (tmp_path / "findings.json").write_text(json.dumps(pilot))
    result = plan(tmp_path)
    assert [t["verdict"] for t in result["teachers"]] == ["collect", "unknown"]
    assert calibration_path(pilot) == DEFAULT_CALIBRATION  # not the path the file names
