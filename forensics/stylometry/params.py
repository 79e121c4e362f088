"""Stylometry parameters: literature defaults, checked like every case parameter."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, TypeVar

from forensics.errors import CaseFileError

P = TypeVar("P")


def params_from(cls: type[P], params: Any) -> P:
    """Build a parameter dataclass from ``None``, an instance, a mapping or any object with attributes.

    Only the names the dataclass knows are read, so the case's ``Parameters`` (which has ``mfw``, ``seed``
    and much else) can be passed as it is.
    """
    if params is None:
        return cls()
    if isinstance(params, cls):
        return params
    names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    if isinstance(params, Mapping):
        values = {k: params[k] for k in names if k in params}
    else:
        values = {k: getattr(params, k) for k in names if hasattr(params, k)}
    for key, value in list(values.items()):
        if isinstance(value, list):
            values[key] = tuple(value)
    return cls(**values)


@dataclass(frozen=True)
class StyloParams:
    """Stylometry parameters; every default is a literature default, none was tuned on the benchmark.

    - ``mfw``: most frequent words kept (stylo's classic 100-1000 range; Evert et al. 2017 found Cosine
      Delta stable from a few hundred MFW up).
    - ``z_ddof``: standard deviation of z-scores; 1 = sample sd, as stylo (R ``scale()``).
    - ``char_n``, ``char_top``: character n-gram order and how many of the most frequent are kept;
      ``char_lowercase`` False keeps capitalisation, itself a habit ("Sure!" vs "sure");
      ``char_word_boundary`` True drops n-grams spanning two words (a space may only be first or last).
    - ``distortion_keep``: the k most frequent words left visible by text distortion (Stamatatos 2017
      used 100-300); ``distortion_orders`` the word n-gram orders taken of the distorted text;
      ``distortion_top`` how many n-grams are kept; ``distortion_mode`` "single" (every other word
      becomes one ``*``, DV-SA) or "multi" (each of its characters becomes ``*``, DV-MA).
    - ``report_top``: rows of the per-source tables for the report.
    """

    mfw: int = 300
    z_ddof: int = 1
    char_n: int = 3
    char_top: int = 1000
    char_lowercase: bool = False
    char_word_boundary: bool = True
    distortion_keep: int = 100
    distortion_orders: tuple[int, ...] = (2, 3)
    distortion_top: int = 1000
    distortion_mode: str = "single"
    report_top: int = 50

    def __post_init__(self) -> None:
        """A value out of range is the case file's error, reported like every other parameter's."""
        problem = self._problem()
        if problem:
            raise CaseFileError(problem, fix="correct the stylometry parameter (see docs/ARCHITECTURE.md)")

    def _problem(self) -> str | None:
        if self.mfw < 2 or self.char_top < 2 or self.distortion_top < 2:
            return "mfw, char_top and distortion_top must be at least 2"
        if self.z_ddof not in (0, 1):
            return "z_ddof must be 0 or 1"
        if not 1 <= self.char_n <= 6:
            return "char_n must be between 1 and 6"
        if self.distortion_mode not in ("single", "multi"):
            return "distortion_mode must be 'single' or 'multi'"
        if not self.distortion_orders or min(self.distortion_orders) < 1:
            return "distortion_orders must be positive integers"
        return None
