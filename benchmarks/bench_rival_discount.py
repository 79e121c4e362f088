"""The rival discount (panel-relative-fused-v11) against calibrating the score alone and against a joint fit.

Why: Hd "developed independently of this candidate" includes students of *another* candidate, and sibling
model lines of one vendor share a register, so a candidate out-scored by one of another family resembles the
suspect partly through that one. v11 weighs each candidate's rival lead (:func:`forensics.weighing.rival_leads`)
with a slope fitted after the plain calibration, which it keeps (:mod:`forensics.calibration`, "The rival
discount"). Three calibrations of the teacher and family levels are compared on the validation's own labelled
pairs, held out as the validation holds them out (:func:`forensics.validation.folds`, both schemes, the
all-prompts set and each prompt source, on which the figures are; the cross-source folds also fit the
union of their sources, ``all-but-<source>``; samples and sub-panels are never fitted on and left out here):

* ``score alone`` - the plain logistic calibration (v10), bounded by ELUB;
* ``rival discount (shipped)`` - ``a + b * score - c * lead``, ``a`` and ``b`` as above, ``c >= 0`` fitted after
  them (:meth:`forensics.calibration.Calibration.fit` with ``leads``);
* ``joint fit`` - one class-balanced logistic regression on the score and the lead together (L2 as ``lir``'s
  ``LogitCalibrator``), bounded by ELUB the same way: the obvious alternative, which refits the leaders' map too.

For each: family and teacher Cllr (Cllr_min), the AUC of the held-out LRs, misleading rates, and how many
control pairs get an LR above the inconclusive band (the safety the method must keep). Reads the committed
``validation/pairs.csv`` (rerun ``forensics calibrate`` first when the method changes); nothing is embedded.
Last, in how many held-out fits the shipped calibration's lower (Hd-side) bound lies above the plain one's,
the only place its LRs can be higher than the score alone would give. Appended to
``benchmarks/results/rival_discount.txt``.

    python benchmarks/bench_rival_discount.py [--validation-dir validation]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from forensics import validation
from forensics.calibration import Calibration, _median_elub, cllr
from forensics.case import Parameters

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "rival_discount.txt"
LEVELS = ("teacher", "family")


@dataclass
class Joint:
    """One logistic regression on (score, rival lead), bounded by ELUB per prompt set."""

    model: LogisticRegression
    lower: float
    upper: float

    @classmethod
    def fit(cls, frame: pd.DataFrame) -> Joint:
        x, y = frame[["score", "rival_lead"]].to_numpy(), frame["hp"].to_numpy()
        model = LogisticRegression(class_weight="balanced").fit(x, y)
        llrs = model.decision_function(x) / np.log(10)
        return cls(model, *_median_elub(llrs, y, frame["set"].to_numpy()))

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        llrs = self.model.decision_function(frame[["score", "rival_lead"]].to_numpy()) / np.log(10)
        return np.clip(llrs, self.lower, self.upper)


def fitted(frame: pd.DataFrame, variant: str) -> Callable[[pd.DataFrame], np.ndarray]:
    """A level's calibration fitted on ``frame`` as ``variant`` fits it, as a map from rows to log10 LRs."""
    if variant == "joint fit":
        return Joint.fit(frame).transform
    leads = frame["rival_lead"].to_numpy() if variant == "rival discount (shipped)" else None
    cal = Calibration.fit(frame["score"].to_numpy(), frame["hp"].to_numpy(), leads=leads,
                          groups=frame["set"].to_numpy())
    return lambda rows: cal.transform(rows["score"].to_numpy(), rows["rival_lead"].to_numpy())


def held_out_lrs(tables: dict[str, pd.DataFrame], scheme: str, variant: str) -> dict[str, pd.DataFrame]:
    """Every tested row of each level with its held-out ``log10_lr`` (a family of one member carries its
    member's teacher-level LR, as :func:`forensics.validation.transform_level` weighs it)."""
    level_tables = validation.LevelTables(tables["teacher"], tables["family"], tables["teacher"].iloc[:0], None)
    out: dict[str, list[pd.DataFrame]] = {level: [] for level in LEVELS}
    for train, test in validation.folds(level_tables, scheme):
        maps = {level: fitted(frame[train(frame)], variant) for level, frame in tables.items()}
        for level, frame in tables.items():
            rows = frame[test(frame) & validation.pooled(frame)].copy()  # the sets the validation pools
            rows["log10_lr"] = maps[level](rows)
            if level == "family":
                one = rows["n_members"] == 1
                rows.loc[one, "log10_lr"] = maps["teacher"](rows[one])
            out[level].append(rows)
    return {level: pd.concat(parts) for level, parts in out.items()}


def lower_bound_shifts(tables: dict[str, pd.DataFrame]) -> str:
    """In how many held-out fits (both schemes, both levels) the shipped calibration's lower ELUB bound, that
    of the discounted LRs, lies above the plain calibration's: there, and only there, an LR (strong support
    for Hd) can be higher than the score alone would give."""
    level_tables = validation.LevelTables(tables["teacher"], tables["family"], tables["teacher"].iloc[:0], None)
    shifts, fits = [], 0
    for scheme in validation.SCHEMES:
        for train, _ in validation.folds(level_tables, scheme):
            for level, frame in tables.items():
                rows = frame[train(frame)]
                args = (rows["score"].to_numpy(), rows["hp"].to_numpy())
                own = Calibration.fit(*args, leads=rows["rival_lead"].to_numpy(), groups=rows["set"].to_numpy())
                plain = Calibration.fit(*args, groups=rows["set"].to_numpy())
                fits += 1
                if own.lower > plain.lower:
                    shifts.append((level, own.lower - plain.lower))
    span = f" (by {min(d for _, d in shifts):.3f} to {max(d for _, d in shifts):.3f}; levels: " \
           f"{', '.join(sorted({lv for lv, _ in shifts}))})" if shifts else ""
    return f"  lower bound above the plain calibration's in {len(shifts)} of {fits} held-out fits{span}"


def metrics(rows: pd.DataFrame, high: float) -> str:
    hp, hd = rows[rows["hp"] == 1], rows[rows["hp"] == 0]
    c, c_min = cllr(rows["log10_lr"].to_numpy(), rows["hp"].to_numpy())
    controls = rows[rows["role"] == "control"]
    return (f"Cllr {c:.3f} (min {c_min:.3f}), AUC of the LRs {roc_auc_score(rows['hp'], rows['log10_lr']):.3f}, "
            f"misleading {(hp['log10_lr'] < 0).mean():.1%} of Hp / {(hd['log10_lr'] > 0).mean():.1%} of Hd, "
            f"control pairs above the band {(controls['log10_lr'] > high).sum()} of {len(controls)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--validation-dir", type=Path, default=ROOT / "validation")
    args = parser.parse_args()
    pairs = pd.read_csv(args.validation_dir / "pairs.csv")
    pairs = pairs[(pairs["scheme"] == "lolo")].drop(columns=["log10_lr", "supports", "scheme"])
    pairs = pairs[~validation.never_fitted(pairs)].reset_index(drop=True)
    tables = {"teacher": pairs, "family": validation.family_table(pairs)}
    high = Parameters().inconclusive_band[1]
    lines = [f"bench_rival_discount ({validation.METHOD_VERSION}): {len(pairs)} teacher pairs of "
             f"{args.validation_dir.name}/pairs.csv (all prompts and each prompt source; the unions of all but "
             "one source fitted by the cross-source folds), held out as the validation holds them out"]
    for scheme in validation.SCHEMES:
        for variant in ("score alone", "rival discount (shipped)", "joint fit"):
            done = held_out_lrs(tables, scheme, variant)
            for level in ("family", "teacher"):
                lines.append(f"  {scheme:>12} {variant:>24} {level:>7}: {metrics(done[level], high)}")
    lines.append(lower_bound_shifts(tables))
    text = "\n".join(lines) + "\n"
    print(text, end="")
    with RESULTS.open("a", encoding="utf-8") as out:
        out.write(text + "\n")


if __name__ == "__main__":
    main()
