"""Reading exchange files and joining a case's sources on the prompt (step ``00_case``).

Every later line of evidence compares, prompt by prompt, what different models answered to the *same*
prompt. A join that paired two different prompts, or a file read with a silently wrong encoding, would
corrupt every finding while looking plausible, so this module is strict and loud:

- **Formats** (by extension): JSON Lines ``.jsonl`` and CSV ``.csv`` and Parquet ``.parquet`` with columns
  ``prompt``, ``response`` (optional ``prompt_id``; other columns kept), and ``.json``: a JSON list of
  objects with ``instruction``/``output`` (the AlpacaEval layout) or ``prompt``/``response``.
  Files are opened read-only, read once, and hashed from the very bytes that were parsed.
  JSON and JSON Lines may instead hold conversations (OpenAI ``messages`` or ShareGPT ``conversations``
  layout, :mod:`forensics.conversations`): one exchange per assistant turn. Records written by
  ``forensics collect`` are screened (:mod:`forensics.collection_records`): failed requests are left
  out with a counted warning, answers cut at max_tokens kept with one, and the collection settings are
  summarised for the manifest.
- **Encoding**: UTF-8, with or without a byte-order mark. UTF-16/32, Latin-1, NUL bytes, unpaired
  surrogates are errors naming the file and line: guessing an encoding changes the text being compared.
- **Untrusted text**: responses and prompts are data only; they are never evaluated or unpickled, and are
  parsed with ``json``/``csv``/``pyarrow`` only.
- **Joining**: on ``prompt_id`` when every row of every file has one, else on the normalised prompt
  (NFKC, zero-width and bidi controls removed, case folded, whitespace collapsed), never on row order.
  Normalisation is deliberately *not* confusable folding: a prompt written with a Cyrillic ``е`` is a
  different prompt from the Latin one and is reported as missing, not joined. One prompt has one key
  across all files: a ``prompt_id`` used for two different prompts, or one prompt under two ids, is an
  error naming both places.
- **Nothing is dropped silently**: every row that is not analysed is either an error or a counted
  warning with examples (the :data:`REJECTS` table), and every prompt outside the aligned corpus is
  listed in ``coverage.json`` with the reason.

Errors versus warnings. What makes the *data* untrustworthy or ambiguous stops the case with an
:class:`InputError` (``file:line: problem (fix: ...)``): unreadable or mis-encoded files, malformed
records, a missing prompt, one prompt with two different answers or two ids, one id for two prompts,
no shared prompts, fewer than ``min_prompts`` analysable prompts. What is well defined but worth
knowing is a counted warning (code, count, first examples), reported in ``coverage.json``:
``empty_response`` (kept, flagged, excluded from the corpus), ``truncated_response`` (original hash
kept), ``duplicate_row`` (identical repeat dropped), ``invisible_chars`` (ignored for joining),
``renamed_column``, ``missing_prompts`` (per source), ``join_on_text`` and ``ids_unshared``.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
import unicodedata
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from forensics import collection_records, conversations
from forensics.case import CASE_REJECTS, Case, Parameters, Source
from forensics.custody import RunFolder, canonical_json, sha256_bytes, sha256_file, sha256_text
from forensics.errors import (
    BIDI_CONTROLS,
    INVISIBLE,
    JOINERS,
    SURROGATE,
    ZERO_WIDTH,
    ForensicsError,
    InputError,
    VerificationError,
)
from forensics.memory import release_unused_memory

STEP = "00_case"
EXCHANGES_ARTIFACT = "artifacts/exchanges.parquet"
COVERAGE_ARTIFACT = "artifacts/coverage.json"
DEFAULT_MAX_RESPONSE_CHARS = Parameters().max_response_chars
MAX_EXAMPLES = 5

#: Every condition on the input and what happens; the README quotes this table. "error" stops the case
#: with a one-line message ``file:line: problem (fix: ...)``; "warning" keeps going and is counted, with
#: examples, in ``coverage.json`` and the report.
REJECTS: list[tuple[str, str, str]] = [
    *CASE_REJECTS,
    ("file extension not .jsonl/.csv/.parquet/.json", "error: InputError", "convert the file"),
    ("file empty, or holding no exchanges", "error: InputError", "supply the model's exchanges"),
    ("UTF-16/UTF-32 (byte-order mark), NUL bytes, invalid UTF-8 (e.g. Latin-1)", "error: InputError",
     "re-encode the file as UTF-8"),
    ("UTF-8 byte-order mark", "accepted silently (it is UTF-8)", "nothing"),
    ("malformed JSON line / JSON document, duplicated key in an object", "error: InputError",
     "fix the JSON at the line given"),
    ("JSON item or line that is not an object; `.json` that is not a list", "error: InputError",
     "write one object per exchange"),
    ("CSV without `prompt`/`response` columns, duplicated header, row with extra or missing fields, "
     "unbalanced quotes", "error: InputError", "fix the CSV at the line given (the error lists the header)"),
    ("Parquet file unreadable or without `prompt`/`response` columns", "error: InputError",
     "rewrite the file"),
    ("prompt missing, empty after normalisation, or not a string", "error: InputError",
     "every exchange needs its prompt"),
    ("response or prompt_id of the wrong type (number, list...); prompt_id a float", "error: InputError",
     "write text (prompt_id may be an integer)"),
    ("NUL character or unpaired surrogate inside a prompt or response", "error: InputError",
     "clean the text; it is not valid Unicode text"),
    ("conversation (`messages` / ShareGPT `conversations`) that is not a non-empty list of messages with a "
     "known role and text content, an assistant turn before any user turn, or a file mixing layouts",
     "error: InputError", "fix the conversation at the line given"),
    ("request that failed on every retry during `forensics collect` (status failed)", "warning: failed_request",
     "excluded from the analysis; re-run the same collect command to retry it"),
    ("answer the server stopped at max_tokens during `forensics collect` (finish_reason length)",
     "warning: length_truncated", "kept; raise --max-tokens and collect again for complete answers"),
    ("same prompt_id for two different prompts in one file", "error: InputError (names both lines)",
     "make ids unique"),
    ("same normalised prompt twice in one file with a different response or prompt_id",
     "error: InputError (names both lines)", "keep one response per prompt and model"),
    ("exact duplicate row (same prompt_id, prompt, response)", "warning: duplicate_row",
     "the first occurrence is kept, the rest dropped and counted"),
    ("response longer than max_response_chars", "warning: truncated_response",
     "truncated; response_sha256 is the hash of the original; raise max_response_chars to keep more"),
    ("empty, whitespace-only, invisible-only (e.g. U+200B) or null response", "warning: empty_response",
     "kept and flagged empty; the prompt is excluded from the aligned corpus (listed in coverage)"),
    ("prompt containing bidi controls or zero-width characters (ZWJ/ZWNJ only when next to a Latin "
     "letter: elsewhere they shape emoji and scripts)", "warning: invisible_chars",
     "kept; the characters are ignored when joining; check for tampering"),
    ("extra column named like a derived column (file, line, empty...)", "warning: renamed_column",
     "kept as extra_<name>"),
    ("some files have prompt_id and others not", "warning: join_on_text",
     "joined on normalised prompt text; add prompt_id everywhere to join on ids"),
    ("every file has prompt_id but no two files share an id (ids of separate collections, e.g. each chat "
     "log's own conversation ids)", "warning: ids_unshared",
     "joined on normalised prompt text; give the files common ids to join on ids"),
    ("prompt_id used for different prompts across files, or one prompt under two ids",
     "error: InputError (names both places)", "make the ids agree, or drop prompt_id to join on text"),
    ("prompt absent from some sources", "warning: missing_prompts (per source)",
     "excluded from the aligned corpus; listed in coverage.json"),
    ("no prompt present in every source", "error: InputError",
     "check that the files answer the same prompts"),
    ("fewer than min_prompts analysable prompts", "error: InputError (names the source lacking most)",
     "supply more shared prompts or lower min_prompts"),
]

_REQUIRED = ("prompt", "response")
_DERIVED = ("prompt_norm", "response_sha256", "truncated", "empty", "file", "line")
_BASE_COLUMNS = ["prompt_id", "prompt", "prompt_norm", "response", "response_sha256", "truncated",
                 "empty", "file", "line"]
JOINED_COLUMNS = ["prompt_key", "prompt", "source", "role", "response", "response_sha256", "truncated",
                  "empty", "file", "line", "conversation_id"]

# Zero-width and bidi characters (forensics.errors) are removed before joining, and reported, because they
# let two visibly equal prompts differ (or vice versa).
_INVISIBLE_RE = re.compile(f"[{INVISIBLE}]"
                           f"|(?<=[A-Za-z])[{JOINERS}]|[{JOINERS}](?=[A-Za-z])")
_STRIP_INVISIBLE = str.maketrans("", "", ZERO_WIDTH + BIDI_CONTROLS)
_JSON_WS = re.compile(r"[ \t\n\r]*")


# --------------------------------------------------------------------------------------------------
# Data classes
# --------------------------------------------------------------------------------------------------

@dataclass
class CountedWarning:
    """A kind of soft problem in one file, with how often it happened and where (first few places)."""

    code: str
    message: str
    count: int = 0
    path: str | None = None
    examples: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "count": self.count, "path": self.path,
                "examples": list(self.examples)}


@dataclass
class ReadResult:
    """One exchange file as read: the rows, the warnings, and the hash of exactly the bytes parsed."""

    path: Path
    format: str
    frame: pd.DataFrame
    warnings: list[CountedWarning]
    sha256: str
    n_bytes: int
    collection: dict[str, Any] | None = None  # how the answers were collected (forensics collect), if known

    def warning_counts(self) -> dict[str, int]:
        return {w.code: w.count for w in self.warnings}


@dataclass(frozen=True)
class AlignedCorpus:
    """The analysis set: prompts every source answered (non-empty), sorted by ``prompt_key``."""

    prompt_keys: list[str]
    prompts: list[str]
    responses: dict[str, list[str]]
    suspect: str
    teachers: list[str]
    references: list[str]
    #: Each prompt's conversation when prompts are turns of conversations (turns of one conversation are
    #: not independent: resamples keep them together, :func:`forensics.scoring.case_bootstrap`); else None.
    groups: list[str] | None = None

    def __post_init__(self) -> None:
        n = len(self.prompt_keys)
        if len(self.prompts) != n or any(len(v) != n for v in self.responses.values()):
            raise ValueError("AlignedCorpus lists must all have one entry per prompt key")
        if self.groups is not None and len(self.groups) != n:
            raise ValueError("AlignedCorpus groups must have one entry per prompt key")
        if set(self.responses) != set(self.sources):
            raise ValueError("AlignedCorpus needs responses for exactly the case's sources")

    @property
    def sources(self) -> list[str]:
        return [self.suspect, *self.teachers, *self.references]

    def __len__(self) -> int:
        return len(self.prompt_keys)


#: What the lines of evidence read: the aligned corpus itself (one definition of its fields, not two).
CorpusLike = AlignedCorpus


@dataclass
class JoinedCase:
    """Every source's exchanges keyed by prompt, plus what is missing, empty or excluded, and why."""

    case: Case
    join_on: str  # "prompt_id" or "prompt_text"
    exchanges: pd.DataFrame
    coverage: dict[str, Any]
    reads: dict[str, ReadResult]

    def corpus(self) -> AlignedCorpus:
        return corpus_from_exchanges(self.exchanges, self.case)


class _Warnings:
    """Accumulates counted warnings for one file, keeping the first few examples of each."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.items: dict[str, CountedWarning] = {}

    def add(self, code: str, message: str, example: str) -> None:
        item = self.items.setdefault(code, CountedWarning(code, message, 0, self.path))
        item.count += 1
        if len(item.examples) < MAX_EXAMPLES:
            item.examples.append(example)

    def as_list(self) -> list[CountedWarning]:
        return list(self.items.values())


# --------------------------------------------------------------------------------------------------
# Normalisation
# --------------------------------------------------------------------------------------------------

def is_empty_response(text: str) -> bool:
    """No visible answer: empty, whitespace or invisible characters only (a lone U+200B is no answer)."""
    return not text.translate(_STRIP_INVISIBLE).strip()


def normalise_prompt(text: str) -> str:
    """The form prompts are joined on: NFKC, invisible characters removed, case folded, spaces collapsed.

    NFKC folds compatibility forms (full-width letters, ligatures, non-breaking spaces) that different
    exports of the same prompt produce; it does not fold cross-script homoglyphs, on purpose.
    """
    folded = unicodedata.normalize("NFKC", text).translate(_STRIP_INVISIBLE).casefold()
    return " ".join(unicodedata.normalize("NFKC", folded).split())


def text_prompt_key(prompt_norm: str) -> str:
    """Key of a prompt when joining on text: 16 hex characters (64 bits) of sha256 of its normal form."""
    return sha256_text(prompt_norm)[:16]


# --------------------------------------------------------------------------------------------------
# Reading one file
# --------------------------------------------------------------------------------------------------

def read_exchanges(path: str | Path, *, max_response_chars: int = DEFAULT_MAX_RESPONSE_CHARS) -> ReadResult:
    """Read one model's exchange file into a validated frame; raise :class:`InputError` on bad input.

    The frame has columns prompt_id (nullable), prompt, prompt_norm, response (truncated to
    ``max_response_chars``), response_sha256 (of the original response), truncated, empty, file, line
    (1-based line where the record starts; for Parquet the 1-based row number), then any extra columns.
    """
    path = Path(path)
    suffix, raw = _read_supported(path)
    if suffix == ".parquet":
        fmt, records = "parquet", _parse_parquet(path, raw)
    else:
        fmt, records = _expand_conversations(path, *_PARSERS[suffix](path, _decode(path, raw)))
    if not records:
        raise InputError("the file holds no exchanges", path=path, fix="supply the model's exchanges")
    _check_unicode(_Place(path, fmt), records)
    warnings = _Warnings(path)
    records, collection = _screen_collected(path, records, warnings)
    frame = _build_frame(path, fmt, records, max_response_chars, warnings, collected=collection is not None)
    return ReadResult(path=path, format=fmt, frame=frame, warnings=warnings.as_list(),
                      sha256=sha256_bytes(raw), n_bytes=len(raw), collection=collection)


def read_prompt_records(path: str | Path) -> tuple[str, list[tuple[int, dict[str, Any]]]]:
    """The raw records of a file of prompts (``response`` optional), conversations left unexpanded.

    ``forensics collect`` reads its prompts with the case reader's parsers, so a prompts file is bad in
    exactly the ways an exchange file is, with the same one-line errors.
    """
    path = Path(path)
    suffix, raw = _read_supported(path)
    if suffix == ".parquet":
        fmt, records = "parquet", _parse_parquet(path, raw, required=("prompt",))
    elif suffix == ".csv":
        fmt, records = _parse_csv(path, _decode(path, raw), required=("prompt",))
    else:
        fmt, records = _PARSERS[suffix](path, _decode(path, raw))
    if not records:
        raise InputError("the file holds no prompts", path=path, fix="supply at least one prompt")
    return fmt, records


def _read_supported(path: Path) -> tuple[str, bytes]:
    """The file's (lower-case) suffix and bytes, once the suffix is known to be a readable format."""
    suffix = path.suffix.lower()
    if suffix not in (*_PARSERS, ".parquet"):
        raise InputError(f"unsupported file type {path.suffix!r}", path=path,
                         fix="use .jsonl, .csv, .parquet or .json (AlpacaEval layout)")
    return suffix, _read_bytes(path)


def _expand_conversations(path: Path, fmt: str, records: list[tuple[int, dict[str, Any]]]
                          ) -> tuple[str, list[tuple[int, dict[str, Any]]]]:
    """Conversation objects (``messages`` / ``conversations``) become one exchange per assistant turn."""
    if not records:
        return fmt, records
    names = {None: "a flat exchange", "messages": "an OpenAI 'messages' conversation",
             "sharegpt": "a ShareGPT 'conversations' conversation"}
    first_line, first = records[0][0], conversations.layout_of(records[0][1])
    for number, obj in records:
        layout = conversations.layout_of(obj)
        if layout != first:
            raise InputError(f"this object is {names[layout]} but line {first_line} is {names[first]}",
                             path=path, line=number, fix="use one layout in the whole file")
    if first is None:
        return fmt, records
    expanded = [(number, turn.as_record()) for number, obj in records
                for turn in conversations.turns(path, number, obj)]
    return f"{fmt.split('-')[0]}-{first}", expanded


def _screen_collected(path: Path, records: list[tuple[int, dict[str, Any]]], warnings: _Warnings
                      ) -> tuple[list[tuple[int, dict[str, Any]]], dict[str, Any] | None]:
    """Records written by ``forensics collect``: failed requests leave the analysis (counted), answers
    the server cut at max_tokens stay (counted), and the collection settings are summarised for custody."""
    screened = collection_records.screen(records)
    if screened is None:
        return records, None
    for line, prompt_id in screened.failed:
        warnings.add("failed_request", "request failed during collection (every retry); excluded from "
                     "the analysis", f"line {line} ({prompt_id})")
    for line, prompt_id in screened.cut_off:
        warnings.add("length_truncated", "the server stopped the answer at max_tokens (finish_reason "
                     "'length'); kept, but the answer is incomplete", f"line {line} ({prompt_id})")
    return screened.kept, screened.summary


def _read_bytes(path: Path) -> bytes:
    try:
        with open(path, "rb") as handle:  # read-only; the same bytes are parsed and hashed
            raw = handle.read()
    except FileNotFoundError:
        raise InputError("file not found", path=path, fix="check the path in the case file") from None
    except OSError as exc:
        raise InputError(f"cannot read the file: {exc.strerror}", path=path,
                         fix="check that it is a readable file") from None
    if not raw.strip():
        raise InputError("the file is empty", path=path, fix="supply the model's exchanges")
    return raw


def _decode(path: Path, raw: bytes) -> str:
    """Strict UTF-8 (BOM allowed); anything else is refused with the line where it goes wrong."""
    fix = "re-encode the file as UTF-8 (e.g. iconv -f <encoding> -t UTF-8)"
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise InputError("the file is UTF-16 or UTF-32 encoded (byte-order mark), not UTF-8", path=path,
                         line=1, fix=fix)
    nul = raw.find(b"\x00")
    if nul >= 0:
        raise InputError("the file contains NUL bytes: it is binary, or UTF-16/UTF-32 without a "
                         "byte-order mark, not UTF-8 text", path=path, line=raw.count(b"\n", 0, nul) + 1,
                         fix=fix)
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8):]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise InputError(f"the file is not valid UTF-8 (byte 0x{raw[exc.start]:02X} on line {line}); "
                         "it is probably Latin-1 or Windows-1252", path=path, line=line, fix=fix) from None


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json`` keeps the last of duplicated keys silently; a duplicated ``response`` must not pass."""
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise _DuplicateKey(key)
        obj[key] = value
    return obj


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_DECODER = json.JSONDecoder(object_pairs_hook=_unique_pairs, parse_constant=_reject_constant)
_JSON_FIX = "fix the JSON syntax on that line"


def _json_value(path: Path, text: str, idx: int, line_offset: int) -> tuple[Any, int]:
    """Decode one JSON value at ``idx``; errors carry the file line (``line_offset`` for JSONL)."""
    try:
        return _DECODER.raw_decode(text, idx)
    except json.JSONDecodeError as exc:
        raise InputError(f"malformed JSON: {exc.msg} (column {exc.colno})", path=path,
                         line=exc.lineno + line_offset, fix=_JSON_FIX) from None
    except _DuplicateKey as exc:
        line = text.count("\n", 0, idx) + 1 + line_offset
        raise InputError(f"key {exc.key!r} appears twice in one object", path=path, line=line,
                         fix="keep one of them") from None
    except (ValueError, RecursionError) as exc:
        line = text.count("\n", 0, idx) + 1 + line_offset
        raise InputError(f"malformed JSON: {exc}", path=path, line=line, fix=_JSON_FIX) from None


def _parse_jsonl(path: Path, text: str) -> tuple[str, list[tuple[int, dict[str, Any]]]]:
    """One JSON object per ``\\n``-separated line (not ``splitlines``: U+2028 may sit inside a string)."""
    records = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue  # blank lines hold no data
        start = _JSON_WS.match(line).end()
        obj, end = _json_value(path, line, start, number - 1)
        if line[end:].strip():
            raise InputError("malformed JSON: extra data after the object", path=path, line=number,
                             fix="put exactly one JSON object on each line")
        if not isinstance(obj, dict):
            raise InputError(f"expected a JSON object, got {type(obj).__name__}", path=path, line=number,
                             fix="write one {\"prompt\": ..., \"response\": ...} object per line")
        records.append((number, obj))
    return "jsonl", records


def _parse_json_list(path: Path, text: str) -> tuple[str, list[tuple[int, dict[str, Any]]]]:
    """A JSON list of objects, decoded item by item so that each keeps the line where it starts."""
    items: list[tuple[int, Any]] = []
    idx = _JSON_WS.match(text, 0).end()
    line, counted = 1, 0

    def line_at(pos: int) -> int:
        nonlocal line, counted
        line += text.count("\n", counted, pos)
        counted = pos
        return line

    if text[idx:idx + 1] != "[":
        raise InputError("expected a JSON list of objects ([{...}, ...])", path=path, line=line_at(idx),
                         fix="write a list of {\"instruction\", \"output\"} objects, or use .jsonl")
    idx = _JSON_WS.match(text, idx + 1).end()
    closed = text[idx:idx + 1] == "]"
    idx += closed
    while not closed:
        idx = _JSON_WS.match(text, idx).end()
        item_line = line_at(idx)
        value, idx = _json_value(path, text, idx, 0)
        items.append((item_line, value))
        idx = _JSON_WS.match(text, idx).end()
        sep = text[idx:idx + 1]
        if sep not in (",", "]"):
            raise InputError("malformed JSON: expected ',' or ']' after a list item", path=path,
                             line=line_at(idx), fix=_JSON_FIX)
        idx += 1
        closed = sep == "]"
    idx = _JSON_WS.match(text, idx).end()
    if idx < len(text):
        raise InputError("malformed JSON: extra data after the list", path=path, line=line_at(idx),
                         fix="keep a single JSON list in the file")
    return _json_layout(path, items)


def _json_layout(path: Path, items: list[tuple[int, Any]]) -> tuple[str, list[tuple[int, dict[str, Any]]]]:
    """Map the AlpacaEval names (instruction/output) to prompt/response; one layout per file."""
    records = []
    alpaca: bool | None = None
    for number, obj in items:
        if not isinstance(obj, dict):
            raise InputError(f"list item is {type(obj).__name__}, not an object", path=path, line=number,
                             fix="every item must be an object with instruction/output or prompt/response")
        has_alpaca = "instruction" in obj or "output" in obj
        has_plain = "prompt" in obj or "response" in obj
        if has_alpaca and has_plain:
            raise InputError("object mixes instruction/output with prompt/response", path=path,
                             line=number, fix="use one pair of names")
        this = has_alpaca
        alpaca = this if alpaca is None else alpaca
        if this != alpaca and (has_alpaca or has_plain):
            raise InputError("objects mix the AlpacaEval layout (instruction/output) with prompt/response",
                             path=path, line=number, fix="use one pair of names in the whole file")
        if alpaca:
            obj = {("prompt" if k == "instruction" else "response" if k == "output" else k): v
                   for k, v in obj.items()}
        records.append((number, obj))
    return ("json-alpaca" if alpaca else "json"), records


def _parse_csv(path: Path, text: str, required: tuple[str, ...] = _REQUIRED
               ) -> tuple[str, list[tuple[int, dict[str, Any]]]]:
    """CSV with a header row; every value stays a string; each record keeps the line where it starts."""
    old_limit = csv.field_size_limit()
    csv.field_size_limit(2**31 - 1)  # the default 128 KiB per field would reject long responses
    try:
        return "csv", _csv_records(path, text, required)
    finally:
        csv.field_size_limit(old_limit)


def _csv_records(path: Path, text: str, required: tuple[str, ...]) -> list[tuple[int, dict[str, Any]]]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header: list[str] | None = None
    header_line, prev, records = 0, 0, []
    try:
        for row in reader:
            start, prev = prev + 1, reader.line_num
            if not row:
                continue  # blank line
            if header is None:
                header, header_line = _csv_header(path, row, start, required), start
                continue
            if len(row) != len(header):
                raise InputError(f"row has {len(row)} fields but the header (line {header_line}) has "
                                 f"{len(header)}: {', '.join(header)}", path=path, line=start,
                                 fix="quote fields that contain commas, quotes or newlines")
            records.append((start, dict(zip(header, row, strict=True))))
    except csv.Error as exc:
        raise InputError(f"malformed CSV: {exc}", path=path, line=reader.line_num,
                         fix="check the quoting on that line") from None
    return records


def _csv_header(path: Path, row: list[str], line: int, required: tuple[str, ...]) -> list[str]:
    header = [name.strip() for name in row]
    dupes = sorted({n for n in header if header.count(n) > 1})
    if dupes:
        raise InputError(f"duplicated column name(s) in the header: {', '.join(dupes)}", path=path,
                         line=line, fix="give every column a distinct name")
    missing = [c for c in required if c not in header]
    if missing:
        raise InputError(f"missing column(s) {', '.join(missing)}; the header has: {', '.join(header)}",
                         path=path, line=line,
                         fix="name the columns prompt and response (comma-separated, first line)")
    return header


def _parse_parquet(path: Path, raw: bytes, required: tuple[str, ...] = _REQUIRED) -> list[tuple[int, dict[str, Any]]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(pa.BufferReader(raw))
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise InputError(f"not a readable Parquet file: {exc}", path=path,
                         fix="rewrite it, e.g. with pandas DataFrame.to_parquet") from None
    missing = [c for c in required if c not in table.column_names]
    if missing:
        raise InputError(f"missing column(s) {', '.join(missing)}; the file has: "
                         f"{', '.join(table.column_names)}", path=path,
                         fix="name the columns prompt and response")
    try:
        rows = table.to_pylist()
    except (UnicodeDecodeError, pa.ArrowException) as exc:
        raise InputError(f"cannot decode the text columns: {exc}", path=path,
                         fix="re-write the file with UTF-8 text columns") from None
    return list(enumerate(rows, start=1))


# --------------------------------------------------------------------------------------------------
# Validating rows
# --------------------------------------------------------------------------------------------------

class _Place:
    """How to point at a record: ``file:line`` for text formats, ``file: row N`` for Parquet."""

    def __init__(self, path: Path, fmt: str) -> None:
        self.path, self.by_row = path, fmt == "parquet"

    def error(self, number: int, problem: str, fix: str) -> InputError:
        if self.by_row:
            return InputError(f"row {number}: {problem}", path=self.path, fix=fix)
        return InputError(problem, path=self.path, line=number, fix=fix)

    def name(self, number: int) -> str:
        return f"row {number}" if self.by_row else f"line {number}"


def _check_text(place: _Place, number: int, column: str, value: Any) -> None:
    if not isinstance(value, str):
        raise place.error(number, f"'{column}' must be text, got {type(value).__name__}",
                          f"write the {column} as a string")
    if "\x00" in value:
        raise place.error(number, f"'{column}' contains a NUL character", "remove NUL characters")
    _refuse_surrogate(place, number, column, value)


def _refuse_surrogate(place: _Place, number: int, where: str, text: str) -> None:
    """Refuse a string holding an unpaired surrogate, naming the record and the field it is in."""
    bad = SURROGATE.search(text)
    if bad:
        raise place.error(number, f"'{where}' contains an unpaired surrogate U+{ord(bad.group()):04X}",
                          "fix the text's encoding; it is not valid Unicode")


def _check_unicode(place: _Place, records: list[tuple[int, dict[str, Any]]]) -> None:
    """Refuse an unpaired surrogate anywhere in a record (keys, extra fields, the collection block), not
    only in the prompt and response: JSON's ``\\udXXX`` escapes decode to one, and it cannot be written to
    Parquet, JSON or a report later, where the error would no longer name the file and line. The prompt,
    response and prompt_id values are left to :func:`_check_text`, which names them the same way."""
    checked_later = ("prompt", "response", "prompt_id")
    for number, obj in records:
        rest = {k: (None if k in checked_later else v) for k, v in obj.items()}
        for where, text in _strings(rest, ""):
            _refuse_surrogate(place, number, where or text[:40], text)


def _strings(value: Any, where: str) -> Iterator[tuple[str, str]]:
    """Every string inside a parsed record, keys included, with the dotted path of where it is."""
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, dict):
        for key, item in value.items():
            path = f"{where}.{key}" if where else str(key)
            if isinstance(key, str):
                yield path, key
            yield from _strings(item, path)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, f"{where}[{index}]")


def _prompt_id(place: _Place, number: int, value: Any) -> str | None:
    """Ids may be text or integers (JSON ``1`` and CSV ``"1"`` are the same id); empty means none."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise place.error(number, f"'prompt_id' must be text or an integer, got {type(value).__name__}",
                          "write ids as strings or whole numbers")
    text = str(value).strip()
    if isinstance(value, str):
        _check_text(place, number, "prompt_id", value)
    return text or None


def _build_frame(path: Path, fmt: str, records: list[tuple[int, dict[str, Any]]], max_chars: int,
                 warnings: _Warnings, collected: bool = False) -> pd.DataFrame:
    place = _Place(path, fmt)
    # a conversation's turns carry the conversation they belong to (the bootstrap resamples whole
    # conversations), as do the answers `forensics collect` wrote for them; in any other flat file a column
    # of that name is the user's, and must not regroup the prompts
    conversational = collected or fmt.rsplit("-", 1)[-1] in conversations.LAYOUT_KEYS.values()
    extras = _extra_columns(records, warnings, () if conversational else ("conversation_id",))
    rows: list[dict[str, Any]] = []
    seen_id: dict[str, int] = {}
    seen_norm: dict[str, int] = {}
    for number, obj in records:
        row = _row(place, number, obj, max_chars, warnings)
        if _is_duplicate(place, number, row, rows, seen_id, seen_norm, warnings):
            continue
        for original, column in extras.items():
            row[column] = obj.get(original)
        seen_norm[row["prompt_norm"]] = len(rows)
        if row["prompt_id"] is not None:
            seen_id[row["prompt_id"]] = len(rows)
        rows.append(row)
    frame = pd.DataFrame(rows, columns=[*_BASE_COLUMNS, *extras.values()])
    frame["prompt_id"] = pd.array(frame["prompt_id"].tolist(), dtype="string")
    return frame


def _extra_columns(records: list[tuple[int, dict[str, Any]]], warnings: _Warnings,
                   reserved: tuple[str, ...] = ()) -> dict[str, str]:
    """Extra input columns in first-seen order, renamed when they would clash with a derived column (or
    with one of ``reserved``, columns the reader derives for this file's layout)."""
    extras: dict[str, str] = {}
    for _, obj in records:
        for key in obj:
            if key in extras or key in (*_REQUIRED, "prompt_id"):
                continue
            column = key
            if key in _DERIVED or key in ("prompt_key", "source", "role", *reserved):
                column = f"extra_{key}"
                warnings.add("renamed_column", "extra column named like a derived column, kept as "
                             "extra_<name>", f"{key} -> {column}")
            extras[key] = column
    return extras


def _row(place: _Place, number: int, obj: dict[str, Any], max_chars: int,
         warnings: _Warnings) -> dict[str, Any]:
    where = place.name(number)
    if obj.get("prompt") is None:
        raise place.error(number, "no 'prompt' in this record", "every exchange needs its prompt")
    prompt = obj["prompt"]
    _check_text(place, number, "prompt", prompt)
    prompt_norm = normalise_prompt(prompt)
    if not prompt_norm:
        raise place.error(number, "the prompt is empty (or only spaces and invisible characters)",
                          "every exchange needs its prompt")
    if _INVISIBLE_RE.search(prompt):
        warnings.add("invisible_chars", "prompt contains zero-width or bidi control characters "
                     "(ignored when joining; check for tampering)", where)
    if "response" not in obj:
        raise place.error(number, "no 'response' (AlpacaEval: 'output') in this record",
                          "add the response (use \"\" for a model that answered nothing)")
    response = obj["response"]
    if response is None:
        response = ""
    _check_text(place, number, "response", response)
    digest = sha256_text(response)
    truncated = len(response) > max_chars
    if truncated:
        warnings.add("truncated_response", f"response longer than max_response_chars={max_chars} "
                     "truncated (response_sha256 is the hash of the original)",
                     f"{where} ({len(response)} characters)")
        response = response[:max_chars]
    empty = is_empty_response(response)
    if empty:
        warnings.add("empty_response", "empty, whitespace-only or null response (kept, flagged empty, "
                     "excluded from the aligned corpus)", where)
    return {"prompt_id": _prompt_id(place, number, obj.get("prompt_id")), "prompt": prompt,
            "prompt_norm": prompt_norm, "response": response, "response_sha256": digest,
            "truncated": truncated, "empty": empty, "file": str(place.path), "line": number}


def _is_duplicate(place: _Place, number: int, row: dict[str, Any], rows: list[dict[str, Any]],
                  seen_id: dict[str, int], seen_norm: dict[str, int], warnings: _Warnings) -> bool:
    """One prompt, one id, one response per file: exact repeats are counted, conflicts are errors."""
    pid = row["prompt_id"]
    if pid is not None and pid in seen_id:
        first = rows[seen_id[pid]]
        if first["prompt_norm"] != row["prompt_norm"]:
            raise place.error(number, f"prompt_id {pid!r} was already used for a different prompt on "
                              f"{place.name(first['line'])}", "give every prompt its own id")
    if row["prompt_norm"] not in seen_norm:
        return False
    first = rows[seen_norm[row["prompt_norm"]]]
    earlier = place.name(first["line"])
    if first["response_sha256"] != row["response_sha256"]:
        raise place.error(number, f"repeats the prompt of {earlier} with a different response",
                          "keep one response per prompt and model")
    if first["prompt_id"] != pid:
        raise place.error(number, f"repeats the prompt of {earlier} under a different prompt_id "
                          f"({first['prompt_id']!r} vs {pid!r})", "keep one row per prompt")
    warnings.add("duplicate_row", "exact duplicate row dropped (the first occurrence is kept)",
                 f"{place.name(number)} repeats {earlier}")
    return True


# --------------------------------------------------------------------------------------------------
# Joining a case
# --------------------------------------------------------------------------------------------------

def join_case(case: Case, *, enforce_minimum: bool = True) -> JoinedCase:
    """Read every source of ``case`` and key each exchange by its prompt; never by row order.

    Raises :class:`InputError` when no prompt is shared by all sources, or (``enforce_minimum``) when
    fewer than ``parameters.min_prompts`` prompts have a non-empty response from every source.
    """
    reads = _read_sources(case)
    with_ids = all(r.frame["prompt_id"].notna().all() for r in reads.values())
    join_on = "prompt_id" if with_ids and _ids_are_common(reads) else "prompt_text"
    frames = {src.name: _keyed(reads[src.name].frame, join_on) for src in case.sources}
    _check_one_key_per_prompt(case, frames, join_on)
    exchanges = _long_frame(case, frames)
    coverage = _coverage(case, reads, frames, join_on)
    _check_enough(case, coverage, {n: set(f["prompt_key"]) for n, f in frames.items()}, enforce_minimum)
    return JoinedCase(case=case, join_on=join_on, exchanges=exchanges, coverage=coverage, reads=reads)


def _ids_are_common(reads: dict[str, ReadResult]) -> bool:
    """Whether the files' prompt_ids are one scheme: some id appears in two files (or one file is read).

    Ids that no two files share were given by separate collections (each chat log's own conversation
    ids, say): they say nothing about which prompts are the same, so the join falls back to the prompt
    text (warning ``ids_unshared``). Where some files do share ids, a file that deviates from them is an
    error of its own (:func:`_check_one_key_per_prompt`), not a reason to ignore the ids.
    """
    files = {read.path: read for read in reads.values()}
    if len(files) < 2:
        return True
    seen: set[str] = set()
    for read in files.values():
        ids = set(read.frame["prompt_id"].astype(str))
        if ids & seen:
            return True
        seen |= ids
    return False


def _read_sources(case: Case) -> dict[str, ReadResult]:
    """Read each distinct file once, even if two sources name it."""
    by_path: dict[Path, ReadResult] = {}
    reads = {}
    for src in case.sources:
        if src.path not in by_path:
            by_path[src.path] = read_exchanges(src.path,
                                               max_response_chars=case.parameters.max_response_chars)
        reads[src.name] = by_path[src.path]
    return reads


def _keyed(frame: pd.DataFrame, join_on: str) -> pd.DataFrame:
    keyed = frame.copy()
    if join_on == "prompt_id":
        keyed["prompt_key"] = frame["prompt_id"].astype(str)
    else:
        keyed["prompt_key"] = [text_prompt_key(n) for n in frame["prompt_norm"]]
    return keyed


def _check_one_key_per_prompt(case: Case, frames: dict[str, pd.DataFrame], join_on: str) -> None:
    """Across files, a key must mean one prompt and a prompt must have one key; else the join would lie."""
    what = "prompt_id" if join_on == "prompt_id" else "prompt key (hash)"
    by_key: dict[str, tuple[str, str, int]] = {}
    by_norm: dict[str, tuple[str, str, int]] = {}
    for src in case.sources:
        frame = frames[src.name]
        for key, norm, line in zip(frame["prompt_key"], frame["prompt_norm"], frame["line"], strict=True):
            here = f"{src.rel_path}:{line}"
            first = by_key.setdefault(key, (norm, here, line))
            if first[0] != norm:
                raise InputError(f"{what} {key!r} names different prompts here and in {first[1]}",
                                 path=src.path, line=int(line),
                                 fix="make prompt_id values agree across files, or remove prompt_id "
                                     "from every file to join on the prompt text")
            other = by_norm.setdefault(norm, (key, here, line))
            if other[0] != key:
                raise InputError(f"this prompt has prompt_id {key!r} but the same prompt in {other[1]} "
                                 f"has {other[0]!r}", path=src.path, line=int(line),
                                 fix="make prompt_id values agree across files, or remove prompt_id "
                                     "from every file to join on the prompt text")


def _long_frame(case: Case, frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    parts = []
    for order, src in enumerate(case.sources):
        part = frames[src.name].assign(source=src.name, role=src.role, file=src.rel_path, _order=order)
        conversation = part["conversation_id"] if "conversation_id" in part else [None] * len(part)
        part = part.assign(conversation_id=pd.array([None if pd.isna(c) else str(c) for c in conversation],
                                                    dtype="string"))
        parts.append(part[[*JOINED_COLUMNS, "_order"]])
    long = pd.concat(parts, ignore_index=True)
    long = long.sort_values(["prompt_key", "_order"], kind="mergesort").drop(columns="_order")
    long = long.reset_index(drop=True)
    long["line"] = long["line"].astype("int64")
    long["truncated"] = long["truncated"].astype(bool)
    long["empty"] = long["empty"].astype(bool)
    return long


def _coverage(case: Case, reads: dict[str, ReadResult], frames: dict[str, pd.DataFrame],
              join_on: str) -> dict[str, Any]:
    names = [s.name for s in case.sources]
    present = {n: set(frames[n]["prompt_key"]) for n in names}
    answered = {n: set(frames[n].loc[~frames[n]["empty"].astype(bool), "prompt_key"]) for n in names}
    union = set().union(*present.values())
    shared = set.intersection(*present.values())
    analysable = set.intersection(*answered.values())
    warnings = _join_warnings(case, reads, present, union, join_on)
    return {
        "join_on": join_on,
        "prompts_total": len(union),
        "prompts_shared": len(shared),
        "prompts_analysable": len(analysable),
        "min_prompts": case.parameters.min_prompts,
        "sources": {src.name: _source_coverage(src, reads[src.name], frames[src.name],
                                               union - present[src.name]) for src in case.sources},
        "excluded": _excluded(names, present, answered, union - analysable),
        "warnings": warnings,
        "case_warnings": list(case.warnings),
    }


def _source_coverage(src: Source, read: ReadResult, frame: pd.DataFrame, missing: set[str]) -> dict[str, Any]:
    counts = read.warning_counts()
    return {"role": src.role, "file": src.rel_path, "format": read.format, "sha256": read.sha256,
            "bytes": read.n_bytes, "rows": len(frame), "empty": int(frame["empty"].sum()),
            "truncated": int(frame["truncated"].sum()), "duplicates_dropped": counts.get("duplicate_row", 0),
            "missing": len(missing), "missing_prompt_keys": sorted(missing)}


def _excluded(names: list[str], present: dict[str, set[str]], answered: dict[str, set[str]],
              keys: Iterable[str]) -> list[dict[str, Any]]:
    out = []
    for key in sorted(keys):
        missing = [n for n in names if key not in present[n]]
        empty = [n for n in names if key in present[n] and key not in answered[n]]
        reason = "; ".join(part for part in (
            f"missing from {', '.join(missing)}" if missing else "",
            f"empty response from {', '.join(empty)}" if empty else "") if part)
        out.append({"prompt_key": key, "reason": reason, "missing_from": missing, "empty_from": empty})
    return out


def _join_warnings(case: Case, reads: dict[str, ReadResult], present: dict[str, set[str]],
                   union: set[str], join_on: str) -> list[dict[str, Any]]:
    out = []
    for src in case.sources:
        for warning in reads[src.name].warnings:
            out.append({**replace(warning, path=src.rel_path).to_dict(), "source": src.name})
        missing = sorted(union - present[src.name])
        if missing:
            out.append({**CountedWarning("missing_prompts", "prompts present in other sources but not in "
                                         "this one (excluded from the aligned corpus)", len(missing),
                                         src.rel_path, missing[:MAX_EXAMPLES]).to_dict(),
                        "source": src.name})
    with_ids = [s.name for s in case.sources if reads[s.name].frame["prompt_id"].notna().any()]
    if join_on == "prompt_text" and with_ids:
        lacking = [s.name for s in case.sources if not reads[s.name].frame["prompt_id"].notna().all()]
        if lacking:
            out.append({**CountedWarning("join_on_text", "some files have prompt_id and others do not (or "
                                         "not on every row): joined on the normalised prompt text", len(lacking),
                                         None, lacking[:MAX_EXAMPLES]).to_dict(), "source": None})
        else:
            out.append({**CountedWarning("ids_unshared", "every file has prompt_id but no two files share an "
                                         "id (ids of separate collections): joined on the normalised prompt "
                                         "text", len(with_ids), None, with_ids[:MAX_EXAMPLES]).to_dict(),
                        "source": None})
    return out


def _check_enough(case: Case, coverage: dict[str, Any], present: dict[str, set[str]],
                  enforce_minimum: bool) -> None:
    sources = coverage["sources"]
    if coverage["prompts_shared"] == 0:
        mine = present[case.suspect.name]
        others = [s.name for s in case.sources if s is not case.suspect]
        worst = min(others, key=lambda n: len(present[n] & mine))
        raise InputError(f"no prompt appears in every source ({coverage['prompts_total']} distinct prompts "
                         f"in all; {worst} shares {len(present[worst] & mine)} of the suspect's "
                         f"{len(mine)} prompts)", path=case.case_path,
                         fix="check that every file answers the same prompts (same prompt_id values, "
                             "or the same prompt text)")
    n = coverage["prompts_analysable"]
    if enforce_minimum and n < case.parameters.min_prompts:
        lacks = {name: s["missing"] + s["empty"] for name, s in sources.items()}
        worst = max(lacks, key=lambda name: lacks[name])
        raise InputError(f"only {n} prompts are analysable ({coverage['prompts_shared']} shared by all "
                         f"sources, {n} of them with non-empty responses from every source); "
                         f"min_prompts is {case.parameters.min_prompts}; {worst} lacks the most "
                         f"({sources[worst]['missing']} missing, {sources[worst]['empty']} empty)",
                         path=case.case_path,
                         fix="supply more shared prompts, or lower parameters.min_prompts")


# --------------------------------------------------------------------------------------------------
# The aligned corpus, the step, and reloading
# --------------------------------------------------------------------------------------------------

def corpus_from_exchanges(exchanges: pd.DataFrame | ExchangeColumns, case: Case, *,
                          texts: bool | Collection[str] = True) -> AlignedCorpus:
    """Prompts where every source has a non-empty response, sorted by key; prompt text is the suspect's.

    Built one source at a time from row positions (no wide pivot, no filtered copy of the whole frame),
    so the texts are held once more, as the corpus's lists, and not two or three times: at a million
    exchanges that is gigabytes (``benchmarks/bench_memory.py``). ``exchanges`` is the joined frame, or
    step 00's artifact read column by column (:class:`ExchangeColumns`, what :func:`load_corpus` uses):
    then only the texts the corpus keeps are ever decoded whole. Without ``texts``, the corpus has its
    keys, roles and conversations but no texts (:class:`TextsNotLoaded`): for the steps that read only
    those, a million exchanges' texts are not held. With a collection of prompt keys as ``texts``, only
    those prompts' texts are held (:class:`SomeTexts`): what a notebook needs to show a few answers.
    """
    columns = exchanges if isinstance(exchanges, ExchangeColumns) else _FrameColumns(exchanges)
    names = [s.name for s in case.sources]
    answered = ~columns.values("empty").astype(bool)
    source = columns.values("source")
    key = columns.values("prompt_key")
    rows = {n: np.flatnonzero(answered & (source == n)) for n in names}
    shared = set(key[rows[names[0]]].tolist())
    for n in names[1:]:
        shared &= set(key[rows[n]].tolist())
    keys = sorted(str(k) for k in shared)
    # each source's row for each key, in key order
    position = {n: pd.Series(rows[n], index=key[rows[n]]).loc[keys].to_numpy() if keys else rows[n][:0]
                for n in names}
    suspect = case.suspect.name
    groups = (columns.values("conversation_id")[position[suspect]].tolist()
              if "conversation_id" in columns.names else None)
    prompts: Sequence[str]
    responses: dict[str, Sequence[str]]
    if texts is True:
        prompts = [str(p) for p in columns.texts("prompt", {suspect: position[suspect]})[suspect]]
        responses = {n: [str(r) for r in found] for n, found in columns.texts("response", position).items()}
    elif texts is False:
        prompts = TextsNotLoaded(len(keys))
        responses = {n: TextsNotLoaded(len(keys)) for n in names}
    else:
        at = _indices_of(keys, texts)
        some = {n: pos[at] for n, pos in position.items()}
        prompts = SomeTexts(len(keys), at, columns.texts("prompt", {suspect: some[suspect]})[suspect])
        responses = {n: SomeTexts(len(keys), at, found) for n, found in columns.texts("response", some).items()}
    return AlignedCorpus(prompt_keys=keys, prompts=prompts, responses=responses,  # type: ignore[arg-type]
                         suspect=suspect, teachers=[s.name for s in case.teachers],
                         references=[s.name for s in case.references],
                         groups=_conversations(keys, groups))


class TextsNotLoaded(Sequence[str]):
    """The texts of a corpus loaded without them (``load_corpus(..., texts=False)``): it has their number,
    and reading one is an error that says so, never an empty string taken for an answer."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: Any) -> Any:
        raise ForensicsError("this corpus was loaded without its texts",
                             fix="load it with load_corpus(run, case) (texts=True)")


def _indices_of(keys: Sequence[str], wanted: Collection[str]) -> np.ndarray:
    """Corpus indices of the prompt keys ``wanted`` (sorted); an unknown key is an error, not a gap."""
    if isinstance(wanted, str):
        raise TypeError("texts takes a collection of prompt keys, not one key: write [key]")
    index = {k: i for i, k in enumerate(keys)}
    unknown = sorted(set(wanted) - index.keys())
    if unknown:
        raise InputError(f"unknown prompt_key {unknown[0]!r} ({len(unknown)} unknown)",
                         fix="pick keys from the corpus's prompt_keys (load_corpus(run, case, texts=False))")
    return np.array(sorted(index[k] for k in set(wanted)), dtype=np.int64)


class SomeTexts(TextsNotLoaded):
    """The texts of a few prompts of a corpus (``load_corpus(..., texts=keys)``); reading another is an
    error that says so, as for :class:`TextsNotLoaded`."""

    def __init__(self, n: int, at: np.ndarray, found: Sequence[Any]) -> None:
        super().__init__(n)
        self.held = {int(i): str(text) for i, text in zip(at, found, strict=True)}

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, (int, np.integer)) and int(index) in self.held:
            return self.held[int(index)]
        raise ForensicsError(f"this corpus holds the texts of {len(self.held)} prompt(s) only, not of index "
                             f"{index!r}", fix="load it with texts=[the prompt keys you need], or texts=True")


class _FrameColumns:
    """The joined exchanges frame, as :func:`corpus_from_exchanges` reads it."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self.names = list(frame.columns)

    def values(self, name: str) -> np.ndarray:
        return self.frame[name].to_numpy(dtype=object)

    def texts(self, name: str, positions: dict[str, np.ndarray]) -> dict[str, list[Any]]:
        return {s: self.frame[name].take(pos).tolist() for s, pos in positions.items()}


class ExchangeColumns:
    """Step 00's exchanges artifact read column by column: the short columns whole, a text column in
    batches of rows, keeping only the rows asked for. A million exchanges decoded whole hold every prompt
    once per source and, in Arrow's pool, gigabytes the process never gets back."""

    BATCH = 65_536

    def __init__(self, path: Path) -> None:
        import pyarrow.parquet as pq

        self.file = pq.ParquetFile(path)
        self.names = list(self.file.schema_arrow.names)

    def values(self, name: str) -> np.ndarray:
        return self.file.read(columns=[name]).column(name).to_numpy(zero_copy_only=False)

    def texts(self, name: str, positions: dict[str, np.ndarray]) -> dict[str, list[Any]]:
        """Per source, column ``name`` at its row positions (in that order), read in one pass of batches."""
        wanted = np.concatenate(list(positions.values())) if positions else np.zeros(0, dtype=np.int64)
        slot = np.full(self.file.metadata.num_rows, -1, dtype=np.int64)
        slot[wanted] = np.arange(len(wanted))
        out: list[Any] = [None] * len(wanted)
        start = 0
        for batch in self.file.iter_batches(batch_size=self.BATCH, columns=[name]):
            here = slot[start:start + batch.num_rows]
            pick = np.flatnonzero(here >= 0)
            for at, value in zip(here[pick], batch.column(0).take(pa.array(pick)).to_pylist(), strict=True):
                out[at] = value
            start += batch.num_rows
        bounds = np.cumsum([0] + [len(pos) for pos in positions.values()])
        return {s: out[bounds[i]:bounds[i + 1]] for i, s in enumerate(positions)}


def _conversations(keys: list[str], found: list[Any] | None) -> list[str] | None:
    """The suspect's conversation of each prompt (a prompt outside any is a group of its own, named by its
    key), or None when no prompt is a turn of a conversation (or the run folder predates the column): then
    every prompt stands alone."""
    if found is None or all(pd.isna(c) for c in found):
        return None
    return [f"conversation {c}" if not pd.isna(c) else f"prompt {k}" for k, c in zip(keys, found, strict=True)]


def parameters_sha256(parameters: Parameters) -> str:
    """Hash of the canonical JSON of every parameter (defaults included)."""
    return sha256_text(canonical_json(parameters.to_dict()))


def run_step(case: Case, run: RunFolder) -> dict[str, Any]:
    """Step 00_case: join the case, record its inputs in the manifest, write exchanges and coverage.

    The step's start, end and status are recorded by ``notebook.step`` around it, as for every step.
    """
    joined = join_case(case)  # fails before anything is written
    manifest = run.manifest()
    manifest.set("case_file", {"path": str(case.case_path), "name": case.case_path.name,
                               "sha256": sha256_file(case.case_path),
                               "bytes": case.case_path.stat().st_size})
    manifest.set("inputs", [
        {"name": src.name, "role": src.role, "path": src.rel_path, "abs_path": str(src.path),
         "sha256": joined.reads[src.name].sha256, "bytes": joined.reads[src.name].n_bytes,
         **({"collection": joined.reads[src.name].collection} if joined.reads[src.name].collection else {})}
        for src in case.sources])
    manifest.set("case", case.to_dict())
    manifest.set("parameters", case.parameters.to_dict())
    manifest.set("parameters_sha256", parameters_sha256(case.parameters))
    manifest.save()  # before write_*: they reload the manifest from disk to add their artifacts
    run.write_parquet(EXCHANGES_ARTIFACT, joined.exchanges, step=STEP)
    run.write_json(COVERAGE_ARTIFACT, joined.coverage, step=STEP)
    cov = joined.coverage
    return {"case": case.case_id, "join_on": joined.join_on, "sources": len(case.sources),
            "prompts_total": cov["prompts_total"], "prompts_shared": cov["prompts_shared"],
            "prompts_analysable": cov["prompts_analysable"],
            "warnings": [f"{w['source'] or 'join'}: {w['code']} x{w['count']}" for w in cov["warnings"]]
            + list(case.warnings),
            "artifacts": [EXCHANGES_ARTIFACT, COVERAGE_ARTIFACT]}


def load_corpus(run: RunFolder, case: Case, *, texts: bool | Collection[str] = True) -> AlignedCorpus:
    """Rebuild the aligned corpus from step 00_case's artifact (hash-checked) for the later steps; without
    ``texts`` for a step that reads only keys, roles and conversations (:class:`TextsNotLoaded`), with
    ``texts=[prompt keys]`` holding only those prompts' texts (:class:`SomeTexts`, for a notebook's view)."""
    if not run.path(EXCHANGES_ARTIFACT).exists():
        raise ForensicsError(f"{EXCHANGES_ARTIFACT} not found", path=run.root,
                             fix="run step 00_case first")
    recorded = run.manifest().data.get("parameters_sha256")
    if recorded is not None and recorded != parameters_sha256(case.parameters):
        raise VerificationError("the case parameters differ from those step 00_case ran with",
                                path=case.case_path, fix="re-run the case from step 00_case")
    run.check(EXCHANGES_ARTIFACT)
    exchanges = ExchangeColumns(run.path(EXCHANGES_ARTIFACT))
    found = list(dict.fromkeys(exchanges.values("source").tolist()))
    expected = [s.name for s in case.sources]
    if sorted(found) != sorted(expected):
        raise VerificationError(f"the run folder's exchanges hold sources {found}, the case names "
                                f"{expected}", path=run.path(EXCHANGES_ARTIFACT),
                                fix="re-run the case from step 00_case")
    corpus = corpus_from_exchanges(exchanges, case, texts=texts)
    release_unused_memory()  # the decoded batches, before the step's own work
    return corpus


#: The text formats and their parsers (Parquet is read from bytes, see :func:`_parse_parquet`).
_PARSERS = {".jsonl": _parse_jsonl, ".csv": _parse_csv, ".json": _parse_json_list}
