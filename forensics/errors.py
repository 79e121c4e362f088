"""Errors a user can act on.

Every failure caused by the user's input is raised as a :class:`ForensicsError` carrying the file, the
line or row where it applies, and what to do about it. The command line prints ``str(error)`` as one
line and exits non-zero; it never shows a traceback for these.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path

#: Unicode categories shown as ``[U+XXXX]`` in an error line: control, format (bidi overrides among them)
#: and lone surrogates. An error quotes hostile input (a column name, a key); on a terminal, escape sequences
#: or a right-to-left override in it could rewrite or reorder what the investigator reads.
_HIDDEN_CATEGORIES = ("Cc", "Cf", "Cs")


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
    """``text`` with every control, format or surrogate character written as ``[U+XXXX]``."""
    return "".join(f"[U+{ord(c):04X}]" if unicodedata.category(c) in _HIDDEN_CATEGORIES else c for c in text)


class CaseFileError(ForensicsError):
    """The case file (case.yaml) is malformed, names unknown keys, or points outside the case folder."""


class InputError(ForensicsError):
    """A file of exchanges cannot be read or does not hold what a case needs."""


class ModelError(ForensicsError):
    """The embedding model cannot be found or loaded offline."""


class VerificationError(ForensicsError):
    """A re-execution found a changed input or a differing finding."""

    exit_code = 3
