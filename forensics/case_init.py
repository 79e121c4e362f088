"""``forensics case init``: write a ``case.yaml`` from collected files and the roles the user gives.

After ``forensics collect`` the investigator holds one file per model; typing the case file by hand is
where a path or a role goes wrong. This writes it from ``--suspect``, ``--teacher`` and ``--reference``
arguments (``NAME=PATH``, or ``PATH`` alone: the name is then the model the file was collected from, else
the file's stem), checks every file with the case reader first (so a bad file fails here, at its line),
and validates the result with :func:`forensics.case.load_case` before it is renamed into place: a case
file that exists is one that loads, with the panel of references ``forensics run`` asks for.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from forensics.case import load_case
from forensics.custody import atomic_path
from forensics.errors import CaseFileError
from forensics.exchanges import read_exchanges
from forensics.scoring import MIN_PANEL

_NOT_ID = re.compile(r"[^A-Za-z0-9_-]+")


def init_case(target: str | Path, *, suspect: str, teachers: list[str], references: list[str],
              case_id: str | None = None, title: str | None = None, parameters: dict[str, Any] | None = None,
              force: bool = False) -> Path:
    """Write and validate ``target`` (case.yaml); source paths become relative to its folder."""
    target = Path(target).absolute()
    if target.exists() and not force:
        raise CaseFileError("the case file already exists", path=target,
                            fix="choose another path, or pass --force to replace it")
    folder = target.parent
    entries = {"suspect": _source(folder, suspect),
               "teachers": [_source(folder, s) for s in teachers],
               "references": [_source(folder, s) for s in references]}
    case_id = case_id or (_NOT_ID.sub("-", folder.name).strip("-") or "case")[:128]
    teacher_names = ", ".join(t["name"] for t in entries["teachers"])
    data: dict[str, Any] = {
        "case": case_id,
        "title": title or f"Was {entries['suspect']['name']} trained on outputs of {teacher_names}?",
        **entries}
    if parameters:
        data["parameters"] = parameters
    text = "# Written by forensics case init; edit freely (see README: A case).\n" + \
        yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=1000)
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
        load_case(tmp, min_references=MIN_PANEL)  # refuse to leave behind a case file `run` would refuse
    return target


def _source(folder: Path, spec: str) -> dict[str, str]:
    """``NAME=PATH`` or ``PATH`` -> {name, path relative to the case folder}; the file is read first."""
    name, sep, raw = spec.partition("=")
    if not sep:
        name, raw = "", spec
    path = Path(raw).absolute()
    try:
        rel = path.resolve().relative_to(folder.resolve())
    except ValueError:
        raise CaseFileError(f"{raw!r} is outside the case folder {folder}", path=raw,
                            fix="copy the file into the case folder so the folder is a complete record") from None
    read = read_exchanges(path)  # a bad file fails here, naming its line
    if not name:
        models = (read.collection or {}).get("models") or []
        name = models[0] if len(models) == 1 else path.stem
    return {"name": name, "path": rel.as_posix()}
