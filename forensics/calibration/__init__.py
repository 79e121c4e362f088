"""Scores to likelihood ratios: a small adapter over NFI's ``lir`` (pinned in constraints.txt).

Three proposition pairs are calibrated, each on its own labelled pairs (:data:`LEVELS`):

- ``teacher``: the fused panel-relative score of a (suspect, teacher) pair -> log10 LR for Hp "the suspect
  was trained on this teacher's outputs" against Hd "it was developed independently of it";
- ``family``: the score of a (suspect, family) pair (its best member's) -> log10 LR for Hp "trained on
  outputs of some model of this family" against Hd "developed independently of every model of it". It
  weighs families of several members (:func:`family_level`): a family of one member is that member, the
  same propositions and the same statistic, so it carries its member's teacher-level LR;
- ``comparison``: the suspect's preference for candidate A over B
  (:func:`forensics.weighing.comparison_statistic`: the semantic preference z and the fused scores'
  difference; families through their best members) -> log10 LR for "trained on A rather than B" against
  "trained on B rather than A" (fitted on mirrored pairs, so LR(A, B) = 1 / LR(B, A)).

Each is a logistic-regression calibration (``lir``'s ``LogitCalibrator``, class-balanced so the share of
Hp pairs does not act as a prior), bounded by the empirical lower and upper bounds (ELUB, Vergeer et al.
2016) that the calibration data can support. ``lir``'s API changed across releases; everything that
touches it is in this module.

**The rival discount** (teacher and family levels, since panel-relative-fused-v11). Hd "developed
independently of T" includes suspects trained on *another* candidate, and a candidate resembles the suspect
partly through its resemblance to that one (sibling model lines of one vendor share a register). So the
evidence about T is its score *and* its rival lead: how far the best-scoring candidate outside T's family
scores above T (:func:`forensics.weighing.rival_leads`; 0 when T leads). The LR is
``a + b * score - c * lead``: ``a`` and ``b`` are the plain calibration above, fitted first and kept, and
``c >= 0`` (``rival_slope``) is then fitted on the same labelled pairs with that calibration as a fixed
offset. A candidate that leads is thus weighed by the same map of its score as without the discount, and one
that trails can only lose support. The upper ELUB bound is never above the plain calibration's (the
discounted LRs separate the pairs better and could earn a higher one, but that would raise the strongest LR a
leader can get), so the discount never raises an LR towards Hp; the lower bound is that of the discounted
LRs, re-estimated like any ELUB bound, so at that bound (strong support for Hd) a value may move by
hundredths either way. (Scoring a family less a share of its
best rival's score, measured before, refitted the whole calibration and made it more liberal for leaders,
controls among them.)
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from forensics.custody import atomic_write_json, sha256_file, sha256_text
from forensics.scoring import jsonable

CALIBRATION_DIR = Path(__file__).resolve().parent  # the package folder holds the shipped calibration
DEFAULT_CALIBRATION = CALIBRATION_DIR / "default.json"
FORMAT_VERSION = 2
#: The calibrated proposition pairs (module docstring).
LEVELS = ("teacher", "family", "comparison")


def family_level(n_members: int) -> str:
    """The calibration level that weighs a family of ``n_members`` candidates: ``family``, or ``teacher`` for
    a family of one.

    Why: for a family of one, "trained on some model of F" *is* "trained on its member", and the family's
    score is its member's, so anything but the member's LR would state two strengths for one proposition (a
    report read "the teacher is supported, its family is not" for a one-member family: the family
    calibration, fitted mostly on best-of-several scores, is stricter than the teacher calibration at the same
    score). Where every teacher is its own family, the family level thus adds nothing to the teacher level.
    """
    return "teacher" if n_members == 1 else "family"


#: ENFSI (2015) verbal equivalents, as upper bounds of the LR (not log) for each phrase.
VERBAL_SCALE: tuple[tuple[float, str], ...] = (
    (2.0, "no meaningful support"),
    (10.0, "weak support"),
    (100.0, "moderate support"),
    (1_000.0, "moderately strong support"),
    (10_000.0, "strong support"),
    (1_000_000.0, "very strong support"),
    (float("inf"), "extremely strong support"),
)


def verbal(log10_lr: float) -> str:
    """ENFSI verbal equivalent of a log10 LR: the phrase alone, as ``findings.json`` carries it.

    The same words serve both directions (an LR below 1 is read inverted, for Hd); which proposition they
    support is the sign of the log10 LR (and ``supports``), so a reader of the file can match the phrase
    against the scale (CONTRACTS.md shows ``"verbal": "moderately strong support"``). Sentences for people
    use :func:`verbal_for`, which names the proposition.
    """
    if not np.isfinite(log10_lr):
        raise ValueError(f"no verbal equivalent for log10 LR {log10_lr}")
    magnitude = 10 ** abs(log10_lr)
    return next(phrase for upper, phrase in VERBAL_SCALE if magnitude < upper)


def verbal_for(log10_lr: float) -> str:
    """The verbal equivalent with the proposition it supports, as the report writes it: "moderate support
    for Hp", "weak support for Hd"; LR 1 exactly is "no support for either proposition"."""
    phrase = verbal(log10_lr)
    if log10_lr == 0:
        return "no support for either proposition"
    return f"{phrase} for {'Hp' if log10_lr > 0 else 'Hd'}"


#: The phrases :func:`verbal` can return (the contract's allowed values of ``verbal``).
VERBAL_PHRASES: tuple[str, ...] = tuple(phrase for _, phrase in VERBAL_SCALE)


def supports(log10_lr: float, band: tuple[float, float]) -> str:
    """"Hp", "Hd" or "inconclusive" (inside the band, both ends included in the band)."""
    low, high = band
    if log10_lr > high:
        return "Hp"
    if log10_lr < low:
        return "Hd"
    return "inconclusive"


@dataclass
class Calibration:
    """A fitted score -> log10 LR map: ``log10_lr = clip(a + b * score - c * rival_lead, lower, upper)``
    (``c`` is ``rival_slope``, 0 for the comparison level; module docstring, "The rival discount")."""

    intercept: float
    slope: float
    lower: float
    upper: float
    n_hp: int
    n_hd: int
    rival_slope: float = 0.0

    @classmethod
    def fit(cls, scores: np.ndarray, labels: np.ndarray, *, leads: np.ndarray | None = None,
            groups: np.ndarray | None = None) -> Calibration:
        """Fit the logistic calibration on pairs (``labels`` 1 = Hp, 0 = Hd), then the rival discount on
        ``leads`` (each pair's rival lead; None: no discount), and bound the result by ELUB.

        ``groups``: which set of pairs each pair belongs to, each set observing every labelled model once (one
        prompt set's pairs, say). When the fit pools several such sets of the *same* models, the pooled pairs
        are not independent, and ELUB on all of them would count each model several times and overstate what
        the data support; the bounds are then the median of the bounds each set supports on its own (one
        set's worth of evidence). Without it, ELUB is computed on all the fitted pairs.
        """
        from lir.algorithms.logistic_regression import LogitCalibrator

        scores = np.asarray(scores, dtype=float)
        labels = np.asarray(labels, dtype=int)
        if labels.min() == labels.max():
            raise ValueError("calibration needs pairs of both kinds (Hp and Hd)")
        calibrator = LogitCalibrator().fit(scores, labels)
        intercept = float(np.ravel(calibrator._logit.intercept_)[0] / np.log(10))
        slope = float(np.ravel(calibrator._logit.coef_)[0] / np.log(10))
        leads = _checked_leads(leads, len(scores))
        plain = intercept + slope * scores
        rival_slope = _rival_slope(plain, leads, labels)
        groups = np.zeros(len(scores)) if groups is None else np.asarray(groups)
        lower, upper = _median_elub(plain - rival_slope * leads, labels, groups)
        if rival_slope > 0:  # the discount may not raise the strongest LR a leader can get (module docstring)
            upper = min(upper, _median_elub(plain, labels, groups)[1])
        return cls(intercept=intercept, slope=slope, lower=lower, upper=upper,
                   n_hp=int(labels.sum()), n_hd=int((1 - labels).sum()), rival_slope=rival_slope)

    def log10_lr(self, score: float, rival_lead: float = 0.0) -> float:
        return float(np.clip(self.intercept + self.slope * score - self.rival_slope * rival_lead,
                             self.lower, self.upper))

    def log10_lr_or_zero(self, score: float) -> float:
        """:meth:`log10_lr`, or 0 (no evidence either way) where the statistic is undefined: how a
        candidate-vs-candidate comparison without a statistic (the panel shows no spread of the semantic preference)
        is weighed, by the pipeline and by the validation alike."""
        return self.log10_lr(score) if np.isfinite(score) else 0.0

    def transform(self, scores: np.ndarray, rival_leads: np.ndarray | None = None) -> np.ndarray:
        raw = self.intercept + self.slope * np.asarray(scores, dtype=float)
        if rival_leads is not None:
            raw = raw - self.rival_slope * np.asarray(rival_leads, dtype=float)
        return np.clip(raw, self.lower, self.upper)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: The largest rival slope the search considers (log10 LR per unit of the fused score's lead). The L2 penalty
#: keeps the fitted slope finite even where the leads alone separate the labelled pairs; a fit that reaches
#: this bound is refused rather than shipped.
MAX_RIVAL_SLOPE = 20.0


def _checked_leads(leads: np.ndarray | None, n: int) -> np.ndarray:
    if leads is None:
        return np.zeros(n)
    leads = np.asarray(leads, dtype=float)
    if leads.shape != (n,) or not np.all(np.isfinite(leads)) or np.any(leads < 0):
        raise ValueError(f"rival leads must be {n} finite values >= 0, one per pair")
    return leads


def _median_elub(llrs: np.ndarray, labels: np.ndarray, groups: np.ndarray) -> tuple[float, float]:
    """ELUB of each group of pairs (:meth:`Calibration.fit`, ``groups``), the median of each bound."""
    bounds = [_elub(llrs[groups == g], labels[groups == g]) for g in sorted(set(groups.tolist()))
              if len(set(labels[groups == g].tolist())) == 2]
    return float(np.median([b[0] for b in bounds])), float(np.median([b[1] for b in bounds]))


def _rival_slope(offsets: np.ndarray, leads: np.ndarray, labels: np.ndarray) -> float:
    """The rival discount ``c >= 0`` that minimises the class-balanced logistic loss of
    ``offsets - c * leads`` (log10 LRs) on the labelled pairs, with the L2 penalty ``lir``'s
    ``LogitCalibrator`` puts on the plain slope (scikit-learn's default, C = 1, on the natural-log
    coefficient); 0 when no pair trails a rival.

    A one-parameter logistic regression with the plain calibration as a fixed offset: the objective is convex
    in ``c``, so a bounded scalar search finds its minimum deterministically.
    """
    from scipy.optimize import minimize_scalar

    if not np.any(leads > 0):
        return 0.0
    hp, hd = labels == 1, labels == 0
    n = len(labels)

    def objective(c: float) -> float:  # scikit-learn's: weighted log loss summed, plus half the squared coef
        z = (offsets - c * leads) * np.log(10)
        loss = np.logaddexp(0.0, -z[hp]).mean() + np.logaddexp(0.0, z[hd]).mean()
        return float(n / 2 * loss + 0.5 * (c * np.log(10)) ** 2)

    found = float(minimize_scalar(objective, bounds=(0.0, MAX_RIVAL_SLOPE), method="bounded",
                                  options={"xatol": 1e-6}).x)
    if found > MAX_RIVAL_SLOPE - 1e-3:
        raise ValueError(f"the rival discount reached its search bound ({MAX_RIVAL_SLOPE}): the labelled pairs "
                         "do not support a finite one")
    return found if objective(found) < objective(0.0) else 0.0


def _elub(llrs: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    from lir.algorithms.bayeserror import elub

    lower, upper = elub(llrs.copy(), labels.copy(), add_misleading=1)
    return float(lower), float(upper)


@dataclass
class CalibrationSet:
    """The shipped calibrations, one per proposition pair (:data:`LEVELS`), in one JSON file.

    Stored with the hash of the data it was fitted on and the validation summary, so a report can say
    which calibration produced its numbers and a reviewer can refit it (``forensics calibrate``).
    """

    levels: dict[str, Calibration]
    data_sha256: str = ""
    description: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def __getitem__(self, level: str) -> Calibration:
        return self.levels[level]

    def to_dict(self) -> dict[str, Any]:
        return {"levels": {k: v.to_dict() for k, v in sorted(self.levels.items())},
                "data_sha256": self.data_sha256, "description": self.description, "metrics": self.metrics,
                "format_version": self.format_version}

    def save(self, path: str | Path) -> Path:
        atomic_write_json(path, jsonable(self.to_dict(), sort_keys=False))
        return Path(path)

    @classmethod
    def load(cls, path: str | Path = DEFAULT_CALIBRATION) -> CalibrationSet:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if data.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{path}: calibration format {data.get('format_version')} is not supported "
                             f"(expected {FORMAT_VERSION}); refit it with `forensics calibrate`")
        missing = [level for level in LEVELS if level not in data.get("levels", {})]
        if missing:
            raise ValueError(f"{path}: calibration lacks the level(s) {', '.join(missing)}")
        levels = {k: Calibration(**v) for k, v in data["levels"].items()}
        return cls(levels=levels, data_sha256=data.get("data_sha256", ""),
                   description=data.get("description", ""), metrics=data.get("metrics", {}))


def calibration_record(path: str | Path = DEFAULT_CALIBRATION) -> dict[str, Any]:
    """What a findings file says about the calibration used: file, hash, fit data hash and sizes."""
    cal = CalibrationSet.load(path)
    return {"calibration_file": Path(path).name, "calibration_sha256": sha256_file(path),
            "data_sha256": cal.data_sha256,
            "levels": {k: {"n_hp": v.n_hp, "n_hd": v.n_hd, "lower": v.lower, "upper": v.upper,
                           "rival_slope": v.rival_slope}
                       for k, v in sorted(cal.levels.items())}}


def cllr(log10_lrs: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(Cllr, Cllr_min) of a set of log10 LRs, via lir."""
    from lir.data.models import LLRData
    from lir.metrics import cllr as _cllr
    from lir.metrics import cllr_min as _cllr_min

    data = LLRData(features=np.asarray(log10_lrs, dtype=float), labels=np.asarray(labels, dtype=int))
    return float(_cllr(data)), float(_cllr_min(data))


# ----------------------------------------------------------------------------------------- what it was fitted on

#: The calibration record keeps a fingerprint of every labelled model's every answer of at least
#: :data:`FINGERPRINT_MIN_WORDS` words (short answers coincide across models), so that a case whose suspect
#: answers word for word like a labelled model (the demo's does) can say that those answers helped fit the
#: calibration that weighs them, whatever subset of the benchmark's prompts the case holds.
FINGERPRINT_HEX = 10  # 40 bits: chance matches between a case's and the benchmark's answers ~1e-5
FINGERPRINT_MIN_WORDS = 20
#: How many of the suspect's answers must be word for word one labelled model's (or, in a case, another
#: source's answer to the same prompt) before the case says so: at least this many, and at least
#: :data:`FINGERPRINT_SHARE` of the answers compared. Why a share: two related models decoding greedily give
#: the same long answer to a few factual prompts (on the benchmark's 801 prompts up to 4 between sibling
#: vicunas, 2 between gpt-3.5-turbo snapshots, 2 between unrelated models), while a suspect that *is* a
#: labelled model, or relays a source, repeats most of them.
FINGERPRINT_MATCHES = 3
FINGERPRINT_SHARE = 0.1


def repeats(count: int, compared: int) -> bool:
    """Whether ``count`` word-for-word answers among ``compared`` say the answers are another's
    (:data:`FINGERPRINT_MATCHES`, :data:`FINGERPRINT_SHARE`)."""
    return count >= FINGERPRINT_MATCHES and count >= FINGERPRINT_SHARE * compared


def comparable_answer(text: str, min_words: int = FINGERPRINT_MIN_WORDS) -> str | None:
    """An answer as it is compared word for word (runs of whitespace collapsed), or None when it has fewer
    than ``min_words`` words (short answers coincide across models): one rule for the labelled models'
    fingerprints and for a case's sources compared prompt by prompt."""
    words = text.split()
    return " ".join(words) if len(words) >= min_words else None


def answer_fingerprint(text: str, width: int = FINGERPRINT_HEX) -> str:
    """The first ``width`` hex digits of the SHA-256 of an answer with its runs of whitespace collapsed."""
    return sha256_text(" ".join(text.split()))[:width]


def answer_fingerprints(models: dict[str, tuple[str, list[str]]]) -> dict[str, Any]:
    """``{"hex", "min_words", "models": {name: {"role", "n", "answers"}}}`` for labelled models given as
    ``name -> (role, answers)``: ``answers`` is the sorted fingerprints of every answer of at least
    :data:`FINGERPRINT_MIN_WORDS` words, concatenated (``n`` of them; nothing of the prompt order is kept)."""
    out = {}
    for name in sorted(models):
        role, answers = models[name]
        prints = sorted({answer_fingerprint(c) for c in map(comparable_answer, answers) if c})
        out[name] = {"role": role, "n": len(prints), "answers": "".join(prints)}
    return {"hex": FINGERPRINT_HEX, "min_words": FINGERPRINT_MIN_WORDS, "models": out}


def labelled_model_matches(answers: list[str], fingerprints: Any) -> list[tuple[str, str, int, int]]:
    """(labelled model, its role, how many of the distinct ``answers`` are word for word its answers, how
    many distinct ``answers`` were long enough to compare) for every labelled model that they
    :func:`repeats`, most matches first; empty for a calibration without (or with malformed)
    fingerprints."""
    if not isinstance(fingerprints, dict) or not isinstance(fingerprints.get("models"), dict):
        return []
    width = int(fingerprints.get("hex", FINGERPRINT_HEX))
    min_words = int(fingerprints.get("min_words", FINGERPRINT_MIN_WORDS))
    own = {answer_fingerprint(c, width) for c in (comparable_answer(a, min_words) for a in answers) if c}
    hits = []
    for name, entry in sorted(fingerprints["models"].items()):
        stored = entry.get("answers") if isinstance(entry, dict) else None
        if not isinstance(stored, str) or width <= 0:
            continue
        theirs = {stored[i:i + width] for i in range(0, len(stored), width)}
        hits.append((str(name), str(entry.get("role", "model")), len(own & theirs), len(own)))
    return sorted((h for h in hits if repeats(h[2], h[3])), key=lambda h: (-h[2], h[0]))
