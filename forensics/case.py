"""The case file (``case.yaml``): schema, defaults and path safety.

A case file names one suspect model, one or more candidate teachers and a panel of reference models, each
with a file of prompt/response exchanges, plus optional analysis parameters (README.md, "A case"; it keeps
the project's public contract, CONTRACTS.md).
It is the only thing a reviewer needs to re-run a case, so it is validated strictly, before anything is
read or computed:

- it is parsed with ``yaml.safe_load`` only (no Python tags, no code execution); the node tree from
  ``yaml.compose`` on a ``SafeLoader`` supplies line numbers, so every error says ``case.yaml:LINE``;
- unknown keys, duplicated keys and wrong types are errors, not ignored: a misspelt ``min_promts`` that
  silently fell back to the default would change a finding without anyone noticing;
- scalar types are not coerced: ``case: 0123`` is the integer 83 in YAML 1.1, so identifiers and names
  must be written as strings (the fix says to quote them);
- every exchange file must exist and lie inside the case folder once symlinks and ``..`` are resolved, so
  the case folder is a complete, hashable record of what was analysed.

Soft problems (a reference panel of fewer than two model lines, two sources sharing one file, a family
spelt two ways, a reference declared of a teacher's family) do not stop the case; they are recorded in
:attr:`Case.warnings` and shown in the report.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from forensics.errors import INVISIBLE, CaseFileError

#: File extensions :func:`forensics.exchanges.read_exchanges` understands (checked here, at load time).
EXCHANGE_SUFFIXES = (".jsonl", ".csv", ".parquet", ".json")

#: Nothing is attributed unless the reference panel holds models of at least this many model lines (the LRs
#: are still reported; the case file gets the ``small_panel`` warning; kept here, not beside the scoring, so
#: that loading a case stays light). References that share a ``family`` (versions or sizes of one model
#: line) count once (:func:`panel_families`); a reference without one is a line of its own. The panel's
#: spread, which every z is measured in, is how much *independent* models vary, and versions of one model
#: look alike on everything, so a suspect unlike both resembles every candidate "beyond the panel". On the
#: development benchmark's sub-panels of two references, every control/teacher pair with a supported
#: candidate (71 of 147) had two versions of one model as its panel; two references of different lines
#: supported none (0 of 833 pairs, 0 of 119 control cases with anything supported) and named 76 of 350
#: students' documented families, 1 a wrong one. Since panel-relative-fused-v10 the rule counts model lines,
#: not references: panel-relative-fused-v8 and v9 named nothing below three references, whatever their
#: lines (the twins were the danger, not the count); until v8 two references still attributed a candidate
#: that stood out against unsupported ones.
MIN_PANEL_FAMILIES = 2

ROLES = ("suspect", "teacher", "reference")
_TOP_KEYS = ("case", "title", "suspect", "teachers", "references", "parameters")
_SOURCE_KEYS = ("name", "path", "why", "base_model")
#: A teacher or a reference may also name its family (snapshots, versions or sizes of one model line); see
#: docs/FINDINGS.md. The suspect has none: it is the model in question.
_FAMILY_KEYS = (*_SOURCE_KEYS, "family")
#: The fix for a case file that is not one at all: where a user of the package finds a valid one.
_START_FROM = "start from `forensics case init`, or the example case file in README.md (\"A case\")"
_CASE_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
_MAX_NAME = 200

#: Case-file conditions and what happens, quoted by the README through ``exchanges.REJECTS``.
CASE_REJECTS: list[tuple[str, str, str]] = [
    ("case file missing, not UTF-8, not YAML, or not a mapping", "error: CaseFileError",
     "fix the file at the line given"),
    ("unknown or duplicated key anywhere in the case file", "error: CaseFileError",
     "remove it or correct its spelling (the error lists the allowed keys)"),
    ("value of the wrong type (e.g. unquoted number as a name, bool as an int)", "error: CaseFileError",
     "write the value with the type shown; quote identifiers"),
    ("`case` not made of ASCII letters, digits, '-' and '_'", "error: CaseFileError",
     "rename the case; it names the run folder"),
    ("no teacher or no reference", "error: CaseFileError", "add at least one of each"),
    ("only 1 reference, at `forensics run` or in the notebooks", "error: CaseFileError",
     "add references (one model has no spread to measure the suspect against)"),
    (f"references of fewer than {MIN_PANEL_FAMILIES} model lines (references sharing a `family` count once)",
     "warning: small_panel (Case.warnings)",
     "add references from other developers: versions of one model look alike, and no candidate is named"),
    ("two sources with the same name", "error: CaseFileError", "give every source a distinct name"),
    ("two sources with the same file", "warning: shared_file (Case.warnings)",
     "check the case: a model compared with its own outputs matches trivially"),
    ("family names of teachers differing only in case or spacing, or named like another teacher",
     "warning: family_spelling (Case.warnings)",
     "write each family one way: spellings of one declared family are weighed as one family, a teacher "
     "without a family stays a family of its own"),
    ("a reference declared of a teacher's family (or of a family named like a teacher that has none)",
     "warning: reference_in_teacher_family (Case.warnings)",
     "replace it by a model independent of every candidate: it understates the evidence for that family and "
     "overstates the others' beside it"),
    ("exchange file missing or not a regular file", "error: CaseFileError",
     "correct the path (relative to the case file)"),
    ("exchange path escaping the case folder (`../`, absolute, symlink)", "error: CaseFileError",
     "copy the file into the case folder so the folder is a complete record"),
    ("exchange file extension not .jsonl/.csv/.parquet/.json", "error: CaseFileError",
     "convert the file to one of these formats"),
    ("parameter out of range or unknown", "error: CaseFileError", "see the Case parameters table"),
    ("`embedding_model` looks like a path (contains '/' or starts with '.') that does not exist",
     "error: CaseFileError", "correct the path (relative to the case file) or use an installed name"),
]


# --------------------------------------------------------------------------------------------------
# Data classes
# --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Parameters:
    """Analysis parameters (docs/ARCHITECTURE.md, "Case parameters"); recorded and hashed in the manifest.

    Frozen so that no step can change a parameter after it was recorded.
    """

    embedding_model: str | None = None
    #: ``torch`` or ``onnx-int8`` (forensics.onnx_backend; the ``[onnx]`` extra) for the whole answers; the
    #: openings, the fused semantic line's input, are embedded by torch either way.
    embedding_backend: str = "torch"
    seed: int = 0
    max_response_chars: int = 20000
    min_prompts: int = 30
    bootstrap: int = 500
    permutations: int = 2000
    mfw: int = 300
    #: The semantic line compares the first this-many words of paired answers (see forensics.semantic).
    opening_words: int = 40
    umap_max_points: int = 4000
    canaries: tuple[str, ...] = ()
    #: LR between 1/2 and 2 ("no meaningful support" on the ENFSI-style verbal scale) is inconclusive.
    inconclusive_band: tuple[float, float] = (-0.30103, 0.30103)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able, every key present (defaults included) so the manifest hash covers all of them."""
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        out["canaries"] = list(self.canaries)
        out["inconclusive_band"] = list(self.inconclusive_band)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Parameters:
        """Validate a plain mapping (no line numbers); for tests and callers that build cases in code."""
        return _parse_parameters(data, _Doc.empty(), ("parameters",))


@dataclass(frozen=True)
class Source:
    """One model's exchange file, as named in the case file."""

    name: str
    role: str  # "suspect", "teacher" or "reference"
    path: Path  # resolved, absolute, inside the case folder
    rel_path: str  # the resolved path relative to the case folder, POSIX separators
    why: str | None = None
    base_model: str | None = None
    family: str | None = None  # teachers and references; a source without one is a family of its own

    def to_dict(self) -> dict[str, Any]:
        out = {"name": self.name, "role": self.role, "path": self.rel_path, "why": self.why,
               "base_model": self.base_model}
        if self.role != "suspect":
            out["family"] = self.family
        return out


@dataclass
class Case:
    """A validated case file; every path in it is resolved and known to lie inside :attr:`case_dir`."""

    case_id: str
    title: str | None
    case_path: Path
    case_dir: Path
    suspect: Source
    teachers: list[Source]
    references: list[Source]
    parameters: Parameters = field(default_factory=Parameters)
    warnings: list[str] = field(default_factory=list)
    #: ``parameters.embedding_model`` resolved against the case folder when it names a local path.
    embedding_model_path: Path | None = None

    @property
    def sources(self) -> list[Source]:
        """Suspect, teachers, references, in case-file order: the order of every table and figure."""
        return [self.suspect, *self.teachers, *self.references]

    @property
    def reference_family(self) -> dict[str, str | None]:
        """Reference name -> its declared family (None: a model line of its own), for :func:`panel_families`."""
        return declared_families(self.references)

    def source(self, name: str) -> Source:
        for src in self.sources:
            if src.name == name:
                return src
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able record for the manifest; paths relative to the case folder, so it is portable."""
        return {
            "case": self.case_id,
            "title": self.title,
            "case_file": self.case_path.name,
            "suspect": self.suspect.to_dict(),
            "teachers": [s.to_dict() for s in self.teachers],
            "references": [s.to_dict() for s in self.references],
            "parameters": self.parameters.to_dict(),
            "warnings": list(self.warnings),
        }


def declared_families(sources: Sequence[Source]) -> dict[str, str | None]:
    """Source name -> its declared family (None: a family, or model line, of its own)."""
    return {s.name: s.family for s in sources}


def family_key(family: str) -> str:
    """The form in which family names are compared, for teachers and references alike: without regard to
    case and runs of spaces ("Vendor C" and "vendor  c" are one family). Why: a family decides what is
    weighed together (teachers) and what counts as one model line (references); a difference of spelling in
    a hand-written case file must not split one model line into two."""
    return " ".join(family.casefold().split())


def panel_families(references: Sequence[str], family_of: Mapping[str, str | None]) -> int:
    """How many model lines a reference panel holds: references sharing a family count once (compared by
    :func:`family_key`), a reference without one is a line of its own, whatever its name (the count
    :data:`MIN_PANEL_FAMILIES` asks of a panel that names a candidate)."""
    lines = set()
    for r in references:
        family = family_of.get(r)
        lines.add(("family", family_key(family)) if family else ("reference", r))
    return len(lines)


def family_groups(teachers: Sequence[str], family_of: Mapping[str, str | None]) -> dict[str, list[str]]:
    """Family name -> its members, in case order: teachers whose declared families match by
    :func:`family_key` are one family, named by its first spelling. A teacher without a family is a family
    of its own, named after it, unless another teacher declares a family spelled exactly like its name
    (then it belongs to it: "teachers sharing it are one family"); two teachers without one never merge."""
    spelt = {f for f in (family_of.get(t) for t in teachers) if f}
    name_of: dict[tuple[str, str], str] = {}
    groups: dict[str, list[str]] = {}
    for t in teachers:
        family = family_of.get(t) or (t if t in spelt else None)
        key = ("family", family_key(family)) if family else ("teacher", t)
        groups.setdefault(name_of.setdefault(key, family or t), []).append(t)
    return groups


def _family_warnings(teachers: Sequence[Source], references: Sequence[Source]) -> list[str]:
    """``family_spelling``: one family spelt two ways (weighed as one, under the first spelling), or two
    families weighed apart whose names differ only in case or spacing; ``reference_in_teacher_family``: a
    reference declared of a candidate's family. The panel stands for models independent of every candidate;
    a member of a candidate's family in it widens the spread that family's evidence is measured in by
    exactly the resemblance the case is about, and shifts the panel's preferences between candidates
    towards it: the evidence for that family is understated, the other candidates' overstated beside it."""
    groups = family_groups([t.name for t in teachers], declared_families(teachers))
    out = []
    for name, members in groups.items():
        spellings = list(dict.fromkeys(t.family for t in teachers if t.name in members and t.family))
        if len(spellings) > 1:
            out.append(f"family_spelling: teachers {', '.join(members)} name their family "
                       f"{', '.join(repr(f) for f in spellings)}, which differ only in case or spacing; they are "
                       f"weighed as one family, {name!r}")
    for name, members in groups.items():
        clash = [t.name for t in teachers if t.name not in members and family_key(t.name) == family_key(name)]
        if clash:
            out.append(f"family_spelling: the family {name!r} of teacher(s) {', '.join(members)} is named like "
                       f"teacher {clash[0]}, which is not in it; name the family otherwise")
    by_key: dict[str, list[str]] = {}
    for name in groups:
        by_key.setdefault(family_key(name), []).append(name)
    for names in by_key.values():
        if len(names) > 1:
            out.append(f"family_spelling: the families {', '.join(repr(n) for n in names)} (a teacher without a "
                       f"family is one of its own) differ only in case or spacing but are weighed apart; give "
                       f"their teachers one `family` if they are one model line")
    for r in references:
        for name in by_key.get(family_key(r.family), []) if r.family else []:
            out.append(f"reference_in_teacher_family: reference {r.name} is declared of family {r.family!r}, "
                       f"the family {name!r} of teacher(s) {', '.join(groups[name])}; the panel should be "
                       f"independent of every candidate: this reference makes the evidence for that family look "
                       f"weaker than it is, and the other candidates' stronger beside it")
    return out


# --------------------------------------------------------------------------------------------------
# Line numbers from the YAML node tree
# --------------------------------------------------------------------------------------------------

Key = tuple[str | int, ...]


class _Doc:
    """Line numbers (1-based) of every key and value in the case file, addressed by their key path.

    Mapping keys are addressed by their text as written (``str``), sequence items by index (``int``).
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.key_lines: dict[Key, int] = {}
        self.value_lines: dict[Key, int] = {}
        self.scalars: dict[Key, str] = {}  # scalar values as written (``0123``, not the integer 83)

    @classmethod
    def empty(cls) -> _Doc:
        return cls(None)

    def line(self, where: Key, *, key: bool = False) -> int | None:
        """Line of ``where`` (its key if ``key``), falling back to the nearest enclosing entry."""
        table = self.key_lines if key else self.value_lines
        while where:
            if where in table:
                return table[where]
            if where in self.value_lines:
                return self.value_lines[where]
            where = where[:-1]
        return self.value_lines.get((), None)

    def written(self, where: Key, value: Any) -> str:
        """The value as the user wrote it, for fixes that say how to quote it."""
        return self.scalars.get(where, str(value))

    def error(self, problem: str, where: Key, fix: str, *, key: bool = False) -> CaseFileError:
        return CaseFileError(problem, path=self.path, line=self.line(where, key=key), fix=fix)

    def index(self, node: yaml.Node, where: Key = (), seen: set[int] | None = None) -> None:
        """Record the lines of ``node`` and its children; reject duplicated mapping keys."""
        seen = set() if seen is None else seen
        self.value_lines.setdefault(where, node.start_mark.line + 1)
        if isinstance(node, yaml.ScalarNode):
            self.scalars.setdefault(where, str(node.value))
        if id(node) in seen:  # an alias: already indexed, and re-walking could be exponential
            return
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            names: dict[str, int] = {}
            for key_node, value_node in node.value:
                name = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "<complex key>"
                line = key_node.start_mark.line + 1
                if name in names:
                    raise CaseFileError(f"key '{name}' appears twice (first on line {names[name]})",
                                        path=self.path, line=line, fix="keep one of them")
                names[name] = line
                self.key_lines[(*where, name)] = line
                self.index(value_node, (*where, name), seen)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self.index(item, (*where, i), seen)


# --------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------

def load_case(path: str | Path, *, min_references: int = 1) -> Case:
    """Read, validate and resolve a case file; raise :class:`CaseFileError` on the first problem.

    ``min_references``: the evidence steps need :data:`forensics.scoring.MIN_PANEL` references (one model
    has no spread to measure the suspect against), and ``forensics run`` and the notebooks ask for it, so
    such a case is refused with its line before any step runs; reading and joining alone accept one.
    """
    case_path = Path(path)
    data, doc = _read_yaml(case_path)
    case_path = case_path.resolve()
    doc.path = case_path
    case_dir = case_path.parent
    if data is None:
        raise CaseFileError("the case file is empty (only comments or blank lines)", path=case_path,
                            fix=_START_FROM)
    if not isinstance(data, dict):
        raise doc.error(f"the case file must be a mapping of keys, got {_type_name(data)}", (),
                        _START_FROM)
    _check_keys(data, _TOP_KEYS, (), doc)
    warnings: list[str] = []
    case_id = _parse_case_id(data, doc)
    title = _optional_str(data, "title", (), doc)
    suspect = _parse_source(_required(data, "suspect", (), doc), "suspect", ("suspect",), case_dir, doc)
    teachers = _parse_source_list(data, "teachers", "teacher", case_dir, doc)
    references = _parse_source_list(data, "references", "reference", case_dir, doc)
    if len(references) < min_references:
        raise doc.error(f"'references' lists {len(references)} model(s); a case needs at least {min_references}: "
                        "the evidence is the suspect's resemblance beyond the spread among the references",
                        ("references",), "add reference models believed independent of every teacher")
    lines = panel_families([r.name for r in references], declared_families(references))
    if lines < MIN_PANEL_FAMILIES:
        panel = ("only 1 reference model" if len(references) == 1
                 else f"the {len(references)} reference models are all of one model line (references sharing a "
                      f"family count once)")
        warnings.append(f"small_panel: {panel}; against fewer than {MIN_PANEL_FAMILIES} model lines "
                        f"panel-relative z-scores are unstable, and no candidate is named")
    sources = [suspect, *teachers, *references]
    _check_unique_names(sources, doc)
    warnings.extend(_shared_file_warnings(sources))
    warnings.extend(_family_warnings(teachers, references))
    parameters = _parse_parameters(data.get("parameters"), doc, ("parameters",))
    model_path = _resolve_model_path(parameters.embedding_model, case_dir, doc)
    return Case(case_id=case_id, title=title, case_path=case_path, case_dir=case_dir, suspect=suspect,
                teachers=teachers, references=references, parameters=parameters, warnings=warnings,
                embedding_model_path=model_path)


def _read_yaml(case_path: Path) -> tuple[Any, _Doc]:
    """Parse with the safe loader twice: ``compose`` for line numbers, ``safe_load`` for the values."""
    doc = _Doc(case_path)
    if not case_path.is_file():
        raise CaseFileError("case file not found", path=case_path,
                            fix="give the path of an existing case.yaml")
    raw = case_path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise CaseFileError("the case file is not valid UTF-8", path=case_path, line=line,
                            fix="re-encode it as UTF-8") from None
    if not text.strip():
        raise CaseFileError("the case file is empty", path=case_path,
                            fix=_START_FROM)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        fix = "check indentation, colons and quotes on that line"
        if isinstance(exc, yaml.constructor.ConstructorError):
            fix = "remove the '!' tag: a case file holds plain values only (tags are never executed)"
        raise CaseFileError(f"not valid YAML: {problem}", path=case_path,
                            line=mark.line + 1 if mark else None, fix=fix) from None
    if node is not None:
        doc.index(node)
    return data, doc


def _type_name(value: Any) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
             dict: "a mapping", type(None): "nothing (null)"}
    return names.get(type(value), type(value).__name__)


def _check_keys(mapping: dict[Any, Any], allowed: tuple[str, ...], where: Key, doc: _Doc) -> None:
    for key in mapping:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise doc.error(f"unknown key '{key}'", (*where, str(key)),
                            f"{hint}allowed keys here: {', '.join(allowed)}", key=True)


def _required(mapping: dict[str, Any], key: str, where: Key, doc: _Doc) -> Any:
    if key not in mapping or mapping[key] is None:
        raise doc.error(f"missing required key '{key}'", where if where else (key,),
                        f"add '{key}:' (see the example case file in README.md, \"A case\")")
    return mapping[key]


def _optional_str(mapping: dict[str, Any], key: str, where: Key, doc: _Doc) -> str | None:
    value = mapping.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise doc.error(f"'{key}' must be a string, got {_type_name(value)}", (*where, key),
                        f"quote the value: {key}: \"{doc.written((*where, key), value)}\"")
    return value


def _parse_case_id(data: dict[str, Any], doc: _Doc) -> str:
    value = _required(data, "case", (), doc)
    if not isinstance(value, str):
        raise doc.error(f"'case' must be a string, got {_type_name(value)} (YAML reads unquoted numbers "
                        "as numbers)", ("case",), f"quote it: case: \"{doc.written(('case',), value)}\"")
    if not _CASE_ID.fullmatch(value):
        raise doc.error(f"case identifier {value!r} may hold only ASCII letters, digits, '-' and '_' "
                        "(1-128 characters); it names the run folder", ("case",),
                        "rename it, e.g. my-case-01")
    return value


def _parse_source_list(data: dict[str, Any], key: str, role: str, case_dir: Path,
                       doc: _Doc) -> list[Source]:
    items = _required(data, key, (), doc)
    if not isinstance(items, list):
        raise doc.error(f"'{key}' must be a list of {{name, path}} entries, got {_type_name(items)}",
                        (key,), f"write '{key}:' followed by '- {{name: ..., path: ...}}' lines")
    if not items:
        raise doc.error(f"'{key}' is empty; a case needs at least one {role}", (key,),
                        f"add a {role} with name and path")
    return [_parse_source(item, role, (key, i), case_dir, doc) for i, item in enumerate(items)]


def _parse_source(item: Any, role: str, where: Key, case_dir: Path, doc: _Doc) -> Source:
    if not isinstance(item, dict):
        raise doc.error(f"each {role} must be a mapping with 'name' and 'path', got {_type_name(item)}",
                        where, "write it as {name: ..., path: ...}")
    _check_keys(item, _SOURCE_KEYS if role == "suspect" else _FAMILY_KEYS, where, doc)
    name = _required(item, "name", where, doc)
    if not isinstance(name, str) or not name.strip() or len(name) > _MAX_NAME or name != name.strip() \
            or any(ord(c) < 32 for c in name):
        raise doc.error(f"{role} name must be a non-empty string (no surrounding spaces or control "
                        f"characters, at most {_MAX_NAME} characters), got {name!r}", (*where, "name"),
                        "quote the name, e.g. name: \"model-13b-chat\"")
    raw_path = _required(item, "path", where, doc)
    if not isinstance(raw_path, str) or not raw_path.strip():
        raise doc.error(f"{role} '{name}': 'path' must be a non-empty string, got {raw_path!r}",
                        (*where, "path"), "give the exchange file's path relative to the case file")
    path, rel = _resolve_input(raw_path, role, name, case_dir, (*where, "path"), doc)
    why = _optional_str(item, "why", where, doc)
    base_model = _optional_str(item, "base_model", where, doc)
    family = _optional_str(item, "family", where, doc) if role != "suspect" else None
    if family is not None and (not family.strip() or family != family.strip() or len(family) > _MAX_NAME
                               or any(ord(c) < 32 or c in INVISIBLE for c in family)):
        # a family decides what counts as one model line: "Vendor C" and "Vendor C" with a zero-width
        # space would otherwise be two lines that look like one
        raise doc.error(f"{role} '{name}': 'family' must be a non-empty string (no surrounding spaces, control "
                        f"or invisible characters, at most {_MAX_NAME} characters), got {family!r}",
                        (*where, "family"), "write the model line's name, e.g. family: \"Vendor A chat\"")
    return Source(name=name, role=role, path=path, rel_path=rel, why=why, base_model=base_model, family=family)


def _resolve_input(raw: str, role: str, name: str, case_dir: Path, where: Key,
                   doc: _Doc) -> tuple[Path, str]:
    """Resolve an exchange path (symlinks and ``..`` included) and require it to stay in the case folder."""
    given = Path(raw).expanduser()
    candidate = given if given.is_absolute() else case_dir / given
    resolved = candidate.resolve()
    try:
        rel = resolved.relative_to(case_dir)
    except ValueError:
        how = "is a symlink that resolves" if _has_symlink(candidate, case_dir) else "points"
        raise doc.error(f"{role} '{name}': path {raw!r} {how} outside the case folder ({resolved})",
                        where, f"copy the file into {case_dir} and give its relative path") from None
    if not resolved.exists():
        raise doc.error(f"{role} '{name}': file not found: {raw!r} (looked for {resolved})", where,
                        f"correct the path; it is relative to the case file's folder {case_dir}")
    if not resolved.is_file():
        raise doc.error(f"{role} '{name}': {raw!r} is not a regular file", where,
                        "point at the exchange file itself")
    if resolved.suffix.lower() not in EXCHANGE_SUFFIXES:
        raise doc.error(f"{role} '{name}': unsupported file type {resolved.suffix!r} for {raw!r}", where,
                        f"convert it to one of {', '.join(EXCHANGE_SUFFIXES)}")
    return resolved, rel.as_posix()


def _has_symlink(candidate: Path, case_dir: Path) -> bool:
    """Whether a component of ``candidate`` below the case folder is a symlink (for a clearer message)."""
    try:
        parts = candidate.relative_to(case_dir).parts
    except ValueError:
        return False
    current = case_dir
    for part in parts:
        current = current / part
        if current.is_symlink():
            return True
    return False


def _check_unique_names(sources: list[Source], doc: _Doc) -> None:
    """Source names key every table and finding; two sources with one name would overwrite each other."""
    seen: dict[str, str] = {}
    for src in sources:
        if src.name in seen:
            raise CaseFileError(f"source name '{src.name}' is used twice ({seen[src.name]} and {src.role})",
                                path=doc.path, line=_name_line(src, sources, doc),
                                fix="give every source a distinct name")
        seen[src.name] = src.role


def _name_line(dup: Source, sources: list[Source], doc: _Doc) -> int | None:
    """Line of the second occurrence of ``dup.name``: find its key path by role and position."""
    count = 0
    for key, role in (("suspect", "suspect"), ("teachers", "teacher"), ("references", "reference")):
        same_role = [s for s in sources if s.role == role]
        for i, src in enumerate(same_role):
            if src.name == dup.name:
                count += 1
                if count == 2:
                    where: Key = (key, "name") if key == "suspect" else (key, i, "name")
                    return doc.line(where)
    return None


def _shared_file_warnings(sources: list[Source]) -> list[str]:
    by_path: dict[Path, list[str]] = {}
    for src in sources:
        by_path.setdefault(src.path, []).append(src.name)
    return [f"shared_file: sources {', '.join(names)} all read {path.name}; a model compared with its own "
            "outputs matches trivially" for path, names in by_path.items() if len(names) > 1]


# --------------------------------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------------------------------

#: Integer parameters and their smallest allowed value.
_INT_MINIMA = {"seed": 0, "max_response_chars": 1, "min_prompts": 1, "bootstrap": 1, "permutations": 1,
               "mfw": 1, "opening_words": 1, "umap_max_points": 2}
#: Upper limits: far above any sensible value, so that a typo (an extra few zeros) stops at the case file
#: with its line instead of as hours of bootstrap or an exhausted memory inside a notebook.
_INT_MAXIMA = {"seed": 2**32 - 1, "max_response_chars": 10_000_000, "min_prompts": 10_000_000,
               "bootstrap": 100_000, "permutations": 1_000_000, "mfw": 100_000, "opening_words": 10_000,
               "umap_max_points": 10_000_000}
_PARAM_KEYS = tuple(f.name for f in fields(Parameters))


def _parse_parameters(data: Any, doc: _Doc, where: Key) -> Parameters:
    if data is None:
        return Parameters()
    if not isinstance(data, dict):
        raise doc.error(f"'parameters' must be a mapping, got {_type_name(data)}", where,
                        "write 'parameters:' followed by indented 'key: value' lines")
    _check_keys(data, _PARAM_KEYS, where, doc)
    values: dict[str, Any] = {}
    for key, value in data.items():
        at = (*where, key)
        if key == "embedding_model":
            values[key] = _parse_model(value, at, doc)
        elif key == "embedding_backend":
            values[key] = _parse_backend(value, at, doc)
        elif key == "canaries":
            values[key] = _parse_canaries(value, at, doc)
        elif key == "inconclusive_band":
            values[key] = _parse_band(value, at, doc)
        else:
            values[key] = _parse_int(key, value, at, doc)
    return Parameters(**values)


def _parse_int(key: str, value: Any, at: Key, doc: _Doc) -> int:
    low = _INT_MINIMA[key]
    # bool is an int subclass in Python: `seed: yes` must not become seed 1.
    if not isinstance(value, int) or isinstance(value, bool):
        raise doc.error(f"parameter '{key}' must be an integer, got {_type_name(value)}", at,
                        f"write a whole number >= {low}")
    high = _INT_MAXIMA[key]
    if not low <= value <= high:
        bound = f"from {low} to {high:,}"
        raise doc.error(f"parameter '{key}' is {value}; it must be {bound}", at, f"use a value {bound}")
    return value


def _parse_model(value: Any, at: Key, doc: _Doc) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise doc.error(f"'embedding_model' must be a model name or path, got {value!r}", at,
                        "give an installed model name or a local path, or remove the key for the default")
    return value


def _parse_backend(value: Any, at: Key, doc: _Doc) -> str:
    from forensics.onnx_backend import BACKENDS, DEFAULT_BACKEND

    if value is None:
        return DEFAULT_BACKEND
    if value not in BACKENDS:
        raise doc.error(f"'embedding_backend' must be one of {', '.join(BACKENDS)}, got {value!r}", at,
                        f"write embedding_backend: {DEFAULT_BACKEND} (or remove the key)")
    return value


def _parse_canaries(value: Any, at: Key, doc: _Doc) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise doc.error(f"'canaries' must be a list of strings, got {_type_name(value)}", at,
                        "write canaries: [\"string one\", \"string two\"]")
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            raise doc.error(f"canary {i + 1} must be a non-empty string, got {item!r}", (*at, i),
                            "quote each canary string")
    return tuple(value)


def _parse_band(value: Any, at: Key, doc: _Doc) -> tuple[float, float]:
    ok = isinstance(value, list) and len(value) == 2 and all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in value)
    if not ok:
        raise doc.error(f"'inconclusive_band' must be two numbers [low, high], got {value!r}", at,
                        "write inconclusive_band: [-1.0, 1.0]")
    low, high = float(value[0]), float(value[1])
    if low > high:
        raise doc.error(f"'inconclusive_band' low {low} is above high {high}", at, "swap the two numbers")
    return low, high


def looks_like_path(name: str) -> bool:
    """The rule for ``embedding_model``: a value with '/' or a leading '.' is a local path, not a name."""
    return "/" in name or name.startswith(".")


def _resolve_model_path(model: str | None, case_dir: Path, doc: _Doc) -> Path | None:
    """A local model path must exist now, not fail an hour later in the embedding step.

    Unlike exchange files, a model may live outside the case folder (models are large and shared); the
    embedding step fingerprints it, which is what custody needs.
    """
    if model is None or not looks_like_path(model):
        return None
    given = Path(model).expanduser()
    resolved = (given if given.is_absolute() else case_dir / given).resolve()
    if not resolved.exists():
        raise doc.error(f"embedding_model path {model!r} does not exist (looked for {resolved})",
                        ("parameters", "embedding_model"),
                        "correct the path (relative to the case file), or give an installed model name, "
                        "or remove the key to use the packaged all-MiniLM-L6-v2")
    return resolved
