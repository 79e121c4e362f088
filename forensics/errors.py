"""Errors a user can act on.

Every failure caused by the user's input is raised as a :class:`ForensicsError` carrying the file, the
line or row where it applies, and what to do about it. The command line prints ``str(error)`` as one
line and exits non-zero; it never shows a traceback for these.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

#: Characters that render as nothing (zero-width) or reorder what is displayed (bidi controls). The case
#: reader strips them before joining prompts and reports them; error lines show them as ``[U+XXXX]``.
ZERO_WIDTH = "\u200b\u200c\u200d\u2060\u2061\u2062\u2063\u2064\ufeff\u00ad\u180e"
BIDI_CONTROLS = "\u200e\u200f\u061c\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
#: ZWNJ/ZWJ shape emoji and Arabic/Indic text: legitimate in names, suspicious only beside Latin letters.
JOINERS = "\u200c\u200d"
#: The invisible characters that are suspicious wherever they stand: every zero-width one but the joiners,
#: and every bidi control.
INVISIBLE = ZERO_WIDTH.replace(JOINERS, "") + BIDI_CONTROLS
#: An unpaired UTF-16 surrogate: what a JSON "\ud800" escape decodes to; no UTF-8 writer (Parquet, JSON)
#: accepts one (the case reader refuses it, `forensics collect` refuses it in prompts and replaces it in answers).
SURROGATE = re.compile("[\ud800-\udfff]")
#: Shown as ``[U+XXXX]`` in an error line: control characters and lone surrogates (categories Cc, Cs), the
#: bidi controls and the invisible characters other than the joiners. An error quotes hostile input (a
#: column name, a key); on a terminal, escape sequences or a right-to-left override in it could rewrite or
#: reorder what the investigator reads.
_HIDDEN_CATEGORIES = ("Cc", "Cs")
_HIDDEN_CHARACTERS = frozenset(INVISIBLE)

class ForensicsError(Exception):
    """An error in the user's input or set-up, reported as one line: ``file:line: problem (fix: ...)``."""

    exit_code = 2

    def __init__(self, problem: str, *, path: str | Path | None = None, line: int | None = None,
                 fix: str | None = None) -> None:
        self.problem = problem
        self.path = str(path) if path is not None else None
        self.line = line
        self.fix = fix
        super().__init__(self.one_line())

    def one_line(self) -> str:
        where = ""
        if self.path is not None:
            where = self.path + (f":{self.line}" if self.line is not None else "") + ": "
        text = where + self.problem + (f" (fix: {self.fix})" if self.fix else "")
        return visible(" ".join(text.split()))  # one line, whatever the input contained


def visible(text: str) -> str:
    """``text`` with every control, bidi-control, invisible (joiners aside) or surrogate character written as
    ``[U+XXXX]``."""
    return "".join(f"[U+{ord(c):04X}]" if c in _HIDDEN_CHARACTERS or unicodedata.category(c) in _HIDDEN_CATEGORIES
                   else c for c in text)


class CaseFileError(ForensicsError):
    """The case file (case.yaml) is malformed, names unknown keys, or points outside the case folder."""


class InputError(ForensicsError):
    """A file of exchanges cannot be read or does not hold what a case needs."""


class ModelError(ForensicsError):
    """The embedding model cannot be found or loaded offline."""


class VerificationError(ForensicsError):
    """A re-execution found a changed input or a differing finding."""

    exit_code = 3
