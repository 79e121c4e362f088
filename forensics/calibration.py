"""Scores to likelihood ratios: a small adapter over NFI's ``lir`` (pinned in constraints.txt).

The fused panel-relative score of a (suspect, teacher) pair is turned into a log10 likelihood ratio for
Hp "the suspect was trained on this teacher's outputs" against Hd "it was developed independently of it"
by logistic-regression calibration on labelled pairs (``lir``'s ``LogitCalibrator``, class-balanced so the
calibration set's proportion of Hp pairs does not act as a prior), then bounded by the empirical lower
and upper bounds (ELUB, Vergeer et al. 2016) the calibration data can support. ``lir``'s API changed
across releases; everything that touches it is in this module.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from forensics.custody import atomic_write_json, sha256_file

CALIBRATION_DIR = Path(__file__).resolve().parent / "calibration"
DEFAULT_CALIBRATION = CALIBRATION_DIR / "default.json"
FORMAT_VERSION = 1

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
    """ENFSI verbal equivalent of a log10 LR, naming the proposition it supports.

    LR 1 is "no support either way"; below 1 the same words apply to Hd with the LR inverted.
    """
    if not np.isfinite(log10_lr):
        raise ValueError(f"no verbal equivalent for log10 LR {log10_lr}")
    if log10_lr == 0:
        return "no support for either proposition"
    magnitude = 10 ** abs(log10_lr)
    words = next(phrase for upper, phrase in VERBAL_SCALE if magnitude < upper)
    proposition = "Hp" if log10_lr > 0 else "Hd"
    return f"{words} for {proposition}"


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
    """A fitted score -> log10 LR map: ``log10_lr = clip(a + b * score, lower, upper)``.

    Stored as a small JSON file with the hash of the data it was fitted on, so a report can say which
    calibration produced its numbers and a reviewer can refit it (``forensics calibrate``).
    """

    intercept: float
    slope: float
    lower: float
    upper: float
    n_hp: int
    n_hd: int
    data_sha256: str = ""
    description: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    @classmethod
    def fit(cls, scores: np.ndarray, labels: np.ndarray, *, data_sha256: str = "",
            description: str = "") -> Calibration:
        """Fit the logistic calibration and its ELUB bounds on pairs (``labels`` 1 = Hp, 0 = Hd)."""
        from lir.algorithms.bayeserror import elub
        from lir.algorithms.logistic_regression import LogitCalibrator

        scores = np.asarray(scores, dtype=float)
        labels = np.asarray(labels, dtype=int)
        if labels.min() == labels.max():
            raise ValueError("calibration needs pairs of both kinds (Hp and Hd)")
        calibrator = LogitCalibrator().fit(scores, labels)
        intercept = float(np.ravel(calibrator._logit.intercept_)[0] / np.log(10))
        slope = float(np.ravel(calibrator._logit.coef_)[0] / np.log(10))
        llrs = intercept + slope * scores
        lower, upper = elub(llrs.copy(), labels.copy(), add_misleading=1)
        return cls(intercept=intercept, slope=slope, lower=float(lower), upper=float(upper),
                   n_hp=int(labels.sum()), n_hd=int((1 - labels).sum()), data_sha256=data_sha256,
                   description=description)

    def log10_lr(self, score: float) -> float:
        return float(np.clip(self.intercept + self.slope * score, self.lower, self.upper))

    def transform(self, scores: np.ndarray) -> np.ndarray:
        return np.clip(self.intercept + self.slope * np.asarray(scores, dtype=float), self.lower, self.upper)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, path: str | Path) -> Path:
        atomic_write_json(path, _rounded(self.to_dict()))
        return Path(path)

    @classmethod
    def load(cls, path: str | Path = DEFAULT_CALIBRATION) -> Calibration:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if data.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{path}: calibration format {data.get('format_version')} is not supported")
        return cls(**data)


def calibration_record(path: str | Path = DEFAULT_CALIBRATION) -> dict[str, Any]:
    """What a findings file says about the calibration used: file, hash, fit data hash and sizes."""
    cal = Calibration.load(path)
    return {"calibration_file": Path(path).name, "calibration_sha256": sha256_file(path),
            "data_sha256": cal.data_sha256,
            "n_hp": cal.n_hp, "n_hd": cal.n_hd, "lower": cal.lower, "upper": cal.upper}


def cllr(log10_lrs: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(Cllr, Cllr_min) of a set of log10 LRs, via lir."""
    from lir.data.models import LLRData
    from lir.metrics import cllr as _cllr
    from lir.metrics import cllr_min as _cllr_min

    data = LLRData(features=np.asarray(log10_lrs, dtype=float), labels=np.asarray(labels, dtype=int))
    return float(_cllr(data)), float(_cllr_min(data))


def _rounded(obj: Any) -> Any:
    if isinstance(obj, float):
        return round(obj, 6)
    if isinstance(obj, dict):
        return {k: _rounded(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_rounded(v) for v in obj]
    return obj
