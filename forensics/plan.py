"""How many prompts a full collection needs, estimated from a pilot run (``forensics plan RUN_DIR``).

Why: querying a suspect and a panel of a dozen models costs money and time, so an investigator runs a
pilot of a few hundred prompts first and asks how far to scale it. The answer comes from the pilot's own
prompt bootstrap: the spread of a candidate's fused score shrinks like 1/sqrt(n) with the number of prompts
n (the score is a mean over prompts), while its point estimate stays where it is. So for each candidate:

* the score interval at N prompts is ``score +- halfwidth * sqrt(n / N)`` (the half-width on the side
  facing the inconclusive band, from ``score_ci95``), mapped to a log10 LR by the run's calibration;
* N is the smallest count for which that whole interval lies outside the inconclusive band;
* when the point estimate's LR itself sits inside the band, no N will do: more prompts only tighten the
  interval around an inconclusive value. The panel (how much the references' own affinities vary) and the
  calibration's bounds are the limit, and the advice says so.

Every other candidate is held at its pilot score. The calibration's rival discount weighs how far the best
candidate of another family scores above this one, so below that score (a trailing candidate's rival's, or a
leader's runner-up's: the best of the other families, which a leader's interval may reach below) the LR
moves by the slope plus the rival slope, above it by the slope alone. The other candidates' scores move with
more prompts too, which the estimate does not model.

It assumes the full collection is drawn like the pilot (same prompt distribution, same sources) and reads
``findings.json`` defensively: fields it does not know are ignored, missing ones make that candidate's
estimate "unknown" rather than an error.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from forensics import weighing
from forensics.calibration import CALIBRATION_DIR, DEFAULT_CALIBRATION, Calibration, CalibrationSet
from forensics.case import MIN_PANEL_FAMILIES, panel_families
from forensics.custody import sha256_file
from forensics.errors import ForensicsError
from forensics.lr_words import as_number

DEFAULT_BAND = (-math.log10(2), math.log10(2))
#: Estimates above this are reported as "more than" it: far beyond any collection the pilot speaks for.
MAX_PROMPTS = 10_000_000


@dataclass(frozen=True)
class Estimate:
    """The plan for one candidate teacher."""

    name: str
    log10_lr: float | None
    supports: str            # what the pilot says now: "Hp", "Hd", "inconclusive" or "unknown"
    verdict: str             # "enough", "collect", "panel-limited" or "unknown"
    prompts_needed: int | None
    message: str


def load_findings(run_dir: str | Path) -> dict[str, Any]:
    """The pilot's findings, refused in one line when they are not shaped as a run writes them (the parts
    this plan reads: a hand-edited or truncated file must not end in a traceback)."""
    path = Path(run_dir) / "findings.json"
    fix = "give the folder of a finished run (forensics run CASE --out DIR)"
    try:
        findings = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ForensicsError(f"cannot read the pilot's findings: {exc}", path=path, fix=fix) from None
    problem = _shape_problem(findings)
    if problem:
        raise ForensicsError(f"the pilot's findings are not as a run writes them: {problem}", path=path, fix=fix)
    return findings


def _shape_problem(findings: Any) -> str | None:
    if not isinstance(findings, dict):
        return "the file is not a JSON object"
    for key in ("validation", "parameters", "data"):
        if not isinstance(findings.get(key) or {}, dict):
            return f"'{key}' is not an object"
    teachers = findings.get("teachers") or []
    if not isinstance(teachers, list) or not all(isinstance(t, dict) for t in teachers):
        return "'teachers' is not a list of objects"
    band = (findings.get("parameters") or {}).get("inconclusive_band")
    if band is not None and not (isinstance(band, list) and len(band) == 2
                                 and all(as_number(b) is not None for b in band) and band[0] <= band[1]):
        return "'parameters.inconclusive_band' is not two finite numbers, the lower first"
    return None


def calibration_path(findings: Mapping[str, Any]) -> Path:
    """The calibration file the pilot used (by the name it recorded, a file of the package's calibration
    folder and nothing else), else the shipped one."""
    name = (findings.get("validation") or {}).get("calibration_file")
    inside = isinstance(name, str) and name == Path(name).name and name not in ("", ".", "..")
    return CALIBRATION_DIR / name if inside and (CALIBRATION_DIR / name).is_file() else DEFAULT_CALIBRATION


def calibration_of(findings: Mapping[str, Any]) -> Calibration:
    """The teacher-level calibration the pilot used: the candidates' LRs against independence."""
    return CalibrationSet.load(calibration_path(findings))["teacher"]


def _band(findings: Mapping[str, Any]) -> tuple[float, float]:
    band = (findings.get("parameters") or {}).get("inconclusive_band") or DEFAULT_BAND
    return float(band[0]), float(band[1])


def _n_prompts(findings: Mapping[str, Any], teacher: Mapping[str, Any]) -> int | None:
    n = as_number((findings.get("data") or {}).get("n_prompts_analysed"))
    if n is None:
        evidence = teacher.get("evidence")
        lines = evidence.values() if isinstance(evidence, Mapping) else []
        n = next((as_number(line.get("n_prompts")) for line in lines
                  if isinstance(line, Mapping) and as_number(line.get("n_prompts"))), None)
    return int(n) if n else None


def prompts_needed(score: float, ci95: tuple[float, float], n: int, cal: Calibration,
                   band: tuple[float, float], rival_lead: float = 0.0,
                   runner_up: float | None = None) -> tuple[str, int | None]:
    """``(verdict, N)`` for one candidate: see the module docstring. ``N`` is None unless "collect"/"enough".

    ``rival_lead``: how far the best candidate of another family scores above this one (0 for a leader);
    ``runner_up``: for a leader, the best score of another family (None where there is none)."""
    point = cal.log10_lr(score, rival_lead)
    low_edge, high_edge = band
    if low_edge <= point <= high_edge or cal.slope == 0:
        return "panel-limited", None
    edge = high_edge if point > high_edge else low_edge
    held = score + rival_lead if rival_lead > 0 else (runner_up if runner_up is not None and runner_up <= score
                                                       else None)
    edge_score = score_at(edge, cal, held)
    distance = abs(score - edge_score)
    toward_band = score - ci95[0] if edge_score < score else ci95[1] - score
    if toward_band <= 0:
        return "enough", n
    needed = math.ceil(n * (toward_band / distance) ** 2)
    return ("enough", n) if needed <= n else ("collect", min(needed, MAX_PROMPTS))


def score_at(log10_lr: float, cal: Calibration, rival_score: float | None = None) -> float:
    """The candidate's score at which its (unbounded) LR is ``log10_lr``, the rival's score held (module
    docstring): at or above the rival's score the plain map, below it the discounted one,
    ``a + b * s - c * (rival_score - s)``, which rises by ``b + c`` per unit and meets the plain map there."""
    plain = (log10_lr - cal.intercept) / cal.slope
    if rival_score is None or plain >= rival_score:
        return plain
    return (log10_lr - cal.intercept + cal.rival_slope * rival_score) / (cal.slope + cal.rival_slope)


def estimate(findings: Mapping[str, Any], cal: Calibration | None = None) -> list[Estimate]:
    """One :class:`Estimate` per candidate teacher of the pilot's findings."""
    cal = cal or calibration_of(findings)
    band = _band(findings)
    teachers = findings.get("teachers") or []
    runner_ups = _best_of_other_families(teachers)
    return [_estimate_one(t, _n_prompts(findings, t), cal, band, runner_ups[i]) for i, t in enumerate(teachers)]


def _best_of_other_families(teachers: list[Mapping[str, Any]]) -> list[float | None]:
    """Per candidate of the pilot: the best score among the candidates of other families (the families the
    run recorded; a candidate without one is one of its own), None where there is none
    (:func:`forensics.weighing.best_of_other_families`)."""
    keys = [str(i) for i in range(len(teachers))]  # positions: a malformed file may repeat a name
    scores = {k: as_number(t.get("score")) for k, t in zip(keys, teachers, strict=True)}
    groups: dict[str, list[str]] = {}
    for k, t in zip(keys, teachers, strict=True):
        family = t.get("family")
        groups.setdefault(f"family\0{family}" if isinstance(family, str) and family else f"own\0{k}", []).append(k)
    best = weighing.best_of_other_families({k: math.nan if v is None else v for k, v in scores.items()}, groups)
    return [None if best[k] is None else scores[best[k]] for k in keys]


def _estimate_one(teacher: Mapping[str, Any], n: int | None, cal: Calibration,
                  band: tuple[float, float], runner_up: float | None = None) -> Estimate:
    name = str(teacher.get("name", "?"))
    score, ci = as_number(teacher.get("score")), teacher.get("score_ci95")
    ci = [as_number(v) for v in ci] if isinstance(ci, list) and len(ci) == 2 else [None, None]
    lr = as_number(teacher.get("log10_lr"))
    now = str(teacher.get("supports", "unknown"))
    if score is None or n is None or ci[0] is None or ci[1] is None:
        return Estimate(name, lr, now, "unknown", None, "no bootstrap interval in the pilot's findings: "
                        "re-run the pilot with bootstrap > 0")
    lead = max(0.0, as_number(teacher.get("rival_lead")) or 0.0)  # a malformed negative lead is no bonus
    verdict, needed = prompts_needed(score, (ci[0], ci[1]), n, cal, band, lead, runner_up)
    return Estimate(name, lr, now, verdict, needed, _message(verdict, needed, n, cal, band, score, lead))


def _message(verdict: str, needed: int | None, n: int, cal: Calibration, band: tuple[float, float],
             score: float, rival_lead: float = 0.0) -> str:
    if verdict == "panel-limited":
        rival = (f", after the rival discount for a candidate of another family that scores {rival_lead:.2f} "
                 "higher" if rival_lead > 0 and cal.rival_slope > 0 else "")
        return (f"more prompts will not help: the LR itself ({cal.log10_lr(score, rival_lead):+.2f} log10{rival}) "
                f"is inside the inconclusive band [{band[0]:+.2f}, {band[1]:+.2f}]; the panel (and the "
                f"calibration's bounds {cal.lower:+.2f} to {cal.upper:+.2f}) is the limit: add reference models or "
                f"labelled cases, not prompts")
    if verdict == "enough":
        return f"the pilot's {n} prompts already put the whole interval outside the inconclusive band"
    more = "more than " if needed == MAX_PROMPTS else "about "
    return (f"{more}{needed:,} prompts ({needed / n:.1f}x the pilot's {n}) put the 95% interval of the LR "
            f"outside the inconclusive band, if the full collection is drawn like the pilot")


def plan(run_dir: str | Path) -> dict[str, Any]:
    """The plan for a pilot run folder, as a JSON-ready dict."""
    findings = load_findings(run_dir)
    cal = calibration_of(findings)
    recorded = (findings.get("validation") or {}).get("calibration_sha256")
    used = calibration_path(findings)
    return {
        "run_dir": str(run_dir),
        "n_prompts_pilot": (findings.get("data") or {}).get("n_prompts_analysed"),
        "inconclusive_band": list(_band(findings)),
        "calibration_matches_pilot": recorded is None or recorded == sha256_file(used),
        "n_references": _n_references(findings),
        "n_panel_lines": _n_panel_lines(findings),
        "teachers": [asdict(e) for e in estimate(findings, cal)],
    }


def _n_references(findings: Mapping[str, Any]) -> int | None:
    """The pilot's reference panel size (None where the findings do not list it)."""
    panel = findings.get("panel")
    return sum(1 for p in panel if isinstance(p, Mapping)) if isinstance(panel, list) else None


def _n_panel_lines(findings: Mapping[str, Any]) -> int | None:
    """The pilot's panel's model lines (references sharing a family count once; None where the findings do
    not list the panel)."""
    panel = findings.get("panel")
    if not isinstance(panel, list):
        return None
    members = {f"{i}\0{p.get('name')}": p.get("family") for i, p in enumerate(panel) if isinstance(p, Mapping)}
    return panel_families(list(members), {k: v if isinstance(v, str) else None for k, v in members.items()})


def plan_lines(result: Mapping[str, Any]) -> list[str]:
    """What ``forensics plan`` prints: one line per candidate, then a caveat when it applies."""
    lines = [f"pilot: {result['n_prompts_pilot']} prompts; inconclusive band "
             f"[{result['inconclusive_band'][0]:+.2f}, {result['inconclusive_band'][1]:+.2f}] (log10 LR)"]
    for t in result["teachers"]:
        lr = "n/a" if t["log10_lr"] is None else f"{t['log10_lr']:+.2f}"
        lines.append(f"{t['name']}: log10 LR {lr} ({t['supports']}) -> {t['verdict']}: {t['message']}")
    if not result["calibration_matches_pilot"]:
        lines.append("note: the calibration file changed since the pilot ran; estimates use the current one")
    n_refs, n_lines = result.get("n_references"), result.get("n_panel_lines")
    if n_lines is not None and n_lines < MIN_PANEL_FAMILIES:
        lines.append(f"note: the pilot's {n_refs} reference models are all of one model line; with fewer than "
                     f"{MIN_PANEL_FAMILIES} lines no candidate is named however many prompts are collected: add "
                     f"independent references (other developers, other training data)")
    return lines
