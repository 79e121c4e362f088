"""Generate a corpus of bad (and borderline) inputs, each with the outcome the suite must produce.

Usage: ``python tests/bad_inputs/make_bad_inputs.py OUTDIR`` writes one folder per case under OUTDIR and
``OUTDIR/expected.json``; ``tests/test_bad_inputs.py`` calls :func:`build` into a temporary folder.

The files are generated rather than committed because several are binary, huge, encoding-broken or
symlinks (which git and editors would "fix"), and absolute paths must point into the test's own folder.

Each case returns its expectation:

- ``kind``: ``read`` (``read_exchanges(target)``), ``case`` (``load_case(target)``) or ``join``
  (``join_case(load_case(target))``);
- ``error``: the exception class name, with ``contains``: substrings of the one-line message (file
  name and line where they apply); or ``error: None`` and then ``warnings`` (exact counts of warning
  codes for ``read``; summed over sources for ``join``), ``case_warnings`` (prefixes) and ``coverage``
  (dotted keys into coverage.json with their values).
"""

from __future__ import annotations

import codecs
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

Expectation = dict[str, Any]
REGISTRY: dict[str, Callable[[Path], Expectation]] = {}
N_PROMPTS = 40  # above the default min_prompts (30)
PROMPTS = [f"Question {i}: explain topic number {i} in two sentences." for i in range(N_PROMPTS)]


def case(func: Callable[[Path], Expectation]) -> Callable[[Path], Expectation]:
    """Register a generator; its name names the case, and it is called with its own folder ``d``."""
    REGISTRY[func.__name__] = func
    return func


def error(kind: str, target: str, cls: str, *contains: str) -> Expectation:
    return {"kind": kind, "target": target, "error": cls, "contains": list(contains)}


def ok(kind: str, target: str, **expected: Any) -> Expectation:
    return {"kind": kind, "target": target, "error": None, **expected}


def write(path: Path, data: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    path.write_bytes(data)
    return path


def put(d: Path, name: str, data: str | bytes) -> str:
    """Write ``d/name``; return its path relative to the corpus root (the case's ``target``)."""
    write(d / name, data)
    return f"{d.name}/{name}"


def parquet(d: Path, name: str, frame: pd.DataFrame) -> str:
    d.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(d / name)
    return f"{d.name}/{name}"


def jsonl(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def rows_for(model: str, prompts: list[str] = PROMPTS) -> list[dict[str, Any]]:
    return [{"prompt": p, "response": f"{model} answers: {p}"} for p in prompts]


def case_yaml(d: Path, files: dict[str, str], extra: str = "", *, suspect: str = "suspect.jsonl",
              teachers: tuple[str, ...] = ("teacher.jsonl",),
              references: tuple[str, ...] = ("ref1.jsonl", "ref2.jsonl", "ref3.jsonl")) -> str:
    """Write a case folder: exchange files under ex/ and a case.yaml naming them."""
    for name, text in files.items():
        write(d / "ex" / name, text)
    lines = ["case: bad-input-test", "suspect:", "  name: suspect", f"  path: ex/{suspect}", "teachers:"]
    lines += [f"  - {{name: {Path(t).stem}, path: ex/{t}}}" for t in teachers]
    lines += ["references:"] + [f"  - {{name: {Path(r).stem}, path: ex/{r}}}" for r in references]
    write(d / "case.yaml", "\n".join(lines) + "\n" + extra)
    return f"{d.name}/case.yaml"


def standard_files(prompts: list[str] = PROMPTS) -> dict[str, str]:
    return {f"{m}.jsonl": jsonl(rows_for(m, prompts)) for m in ("suspect", "teacher", "ref1", "ref2", "ref3")}


def raw_case(d: Path, text: str) -> str:
    """A case.yaml written verbatim next to valid exchange files (for schema errors)."""
    for name, content in standard_files().items():
        write(d / "ex" / name, content)
    write(d / "case.yaml", text)
    return f"{d.name}/case.yaml"


GOOD_CASE = """case: bad-input-test
suspect: {name: suspect, path: ex/suspect.jsonl}
teachers:
  - {name: teacher, path: ex/teacher.jsonl}
references:
  - {name: ref1, path: ex/ref1.jsonl}
  - {name: ref2, path: ex/ref2.jsonl}
  - {name: ref3, path: ex/ref3.jsonl}
"""


# ------------------------------------------------------------------------------------------------
# JSON Lines and JSON
# ------------------------------------------------------------------------------------------------

@case
def jsonl_malformed_line(d: Path) -> Expectation:
    broken = '{"prompt": "x", "response": \n'
    text = jsonl(rows_for("m", PROMPTS[:2])) + broken + jsonl(rows_for("m", PROMPTS[2:3]))
    t = put(d, "bad.jsonl", text)
    return error("read", t, "InputError", "bad.jsonl:3:", "malformed JSON")


@case
def jsonl_not_object(d: Path) -> Expectation:
    t = put(d, "bad.jsonl", jsonl(rows_for("m", PROMPTS[:1])) + '["a", "b"]\n')
    return error("read", t, "InputError", "bad.jsonl:2:", "expected a JSON object")


@case
def jsonl_duplicate_key(d: Path) -> Expectation:
    t = put(d, "bad.jsonl", '{"prompt": "a", "response": "x", "response": "y"}\n')
    return error("read", t, "InputError", "bad.jsonl:1:", "'response' appears twice")


@case
def jsonl_nan_constant(d: Path) -> Expectation:
    t = put(d, "bad.jsonl", '{"prompt": "a", "response": "x"}\n{"prompt": "b", "response": NaN}\n')
    return error("read", t, "InputError", "bad.jsonl:2:", "NaN")


@case
def jsonl_response_number(d: Path) -> Expectation:
    t = put(d, "bad.jsonl", '{"prompt": "a", "response": 42}\n')
    return error("read", t, "InputError", "bad.jsonl:1:", "'response' must be text")


@case
def jsonl_prompt_missing(d: Path) -> Expectation:
    t = put(d, "bad.jsonl", '{"prompt": "a", "response": "x"}\n{"response": "y"}\n')
    return error("read", t, "InputError", "bad.jsonl:2:", "no 'prompt'")


@case
def jsonl_response_missing(d: Path) -> Expectation:
    t = put(d, "bad.jsonl", '{"prompt": "a"}\n')
    return error("read", t, "InputError", "bad.jsonl:1:", "no 'response'")


@case
def jsonl_prompt_blank(d: Path) -> Expectation:
    t = put(d, "bad.jsonl", '{"prompt": "a", "response": "x"}\n{"prompt": " \\t\\n", "response": "y"}\n')
    return error("read", t, "InputError", "bad.jsonl:2:", "prompt is empty")


@case
def jsonl_prompt_only_invisible(d: Path) -> Expectation:
    t = put(d, "bad.jsonl", '{"prompt": "\\u200b\\u202e", "response": "y"}\n')
    return error("read", t, "InputError", "bad.jsonl:1:", "prompt is empty")


@case
def jsonl_nul_escape(d: Path) -> Expectation:
    t = put(d, "bad.jsonl", '{"prompt": "a", "response": "x\\u0000y"}\n')
    return error("read", t, "InputError", "bad.jsonl:1:", "NUL character")


@case
def jsonl_lone_surrogate(d: Path) -> Expectation:
    t = put(d, "bad.jsonl", '{"prompt": "a", "response": "x"}\n{"prompt": "b\\ud800", "response": "y"}\n')
    return error("read", t, "InputError", "bad.jsonl:2:", "unpaired surrogate")


@case
def jsonl_surrogate_in_extra_field(d: Path) -> Expectation:
    t = put(d, "bad.jsonl", '{"prompt": "a", "response": "x", "meta": {"tags": ["ok", "b\\udc00"]}}\n')
    return error("read", t, "InputError", "bad.jsonl:1:", "'meta.tags[1]' contains an unpaired surrogate")


@case
def jsonl_surrogate_in_key(d: Path) -> Expectation:
    t = put(d, "bad.jsonl", '{"prompt": "a", "response": "x"}\n{"prompt": "b", "response": "y", "k\\udc00": 1}\n')
    return error("read", t, "InputError", "bad.jsonl:2:", "'k[U+DC00]' contains an unpaired surrogate")


@case
def jsonl_surrogate_in_collection_block(d: Path) -> Expectation:
    t = put(d, "bad.jsonl", '{"prompt": "a", "response": "x", "collection": {"status": "ok", "model": "m\\udc00"}}\n')
    return error("read", t, "InputError", "bad.jsonl:1:", "'collection.model' contains an unpaired surrogate")


@case
def flat_conversation_id_is_an_extra_column(d: Path) -> Expectation:
    """Only a conversation's turns are grouped for the bootstrap; a flat file's column of that name is kept
    as data (one shared value would otherwise make every bootstrap replicate the same prompts)."""
    rows = [{"prompt": p, "response": "x", "conversation_id": "same"} for p in ("a", "b")]
    t = put(d, "c.jsonl", jsonl(rows))
    return ok("read", t, warnings={"renamed_column": 1}, rows=2)


@case
def csv_header_with_terminal_escapes(d: Path) -> Expectation:
    t = put(d, "bad.csv", "prompt,\x1b[31mRED,\u202eevil\na,b,c\n")
    return error("read", t, "InputError", "bad.csv:1:", "[U+001B][31mRED", "[U+202E]evil")


@case
def jsonl_prompt_id_float(d: Path) -> Expectation:
    t = put(d, "bad.jsonl", '{"prompt_id": 1.5, "prompt": "a", "response": "x"}\n')
    return error("read", t, "InputError", "bad.jsonl:1:", "'prompt_id' must be")


@case
def json_unterminated(d: Path) -> Expectation:
    text = '[\n  {"instruction": "a", "output": "x"},\n  {"instruction": "b", "output": "y"\n'
    t = put(d, "bad.json", text)
    return error("read", t, "InputError", "bad.json:", "malformed JSON")


@case
def json_trailing_comma(d: Path) -> Expectation:
    t = put(d, "bad.json", '[\n{"instruction": "a", "output": "x"},\n]\n')
    return error("read", t, "InputError", "bad.json:3:", "malformed JSON")


@case
def json_not_a_list(d: Path) -> Expectation:
    t = put(d, "bad.json", '{"instruction": "a", "output": "x"}\n')
    return error("read", t, "InputError", "bad.json:1:", "expected a JSON list")


@case
def json_item_not_object(d: Path) -> Expectation:
    t = put(d, "bad.json", '[\n{"instruction": "a", "output": "x"},\n"just text"\n]\n')
    return error("read", t, "InputError", "bad.json:3:", "not an object")


@case
def json_mixed_layout(d: Path) -> Expectation:
    text = '[\n{"instruction": "a", "output": "x"},\n{"prompt": "b", "response": "y"}\n]\n'
    t = put(d, "bad.json", text)
    return error("read", t, "InputError", "bad.json:3:", "mix")


@case
def json_extra_data(d: Path) -> Expectation:
    t = put(d, "bad.json", '[{"instruction": "a", "output": "x"}]\n[]\n')
    return error("read", t, "InputError", "bad.json:2:", "extra data")


@case
def json_empty_list(d: Path) -> Expectation:
    t = put(d, "bad.json", "[]\n")
    return error("read", t, "InputError", "bad.json", "holds no exchanges")


# ------------------------------------------------------------------------------------------------
# CSV
# ------------------------------------------------------------------------------------------------

@case
def csv_missing_column(d: Path) -> Expectation:
    t = put(d, "bad.csv", "prompt,answer\nhello,world\n")
    return error("read", t, "InputError", "bad.csv:1:",
                 "missing column(s) response", "the header has: prompt, answer")


@case
def csv_semicolons(d: Path) -> Expectation:
    t = put(d, "bad.csv", "prompt;response\nhello;world\n")
    return error("read", t, "InputError", "bad.csv:1:", "missing column(s) prompt, response")


@case
def csv_extra_field(d: Path) -> Expectation:
    t = put(d, "bad.csv", "prompt,response\na,x\nb,y,surplus\n")
    return error("read", t, "InputError", "bad.csv:3:", "row has 3 fields")


@case
def csv_missing_field(d: Path) -> Expectation:
    t = put(d, "bad.csv", "prompt,response\na,x\nb,y\nc\n")
    return error("read", t, "InputError", "bad.csv:4:", "row has 1 fields")


@case
def csv_error_after_multiline_field(d: Path) -> Expectation:
    """Line numbers count physical lines: a quoted three-line response moves the next record down."""
    t = put(d, "bad.csv", 'prompt,response\na,"line one\nline two\nline three"\nb\n')
    return error("read", t, "InputError", "bad.csv:5:", "row has 1 fields")


@case
def csv_unclosed_quote(d: Path) -> Expectation:
    t = put(d, "bad.csv", 'prompt,response\na,x\nb,"never closed\n')
    return error("read", t, "InputError", "bad.csv:", "malformed CSV")


@case
def csv_duplicate_header(d: Path) -> Expectation:
    t = put(d, "bad.csv", "prompt,response,response\na,x,y\n")
    return error("read", t, "InputError", "bad.csv:1:", "duplicated column")


@case
def csv_header_only(d: Path) -> Expectation:
    t = put(d, "bad.csv", "prompt,response\n")
    return error("read", t, "InputError", "bad.csv", "holds no exchanges")


@case
def csv_empty_prompt(d: Path) -> Expectation:
    t = put(d, "bad.csv", "prompt_id,prompt,response\n1,a,x\n2,,y\n")
    return error("read", t, "InputError", "bad.csv:3:", "prompt is empty")


# ------------------------------------------------------------------------------------------------
# Encodings and bytes
# ------------------------------------------------------------------------------------------------

@case
def utf16_with_bom(d: Path) -> Expectation:
    t = put(d, "bad.jsonl", jsonl(rows_for("m", PROMPTS[:3])).encode("utf-16"))
    return error("read", t, "InputError", "bad.jsonl:1:", "UTF-16", "re-encode")


@case
def utf16_without_bom(d: Path) -> Expectation:
    t = put(d, "bad.csv", "prompt,response\na,x\n".encode("utf-16-le"))
    return error("read", t, "InputError", "bad.csv:1:", "NUL bytes", "UTF-8")


@case
def utf32_with_bom(d: Path) -> Expectation:
    t = put(d, "bad.jsonl", jsonl(rows_for("m", PROMPTS[:1])).encode("utf-32"))
    return error("read", t, "InputError", "bad.jsonl:1:", "UTF-16 or UTF-32")


@case
def latin1_csv(d: Path) -> Expectation:
    t = put(d, "bad.csv", "prompt,response\na,x\ncaf\u00e9?,un caf\u00e9\n".encode("latin-1"))
    return error("read", t, "InputError", "bad.csv:3:", "not valid UTF-8", "Latin-1")


@case
def mixed_encoding_jsonl(d: Path) -> Expectation:
    """Concatenated exports: UTF-8 lines, then one Latin-1 line (line 4)."""
    good = jsonl(rows_for("m", PROMPTS[:3])).encode()
    bad = '{"prompt": "na\u00efve?", "response": "r\u00e9sum\u00e9"}\n'.encode("latin-1")
    t = put(d, "bad.jsonl", good + bad)
    return error("read", t, "InputError", "bad.jsonl:4:", "not valid UTF-8")


@case
def nul_bytes(d: Path) -> Expectation:
    t = put(d, "bad.jsonl", b'{"prompt": "a", "response": "x"}\n{"prompt": "b\x00", "response": "y"}\n')
    return error("read", t, "InputError", "bad.jsonl:2:", "NUL bytes")


@case
def utf8_bom_jsonl(d: Path) -> Expectation:
    t = put(d, "good.jsonl", codecs.BOM_UTF8 + jsonl(rows_for("m", PROMPTS[:3])).encode())
    return ok("read", t, warnings={}, rows=3)


@case
def utf8_bom_csv(d: Path) -> Expectation:
    """The BOM must not end up glued to the first column name ('\\ufeffprompt')."""
    t = put(d, "good.csv", codecs.BOM_UTF8 + b"prompt,response\na,x\nb,y\n")
    return ok("read", t, warnings={}, rows=2)


@case
def utf8_bom_json(d: Path) -> Expectation:
    t = put(d, "good.json", codecs.BOM_UTF8 + b'[{"instruction": "a", "output": "x"}]')
    return ok("read", t, warnings={}, rows=1)


@case
def empty_file(d: Path) -> Expectation:
    t = put(d, "empty.jsonl", b"")
    return error("read", t, "InputError", "empty.jsonl", "empty")


@case
def whitespace_file(d: Path) -> Expectation:
    t = put(d, "blank.csv", b"\n\n   \r\n")
    return error("read", t, "InputError", "blank.csv", "empty")


@case
def unsupported_extension(d: Path) -> Expectation:
    t = put(d, "data.txt", "prompt\tresponse\n")
    return error("read", t, "InputError", "data.txt", "unsupported file type")


# ------------------------------------------------------------------------------------------------
# Parquet
# ------------------------------------------------------------------------------------------------

@case
def parquet_missing_column(d: Path) -> Expectation:
    t = parquet(d, "bad.parquet", pd.DataFrame({"prompt": ["a"], "answer": ["x"]}))
    return error("read", t, "InputError", "bad.parquet",
                 "missing column(s) response", "prompt, answer")


@case
def parquet_garbage(d: Path) -> Expectation:
    t = put(d, "bad.parquet", b"this is not parquet at all\n" * 10)
    return error("read", t, "InputError", "bad.parquet", "not a readable Parquet")


@case
def parquet_numeric_response(d: Path) -> Expectation:
    t = parquet(d, "bad.parquet", pd.DataFrame({"prompt": ["a", "b"], "response": [1, 2]}))
    return error("read", t, "InputError", "bad.parquet", "row 1",
                 "'response' must be text")


@case
def parquet_null_prompt(d: Path) -> Expectation:
    t = parquet(d, "bad.parquet", pd.DataFrame({"prompt": ["a", None], "response": ["x", "y"]}))
    return error("read", t, "InputError", "bad.parquet", "row 2", "no 'prompt'")


# ------------------------------------------------------------------------------------------------
# Duplicates, sizes, empties (warnings and errors inside one file)
# ------------------------------------------------------------------------------------------------

@case
def duplicate_id_different_text(d: Path) -> Expectation:
    rows = [{"prompt_id": "p1", "prompt": "a", "response": "x"},
            {"prompt_id": "p2", "prompt": "b", "response": "y"},
            {"prompt_id": "p1", "prompt": "c", "response": "z"}]
    t = put(d, "bad.jsonl", jsonl(rows))
    return error("read", t, "InputError", "bad.jsonl:3:", "'p1'",
                 "line 1")


@case
def duplicate_prompt_different_response(d: Path) -> Expectation:
    text = "prompt,response\nHello there,x\n  hello   THERE ,y\n"  # same prompt once normalised
    t = put(d, "bad.csv", text)
    return error("read", t, "InputError", "bad.csv:3:",
                 "repeats the prompt of line 2", "different response")


@case
def duplicate_prompt_different_id(d: Path) -> Expectation:
    rows = [{"prompt_id": 1, "prompt": "a", "response": "x"},
            {"prompt_id": 2, "prompt": "a", "response": "x"}]
    t = put(d, "bad.jsonl", jsonl(rows))
    return error("read", t, "InputError", "bad.jsonl:2:",
                 "line 1", "different prompt_id")


@case
def exact_duplicate_rows(d: Path) -> Expectation:
    rows = rows_for("m", PROMPTS[:3])
    t = put(d, "dup.jsonl", jsonl([*rows, rows[0], rows[2], rows[0]]))
    return ok("read", t, warnings={"duplicate_row": 3}, rows=3)


@case
def huge_response(d: Path) -> Expectation:
    rows = rows_for("m", PROMPTS[:2]) + [{"prompt": "Write a lot.", "response": "word " * 700_000}]
    t = put(d, "big.jsonl", jsonl(rows))
    return ok("read", t, warnings={"truncated_response": 1}, rows=3)


@case
def huge_response_csv(d: Path) -> Expectation:
    """Above the csv module's default 128 KiB field limit, which must not turn into an error."""
    text = "prompt,response\na,x\nb," + "y" * 2_000_000 + "\n"
    t = put(d, "big.csv", text)
    return ok("read", t, warnings={"truncated_response": 1}, rows=2)


@case
def empty_responses(d: Path) -> Expectation:
    text = "prompt,response\na,x\nb,\nc,   \nd,y\n"
    t = put(d, "empties.csv", text)
    return ok("read", t, warnings={"empty_response": 2}, rows=4)


@case
def null_response(d: Path) -> Expectation:
    t = put(d, "n.json", '[{"instruction": "a", "output": null}, {"instruction": "b", "output": "y"}]')
    return ok("read", t, warnings={"empty_response": 1}, rows=2)


@case
def colliding_extra_column(d: Path) -> Expectation:
    rows = [{"prompt": "a", "response": "x", "line": 7, "file": "elsewhere.txt"}]
    t = put(d, "c.jsonl", jsonl(rows))
    return ok("read", t, warnings={"renamed_column": 2}, rows=1)


# ------------------------------------------------------------------------------------------------
# Unicode tricks
# ------------------------------------------------------------------------------------------------

@case
def rlo_override(d: Path) -> Expectation:
    rows = rows_for("m", PROMPTS[:2]) + [{"prompt": "Rate this file: \u202egnp.exe", "response": "ok"}]
    t = put(d, "u.jsonl", jsonl(rows))
    return ok("read", t, warnings={"invisible_chars": 1}, rows=3)


@case
def zero_width_chars(d: Path) -> Expectation:
    rows = [{"prompt": "Tell\u200b me a joke", "response": "x"},
            {"prompt": "What is 2\ufeff+2?", "response": "4"},
            {"prompt": "Emoji \U0001f9d9\u200d\u2642\ufe0f is fine", "response": "y"}]
    t = put(d, "u.jsonl", jsonl(rows))
    return ok("read", t, warnings={"invisible_chars": 2}, rows=3)


@case
def homoglyph_not_joined(d: Path) -> Expectation:
    """The suspect's prompt 0 uses Cyrillic 'е' (U+0435): it must not be joined with the Latin prompt."""
    files = standard_files()
    cyrillic = PROMPTS[0].replace("e", "\u0435")
    suspect = rows_for("suspect")
    suspect[0]["prompt"] = cyrillic
    files["suspect.jsonl"] = jsonl(suspect)
    target = case_yaml(d, files)
    return ok("join", target, warnings={"missing_prompts": 5},
              coverage={"prompts_total": N_PROMPTS + 1, "prompts_shared": N_PROMPTS - 1,
                        "prompts_analysable": N_PROMPTS - 1, "sources.suspect.missing": 1,
                        "sources.teacher.missing": 1, "sources.ref2.missing": 1})


@case
def invisible_chars_still_join(d: Path) -> Expectation:
    """Zero-width and bidi controls, case and spacing differences do not stop a join (they are warned)."""
    files = standard_files()
    teacher = rows_for("teacher")
    teacher[0]["prompt"] = "  " + PROMPTS[0].upper().replace(" ", "\u200b  ")
    files["teacher.jsonl"] = jsonl(teacher)
    target = case_yaml(d, files)
    return ok("join", target, warnings={"invisible_chars": 1},
              coverage={"prompts_total": N_PROMPTS, "prompts_analysable": N_PROMPTS})


# ------------------------------------------------------------------------------------------------
# Joins
# ------------------------------------------------------------------------------------------------

@case
def no_overlap(d: Path) -> Expectation:
    files = standard_files()
    files["ref3.jsonl"] = jsonl(rows_for("ref3", [p + " (other set)" for p in PROMPTS]))
    target = case_yaml(d, files)
    return error("join", target, "InputError", "case.yaml", "no prompt appears in every source",
                 "ref3 shares 0")


@case
def too_few_shared(d: Path) -> Expectation:
    files = standard_files()
    files["teacher.jsonl"] = jsonl(rows_for("teacher", PROMPTS[:20]))
    files["ref1.jsonl"] = jsonl(rows_for("ref1", PROMPTS[:35]))
    target = case_yaml(d, files)
    return error("join", target, "InputError", "case.yaml", "only 20 prompts are analysable",
                 "min_prompts is 30",
                 "teacher lacks the most")


@case
def empties_reduce_below_minimum(d: Path) -> Expectation:
    files = standard_files()
    ref1 = rows_for("ref1")
    for row in ref1[:15]:
        row["response"] = " "
    files["ref1.jsonl"] = jsonl(ref1)
    target = case_yaml(d, files)
    return error("join", target, "InputError", "only 25 prompts are analysable", "40 shared",
                 "ref1 lacks the most")


@case
def empties_excluded(d: Path) -> Expectation:
    files = standard_files()
    ref1 = rows_for("ref1")
    for row in ref1[:3]:
        row["response"] = ""
    files["ref1.jsonl"] = jsonl(ref1)
    target = case_yaml(d, files)
    return ok("join", target, warnings={"empty_response": 3},
              coverage={"prompts_shared": N_PROMPTS, "prompts_analysable": N_PROMPTS - 3,
                        "sources.ref1.empty": 3})


@case
def id_means_different_prompts(d: Path) -> Expectation:
    """Two exports numbered differently: joining on the ids would pair different prompts."""
    files = {}
    for i, model in enumerate(("suspect", "teacher", "ref1", "ref2", "ref3")):
        shift = 1 if model == "ref2" else 0
        rows = [{"prompt_id": str(j + shift), **r} for j, r in enumerate(rows_for(model))]
        files[f"{model}.jsonl"] = jsonl(rows if i % 2 else rows[::-1])
    target = case_yaml(d, files)
    return error("join", target, "InputError", "ref2.jsonl:",
                 "prompt_id '1' names different prompts here and in ex/")


@case
def one_prompt_two_ids(d: Path) -> Expectation:
    files = {}
    for model in ("suspect", "teacher", "ref1", "ref2", "ref3"):
        prefix = "ref3" if model == "ref3" else "q"
        rows = [{"prompt_id": f"{prefix}-{j}", **r} for j, r in enumerate(rows_for(model))]
        files[f"{model}.jsonl"] = jsonl(rows)
    target = case_yaml(d, files)
    return error("join", target, "InputError", "ref3.jsonl:1:", "has prompt_id 'ref3-0'", "has 'q-0'")


@case
def ids_in_some_files_only(d: Path) -> Expectation:
    files = standard_files()
    files["teacher.jsonl"] = jsonl([{"prompt_id": j, **r} for j, r in enumerate(rows_for("teacher"))])
    target = case_yaml(d, files)
    return ok("join", target, warnings={"join_on_text": 4}, coverage={"join_on": "prompt_text",
                                                                      "prompts_analysable": N_PROMPTS})


# ------------------------------------------------------------------------------------------------
# Case files
# ------------------------------------------------------------------------------------------------

@case
def case_unknown_top_key(d: Path) -> Expectation:
    target = raw_case(d, GOOD_CASE + "referencs: []\n")
    return error("case", target, "CaseFileError", "case.yaml:9:", "unknown key 'referencs'",
                 "did you mean 'references'")


@case
def case_unknown_source_key(d: Path) -> Expectation:
    text = GOOD_CASE.replace("  - {name: teacher, path: ex/teacher.jsonl}",
                             "  - name: teacher\n    pth: ex/teacher.jsonl")
    target = raw_case(d, text)
    return error("case", target, "CaseFileError", "case.yaml:5:", "unknown key 'pth'")


@case
def case_unknown_parameter(d: Path) -> Expectation:
    target = raw_case(d, GOOD_CASE + "parameters:\n  seed: 3\n  min_promts: 10\n")
    return error("case", target, "CaseFileError", "case.yaml:11:", "unknown key 'min_promts'", "min_prompts")


@case
def case_id_number(d: Path) -> Expectation:
    target = raw_case(d, GOOD_CASE.replace("case: bad-input-test", "case: 0123"))
    return error("case", target, "CaseFileError", "case.yaml:1:", "'case' must be a string", "case: \"0123\"")


@case
def case_id_bad_chars(d: Path) -> Expectation:
    target = raw_case(d, GOOD_CASE.replace("case: bad-input-test", "case: my case/../x"))
    return error("case", target, "CaseFileError", "case.yaml:1:", "may hold only")


@case
def case_seed_string(d: Path) -> Expectation:
    target = raw_case(d, GOOD_CASE + "parameters:\n  seed: '7'\n")
    return error("case", target, "CaseFileError", "case.yaml:10:", "'seed' must be an integer")


@case
def case_seed_bool(d: Path) -> Expectation:
    target = raw_case(d, GOOD_CASE + "parameters:\n  seed: yes\n")
    return error("case", target, "CaseFileError", "case.yaml:10:", "'seed' must be an integer", "a boolean")


@case
def case_min_prompts_zero(d: Path) -> Expectation:
    target = raw_case(d, GOOD_CASE + "parameters:\n  min_prompts: 0\n")
    return error("case", target, "CaseFileError", "case.yaml:10:", "'min_prompts' is 0", "from 1 to")


@case
def case_band_reversed(d: Path) -> Expectation:
    target = raw_case(d, GOOD_CASE + "parameters:\n  inconclusive_band: [1, -1]\n")
    return error("case", target, "CaseFileError", "case.yaml:10:", "inconclusive_band")


@case
def case_band_not_pair(d: Path) -> Expectation:
    target = raw_case(d, GOOD_CASE + "parameters:\n  inconclusive_band: 1.0\n")
    return error("case", target, "CaseFileError", "case.yaml:10:", "two numbers")


@case
def case_canaries_not_list(d: Path) -> Expectation:
    target = raw_case(d, GOOD_CASE + "parameters:\n  canaries: secret-string\n")
    return error("case", target, "CaseFileError", "case.yaml:10:", "'canaries' must be a list")


@case
def case_teachers_mapping(d: Path) -> Expectation:
    text = GOOD_CASE.replace("teachers:\n  - {name: teacher, path: ex/teacher.jsonl}",
                             "teachers: {name: teacher, path: ex/teacher.jsonl}")
    target = raw_case(d, text)
    return error("case", target, "CaseFileError", "case.yaml:3:", "'teachers' must be a list")


@case
def case_no_references(d: Path) -> Expectation:
    text = GOOD_CASE.split("references:")[0] + "references: []\n"
    target = raw_case(d, text)
    return error("case", target, "CaseFileError", "case.yaml:5:", "'references' is empty")


@case
def case_missing_suspect(d: Path) -> Expectation:
    text = GOOD_CASE.replace("suspect: {name: suspect, path: ex/suspect.jsonl}\n", "")
    target = raw_case(d, text)
    return error("case", target, "CaseFileError", "case.yaml", "missing required key 'suspect'")


@case
def case_name_number(d: Path) -> Expectation:
    text = GOOD_CASE.replace("{name: ref2, path", "{name: 13, path")
    target = raw_case(d, text)
    return error("case", target, "CaseFileError", "case.yaml:7:", "name must be a non-empty string")


@case
def case_duplicate_names(d: Path) -> Expectation:
    text = GOOD_CASE.replace("{name: ref2, path", "{name: teacher, path")
    target = raw_case(d, text)
    return error("case", target, "CaseFileError", "case.yaml:7:", "'teacher' is used twice")


@case
def case_duplicate_yaml_key(d: Path) -> Expectation:
    target = raw_case(d, GOOD_CASE + "case: another-id\n")
    return error("case", target, "CaseFileError", "case.yaml:9:", "key 'case' appears twice", "line 1")


@case
def case_shared_file(d: Path) -> Expectation:
    """Two names, one file: allowed (it is not malformed), but recorded as a warning."""
    text = GOOD_CASE.replace("{name: ref3, path: ex/ref3.jsonl}", "{name: ref3, path: ex/ref2.jsonl}")
    target = raw_case(d, text)
    return ok("case", target, case_warnings=["shared_file"])


@case
def case_small_panel(d: Path) -> Expectation:
    # two references of one model line (versions of one model): scored, but nothing can be named
    text = GOOD_CASE.replace("  - {name: ref3, path: ex/ref3.jsonl}\n", "")
    for ref in ("ref1", "ref2"):
        text = text.replace(f"ex/{ref}.jsonl}}", f"ex/{ref}.jsonl, family: One line}}")
    target = raw_case(d, text)
    return ok("case", target, case_warnings=["small_panel"])


@case
def case_missing_exchange_file(d: Path) -> Expectation:
    text = GOOD_CASE.replace("ex/ref2.jsonl", "ex/ref2-missing.jsonl")
    target = raw_case(d, text)
    return error("case", target, "CaseFileError", "case.yaml:7:", "file not found", "ref2-missing.jsonl")


@case
def case_directory_as_file(d: Path) -> Expectation:
    text = GOOD_CASE.replace("ex/ref2.jsonl", "ex")
    target = raw_case(d, text)
    return error("case", target, "CaseFileError", "case.yaml:7:", "not a regular file")


@case
def case_unsupported_extension(d: Path) -> Expectation:
    write(d / "ex/ref2.txt", "prompt,response\n")
    target = raw_case(d, GOOD_CASE.replace("ex/ref2.jsonl", "ex/ref2.txt"))
    return error("case", target, "CaseFileError", "case.yaml:7:", "unsupported file type '.txt'")


@case
def case_path_dotdot(d: Path) -> Expectation:
    write(d.parent / "outside_dotdot.jsonl", jsonl(rows_for("ref2")))
    target = raw_case(d, GOOD_CASE.replace("ex/ref2.jsonl", "ex/../../outside_dotdot.jsonl"))
    return error("case", target, "CaseFileError", "case.yaml:7:", "outside the case folder")


@case
def case_path_absolute_outside(d: Path) -> Expectation:
    outside = write(d.parent / "outside_abs.jsonl", jsonl(rows_for("ref2"))).resolve()
    target = raw_case(d, GOOD_CASE.replace("ex/ref2.jsonl", str(outside)))
    return error("case", target, "CaseFileError", "case.yaml:7:", "outside the case folder")


@case
def case_path_absolute_inside(d: Path) -> Expectation:
    """An absolute path is fine when it resolves inside the case folder."""
    inside = (d / "ex/ref2.jsonl").resolve()
    target = raw_case(d, GOOD_CASE.replace("ex/ref2.jsonl", str(inside)))
    return ok("case", target, case_warnings=[])


@case
def case_path_symlink_outside(d: Path) -> Expectation:
    outside = write(d.parent / "outside_link_target.jsonl", jsonl(rows_for("ref2"))).resolve()
    target = raw_case(d, GOOD_CASE.replace("ex/ref2.jsonl", "ex/link.jsonl"))
    os.symlink(outside, d / "ex/link.jsonl")
    return error("case", target, "CaseFileError", "case.yaml:7:", "symlink", "outside the case folder")


@case
def case_embedding_model_missing_path(d: Path) -> Expectation:
    target = raw_case(d, GOOD_CASE + "parameters:\n  embedding_model: ./models/minilm\n")
    return error("case", target, "CaseFileError", "case.yaml:10:",
                 "embedding_model path './models/minilm' does not exist")


@case
def case_embedding_model_missing_subdir(d: Path) -> Expectation:
    target = raw_case(d, GOOD_CASE + "parameters:\n  embedding_model: models/minilm\n")
    return error("case", target, "CaseFileError", "case.yaml:10:", "does not exist")


@case
def case_embedding_model_name(d: Path) -> Expectation:
    """A bare name is an installed model's name, checked by the embedding step, not here."""
    target = raw_case(d, GOOD_CASE + "parameters:\n  embedding_model: all-MiniLM-L6-v2\n")
    return ok("case", target, case_warnings=[])


@case
def case_invalid_yaml(d: Path) -> Expectation:
    text = GOOD_CASE.replace("teachers:\n", "teachers:\n  - {name: broken, path: [\n")
    target = raw_case(d, text)
    return error("case", target, "CaseFileError", "case.yaml:", "not valid YAML")


@case
def case_python_tag(d: Path) -> Expectation:
    """safe_load only: a Python object tag is refused, never constructed."""
    tag = "case: !!python/object/apply:os.system ['true']"
    target = raw_case(d, GOOD_CASE.replace("case: bad-input-test", tag))
    return error("case", target, "CaseFileError", "case.yaml:1:", "not valid YAML")


@case
def case_not_mapping(d: Path) -> Expectation:
    target = raw_case(d, "- just\n- a list\n")
    return error("case", target, "CaseFileError", "case.yaml:1:", "must be a mapping")


@case
def case_empty(d: Path) -> Expectation:
    target = raw_case(d, "\n# nothing here\n")
    return error("case", target, "CaseFileError", "case.yaml", "empty")


@case
def case_latin1(d: Path) -> Expectation:
    raw_case(d, "")
    write(d / "case.yaml", (GOOD_CASE + "title: Caf\u00e9 case\n").encode("latin-1"))
    return error("case", "case_latin1/case.yaml", "CaseFileError", "case.yaml:9:", "not valid UTF-8")


# ------------------------------------------------------------------------------------------------
# Conversations (OpenAI messages / ShareGPT conversations layouts)
# ------------------------------------------------------------------------------------------------

def _chat(cid: str, *turns: tuple[str, str]) -> dict[str, Any]:
    return {"id": cid, "messages": [{"role": r, "content": c} for r, c in turns]}


@case
def conversation_messages_not_a_list(d: Path) -> Expectation:
    good = _chat("a", ("user", "hi"), ("assistant", "hello"))
    t = put(d, "chats.jsonl", jsonl([good, {"id": "b", "messages": "hi there"}]))
    return error("read", t, "InputError", "chats.jsonl:2:", "'messages' must be a non-empty list")


@case
def conversation_unknown_role(d: Path) -> Expectation:
    items = [{"id": 1, "conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}]},
             {"id": 2, "conversations": [{"from": "human", "value": "hi"}, {"from": "robot", "value": "x"}]}]
    t = put(d, "sharegpt.json", json.dumps(items, indent=1))
    return error("read", t, "InputError", "sharegpt.json:15:", "message 2 of 'conversations' has from 'robot'")


@case
def conversation_content_not_text(d: Path) -> Expectation:
    bad = {"id": "c", "messages": [{"role": "user", "content": 42}, {"role": "assistant", "content": "x"}]}
    t = put(d, "chats.jsonl", jsonl([bad]))
    return error("read", t, "InputError", "chats.jsonl:1:", "'content' must be text")


@case
def conversation_assistant_first(d: Path) -> Expectation:
    t = put(d, "chats.jsonl", jsonl([_chat("x", ("system", "be brief"), ("assistant", "hello"))]))
    return error("read", t, "InputError", "chats.jsonl:1:", "assistant turn 1 comes before any user message")


@case
def conversation_mixed_with_flat_rows(d: Path) -> Expectation:
    rows = [*rows_for("m", PROMPTS[:2]), _chat("x", ("user", "hi"), ("assistant", "hello"))]
    t = put(d, "mixed.jsonl", jsonl(rows))
    return error("read", t, "InputError", "mixed.jsonl:3:",
                 "this object is an OpenAI 'messages' conversation but line 1 is a flat exchange")


@case
def conversation_final_user_turn_unanswered(d: Path) -> Expectation:
    chat = _chat("x", ("user", "hi"), ("assistant", "hello"), ("user", "and then?"))
    t = put(d, "chats.jsonl", jsonl([chat]))
    return ok("read", t, warnings={"empty_response": 1}, rows=2)


def build(out: str | Path) -> dict[str, Expectation]:
    """Write every case under ``out`` and ``out/expected.json``; return name -> expectation."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    expected = {name: func(out / name) for name, func in REGISTRY.items()}
    text = json.dumps(expected, indent=2, ensure_ascii=False) + "\n"
    (out / "expected.json").write_text(text, encoding="utf-8")
    return expected


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: make_bad_inputs.py OUTDIR", file=sys.stderr)
        return 2
    expected = build(argv[0])
    print(f"{len(expected)} bad-input cases written to {argv[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
