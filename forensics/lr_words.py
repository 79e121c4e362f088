"""Likelihood ratios in words: the verbal scale laid out as bands, and an LR as a reader reads it.

The scale itself (ENFSI 2015) has one home, :data:`forensics.calibration.VERBAL_SCALE`; the report's
table, the LR-scale figure and every sentence that quotes an LR derive their bands and numbers from here,
so the words a reader meets are the same on every page and in every figure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from forensics.calibration import VERBAL_SCALE, verbal_for


def _bands() -> tuple[tuple[float, float, str], ...]:
    """``(low, high, phrase)`` per band of |log10 LR|, from the LR upper bounds of the verbal scale."""
    edges = [0.0] + [math.log10(upper) for upper, _ in VERBAL_SCALE]
    return tuple((edges[i], edges[i + 1], phrase) for i, (_, phrase) in enumerate(VERBAL_SCALE))


#: The verbal scale by |log10 LR|: ``(low, high, phrase)``; the same words serve Hp and Hd.
VERBAL_BANDS: tuple[tuple[float, float, str], ...] = _bands()


def band_range(index: int) -> str:
    """The LR range of one band in words: 'LR 2 to 10', 'LR above 1,000,000'."""
    low, high = 10 ** VERBAL_BANDS[index][0], 10 ** VERBAL_BANDS[index][1]
    return f"LR above {low:,.0f}" if math.isinf(high) else f"LR {low:,.0f} to {high:,.0f}"


def as_number(value: Any) -> float | None:
    """A finite float, or None for anything else (booleans included: they are not measurements)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def band_index(log10_lr: Any) -> int | None:
    """Row of :data:`VERBAL_BANDS` holding |log10 LR|, or None when no number was recorded."""
    number = as_number(log10_lr)
    if number is None:
        return None
    return next(i for i, (low, high, _) in enumerate(VERBAL_BANDS) if low <= abs(number) < high)


def two_significant(value: float) -> str:
    """2 significant figures with separators: 501.2 -> '500', 2.512 -> '2.5', 199526 -> '200,000'."""
    if value >= 10:
        return f"{round(value, 1 - int(math.floor(math.log10(value)))):,.0f}"
    return f"{value:.2g}"


def lr_value(log10_lr: float) -> str:
    """The LR itself, '500' or '1/2.6' (a reader meets 1/2.6 more easily than 0.39)."""
    value = 10 ** log10_lr
    return two_significant(value) if value >= 1 else f"1/{two_significant(1 / value)}"


def lr_phrase(log10_lr: Any) -> str:
    """'about 500 times more probable under Hp than under Hd' (or Hd over Hp), from a log10 LR."""
    number = as_number(log10_lr)
    if number is None:
        return "no likelihood ratio was recorded"
    if abs(number) < 0.05:
        return "about equally probable under Hp and under Hd"
    first, second = ("Hp", "Hd") if number > 0 else ("Hd", "Hp")
    return f"about {two_significant(10 ** abs(number))} times more probable under {first} than under {second}"


def verbal_words(entry: Mapping[str, Any]) -> str:
    """A candidate's verbal equivalent with the proposition it supports ("moderate support for Hd"), from its
    log10 LR; the recorded phrase (``findings.json`` keeps the phrase alone) when no LR was recorded."""
    number = as_number(entry.get("log10_lr"))
    if number is not None:
        return verbal_for(number)
    recorded = entry.get("verbal")
    return recorded if isinstance(recorded, str) and recorded else "no verbal equivalent recorded"
