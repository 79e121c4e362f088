"""Who is who in a case: each source's role, derived in one place from a corpus (or anything with
``suspect``, ``teachers`` and ``references``).

The roles themselves are :data:`forensics.case.ROLES`; the figures, the clusters table and the semantic
per-prompt table all ask :func:`roles_of` rather than re-deriving a source's role on their own. Kept apart
from ``exchanges.py`` so that a module which only draws (``figures``) need not import the reader.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from forensics.case import ROLES

__all__ = ["ROLES", "HasRoles", "roles_of"]


class HasRoles(Protocol):
    """Anything naming a case's sources by role: an ``AlignedCorpus``, a ``Case``-like object, ``Roles``."""

    suspect: str
    teachers: Sequence[str]
    references: Sequence[str]


def roles_of(corpus: HasRoles) -> dict[str, str]:
    """Each source's role ("suspect", "teacher" or "reference"), in the case's order."""
    roles = {corpus.suspect: "suspect"}
    roles.update({t: "teacher" for t in corpus.teachers})
    roles.update({r: "reference" for r in corpus.references})
    return roles
