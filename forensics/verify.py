"""Verify a run: are its inputs the files that were analysed, and does re-executing it give the same findings?

A reviewer who receives a run folder must be able to check two things without trusting the analyst:
that every input still has the sha256 recorded in ``manifest.json`` (and every artifact the bytes that
were written), and that re-executing the recorded case file reproduces ``findings.json`` exactly. The
pipeline is deterministic, so floats are compared exactly; only fields that record *when* or *where*
something ran (``generated``, ``environment.platform``, ``*_seconds``, ``timestamp``) are ignored.

The re-execution itself is injected (``rerun``), so this module does not depend on the pipeline and can
be tested with a stub.
"""

from __future__ import annotations

import json
import logging
import math
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forensics.custody import MANIFEST_NAME, sha256_file
from forensics.errors import VerificationError, visible
from forensics.results import contract_problem

LOGGER = logging.getLogger(__name__)

FINDINGS_NAME = "findings.json"
#: Paths (tuples of keys) ignored when comparing findings: when and where a run happened, not what it found.
IGNORED_PATHS = frozenset({("generated",), ("environment", "platform")})
IGNORED_SUFFIX = "_seconds"
IGNORED_KEYS = frozenset({"timestamp"})
#: How much of a value a line shows; the full values stay in the Difference objects.
SHOWN_CHARS = 120
MAX_LINES = 200

Rerun = Callable[[Path, Path], None]
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _shown(value: Any) -> str:
    """A value as one terminal-safe line: JSON with every non-ASCII and control character escaped."""
    try:
        text = json.dumps(value, ensure_ascii=True, sort_keys=True)
    except (TypeError, ValueError):
        text = ascii(value)
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + f"… ({len(text):,} characters)"


# --------------------------------------------------------------------------------------------------
# Comparing findings
# --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Difference:
    """One place where the re-executed findings differ from the recorded ones.

    ``kind`` is "changed" (same type, different value), "type" (different JSON types), "missing" (only
    in the recorded findings) or "added" (only in the re-execution).
    """

    path: str
    recorded: Any
    rerun: Any
    kind: str = "changed"

    def line(self) -> str:
        if self.kind == "missing":
            return f"finding missing from the re-execution: {self.path} (recorded {_shown(self.recorded)})"
        if self.kind == "added":
            return f"finding only in the re-execution: {self.path} = {_shown(self.rerun)}"
        return (f"finding differs: {self.path}: recorded {_shown(self.recorded)}, "
                f"re-executed {_shown(self.rerun)}")


def json_path(keys: tuple[Any, ...]) -> str:
    """``("teachers", 0, "log10_lr")`` -> ``teachers[0].log10_lr``; odd keys are quoted: ``a["x y"]``."""
    text = ""
    for key in keys:
        if isinstance(key, int):
            text += f"[{key}]"
        elif _IDENTIFIER.fullmatch(key):
            text += f".{key}" if text else key
        else:
            text += f"[{json.dumps(key, ensure_ascii=True)}]"
    return text or "(whole file)"


def is_ignored(keys: tuple[Any, ...]) -> bool:
    """True for the fields that record when/where a run happened (see module docstring)."""
    if keys in IGNORED_PATHS:
        return True
    last = keys[-1] if keys else None
    return isinstance(last, str) and (last.endswith(IGNORED_SUFFIX) or last in IGNORED_KEYS)


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"  # before numbers: True == 1 in Python, but not in a finding
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return "null" if value is None else "string"


def _same_leaf(a: Any, b: Any) -> bool:
    """Exact equality; NaN equals NaN (a deterministic pipeline reproduces its NaNs too)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def _compare(a: Any, b: Any, keys: tuple[Any, ...], out: list[Difference]) -> None:
    if is_ignored(keys):
        return
    kind_a, kind_b = _json_type(a), _json_type(b)
    if kind_a != kind_b:
        out.append(Difference(json_path(keys), a, b, "type"))
    elif kind_a == "object":
        _compare_objects(a, b, keys, out)
    elif kind_a == "array":
        _compare_arrays(a, b, keys, out)
    elif not _same_leaf(a, b):
        out.append(Difference(json_path(keys), a, b))


def _compare_objects(a: dict[str, Any], b: dict[str, Any], keys: tuple[Any, ...],
                     out: list[Difference]) -> None:
    for key in sorted(set(a) | set(b)):
        here = (*keys, key)
        if key not in b:
            if not is_ignored(here):
                out.append(Difference(json_path(here), a[key], None, "missing"))
        elif key not in a:
            if not is_ignored(here):
                out.append(Difference(json_path(here), None, b[key], "added"))
        else:
            _compare(a[key], b[key], here, out)


def _compare_arrays(a: list[Any], b: list[Any], keys: tuple[Any, ...], out: list[Difference]) -> None:
    for index in range(max(len(a), len(b))):
        here = (*keys, index)
        if index >= len(b):
            out.append(Difference(json_path(here), a[index], None, "missing"))
        elif index >= len(a):
            out.append(Difference(json_path(here), None, b[index], "added"))
        else:
            _compare(a[index], b[index], here, out)


def compare_findings(recorded: dict[str, Any], rerun: dict[str, Any]) -> list[Difference]:
    """Every difference between two findings documents, in a stable order, ignoring run-time fields."""
    differences: list[Difference] = []
    _compare(recorded, rerun, (), differences)
    return differences


# --------------------------------------------------------------------------------------------------
# Re-hashing inputs and artifacts
# --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ChangedFile:
    """An input (or artifact) whose bytes are not those recorded; ``actual`` is None when it is missing."""

    label: str
    path: str
    expected: str
    actual: str | None
    found: str | None = None
    looked_in: tuple[str, ...] = ()

    def line(self) -> str:
        where = f"{self.label} {visible(self.path)}"
        if self.found and self.found != self.path:
            where += f" (at {visible(self.found)})"
        if self.actual is None:
            places = ", ".join(visible(p) for p in self.looked_in) or visible(self.path)
            return f"{where} is missing: expected sha256 {self.expected}, no file at {places}"
        return f"{where} has changed: expected sha256 {self.expected}, actual sha256 {self.actual}"


def _candidates(entry: dict[str, Any], case_dir: Path | None) -> list[Path]:
    """Where an input may be: relative to the case file first (that is what a re-run reads), then absolute."""
    found: list[Path] = []
    path = entry.get("path")
    if isinstance(path, str) and path:
        recorded = Path(path)
        if recorded.is_absolute():
            found.append(recorded)
        elif case_dir is not None:
            found.append(case_dir / recorded)
    abs_path = entry.get("abs_path")
    if isinstance(abs_path, str) and abs_path and Path(abs_path) not in found:
        found.append(Path(abs_path))
    return found


def _check_file(label: str, shown: str, expected: Any, places: list[Path]) -> ChangedFile | None:
    """Hash the first existing candidate; None when it matches ``expected``."""
    expected = str(expected or "(not recorded)")
    for place in places:
        if place.is_file():
            actual = sha256_file(place)
            return None if actual == expected else ChangedFile(label, shown, expected, actual, str(place))
    return ChangedFile(label, shown, expected, None, looked_in=tuple(str(p) for p in places))


def check_inputs(manifest: dict[str, Any], case_file: Path | None) -> list[ChangedFile]:
    """Re-hash the case file and every input the manifest lists."""
    changed: list[ChangedFile] = []
    entry = manifest.get("case_file") if isinstance(manifest.get("case_file"), dict) else {}
    if case_file is not None:
        problem = _check_file("case file", str(case_file), entry.get("sha256"), [case_file])
        changed += [problem] if problem else []
    case_dir = case_file.parent if case_file is not None else None
    for item in manifest.get("inputs") or []:
        if not isinstance(item, dict):
            continue
        label = f"input {visible(str(item.get('name', '?')))} ({visible(str(item.get('role', '?')))})"
        problem = _check_file(label, str(item.get("path")), item.get("sha256"), _candidates(item, case_dir))
        changed += [problem] if problem else []
    return changed


def check_artifacts(manifest: dict[str, Any], run_dir: Path) -> list[ChangedFile]:
    """Re-hash every artifact the manifest records, so an edited findings.json or figure is caught."""
    artifacts = manifest.get("artifacts") if isinstance(manifest.get("artifacts"), dict) else {}
    changed = []
    for rel, entry in sorted(artifacts.items()):
        expected = entry.get("sha256") if isinstance(entry, dict) else None
        problem = _check_file("artifact", rel, expected, [run_dir / rel])
        changed += [problem] if problem else []
    return changed


def _case_file(manifest: dict[str, Any], run_dir: Path) -> Path | None:
    """The recorded case file: absolute as recorded, else relative to the working or run folder."""
    entry = manifest.get("case_file")
    path = entry.get("path") if isinstance(entry, dict) else entry if isinstance(entry, str) else None
    if not path:
        return None
    recorded = Path(path)
    if recorded.is_absolute():
        return recorded
    return next((p for p in (recorded, run_dir / recorded) if p.is_file()), run_dir / recorded)


# --------------------------------------------------------------------------------------------------
# The whole verification
# --------------------------------------------------------------------------------------------------

@dataclass
class VerifyResult:
    """Outcome of :func:`verify_run`; ``ok`` only when nothing changed, nothing differs and nothing failed."""

    run_dir: Path
    case_file: Path | None
    changed_inputs: list[ChangedFile] = field(default_factory=list)
    changed_artifacts: list[ChangedFile] = field(default_factory=list)
    differences: list[Difference] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    n_inputs: int = 0
    rerun_done: bool = False

    @property
    def ok(self) -> bool:
        return self.rerun_done and not (self.changed_inputs or self.changed_artifacts or self.differences
                                        or self.errors)

    def lines(self) -> list[str]:
        """Printable lines: each problem on its own line, then a one-line verdict."""
        problems = [c.line() for c in self.changed_inputs + self.changed_artifacts]
        problems += [d.line() for d in self.differences] + list(self.errors)
        shown = problems[:MAX_LINES]
        if len(problems) > MAX_LINES:
            shown.append(f"... and {len(problems) - MAX_LINES:,} more problems")
        return shown + [self.verdict()]

    def verdict(self) -> str:
        run = visible(str(self.run_dir))
        if self.ok:
            return (f"verified: {run}: the case file and {self.n_inputs} inputs are unchanged and the "
                    "re-executed findings match exactly")
        counts = [f"{len(self.changed_inputs)} changed or missing inputs",
                  f"{len(self.changed_artifacts)} changed or missing artifacts",
                  f"{len(self.differences)} differing findings", f"{len(self.errors)} errors"]
        return f"NOT verified: {run}: " + ", ".join(counts)


def _load_json(path: Path, what: str) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise VerificationError(f"{what} not found", path=path,
                                fix="give the folder of a complete run (it holds manifest.json)") from None
    except (UnicodeDecodeError, ValueError) as error:
        raise VerificationError(f"{what} is not valid JSON ({error})", path=path,
                                fix="the run folder is damaged: re-run the case") from None
    if not isinstance(value, dict):
        raise VerificationError(f"{what} is not a JSON object", path=path, fix="re-run the case")
    return value


def _rerun(rerun: Rerun, case_file: Path, workdir: Path | None,
           result: VerifyResult) -> dict[str, Any] | None:
    """Re-execute into a fresh folder (kept only when ``workdir`` is given) and load its findings."""
    with tempfile.TemporaryDirectory(prefix="forensics-verify-") as tmp:
        out = (workdir if workdir is not None else Path(tmp)) / "rerun"
        if out.exists():
            raise VerificationError("folder for the re-execution already exists", path=out,
                                    fix="give an empty folder, or none to use a temporary one")
        out.mkdir(parents=True)
        try:
            rerun(case_file, out)
            again = _load_json(out / FINDINGS_NAME, "re-executed findings.json")
        except Exception as error:  # any failure of the re-run is a verification result, not a crash
            LOGGER.debug("re-execution failed", exc_info=True)
            first = str(error).splitlines()[0] if str(error) else ""
            result.errors.append(f"re-execution failed: {type(error).__name__}: {visible(first)}")
            return None
        result.rerun_done = True
        return again


def verify_run(run_dir: str | Path, rerun: Rerun, *, workdir: str | Path | None = None) -> VerifyResult:
    """Re-hash the inputs and artifacts of ``run_dir``, re-execute its case file, compare the findings.

    ``rerun(case_file, out_dir)`` must run the case into ``out_dir`` (an empty folder). Problems are
    collected, not raised, so the reviewer sees all of them at once; only a folder that is not a run
    (no readable manifest or findings) raises :class:`VerificationError`.
    """
    run_dir = Path(run_dir)
    manifest = _load_json(run_dir / MANIFEST_NAME, MANIFEST_NAME)
    recorded = _load_json(run_dir / FINDINGS_NAME, FINDINGS_NAME)
    case_file = _case_file(manifest, run_dir)
    result = VerifyResult(run_dir=run_dir, case_file=case_file,
                          n_inputs=sum(isinstance(i, dict) for i in manifest.get("inputs") or []))
    result.changed_inputs = check_inputs(manifest, case_file)
    result.changed_artifacts = check_artifacts(manifest, run_dir)
    problem = contract_problem(recorded)
    if problem:
        result.errors.append(f"the recorded findings do not follow the findings contract: {visible(problem)}")
    if case_file is None:
        result.errors.append("the manifest records no case file: the case cannot be re-executed")
    elif not case_file.is_file():
        result.errors.append(f"case file not found: {visible(str(case_file))}: the case cannot be re-executed")
    else:
        again = _rerun(rerun, case_file, Path(workdir) if workdir is not None else None, result)
        if again is not None:
            result.differences = compare_findings(recorded, again)
    return result
