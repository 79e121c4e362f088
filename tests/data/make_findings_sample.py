"""Regenerate ``tests/data/findings_sample.json`` from a real run, so the report is tested on what the
writer writes (a hand-typed sample drifted from it: it said ``data.n_prompts_total`` where every real
run writes ``data.coverage.prompts_total``, and the report's tests passed while real reports lost the
totals).

The case is the bundled demo case (three candidate teachers, four references) cut to the 62 prompts with
the smallest sha256 of their normalised text, every file rewritten as JSON Lines, with two flaws that a
real case has and the report must state: one prompt is missing from ``cohere`` and one answer of
``gemini-pro`` is empty, so 60 of 62 prompts are analysed and two are excluded. Run from the repository
root (about two minutes with a warm embedding cache)::

    .venv/bin/python tests/data/make_findings_sample.py            # writes tests/data/findings_sample.json
    .venv/bin/python tests/data/make_findings_sample.py --keep runs/sample   # and keeps the run folder
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEMO_CASE = REPO / "data" / "demo" / "case.yaml"
TARGET = Path(__file__).resolve().parent / "findings_sample.json"
N_PROMPTS = 62
MISSING_FROM = "cohere"  # the second-to-last chosen prompt is dropped from this source's file
EMPTY_IN = "gemini-pro"  # the last chosen prompt's answer is blanked in this source's file
PARAMETERS = "parameters:\n  seed: 0\n  bootstrap: 100\n  permutations: 200\n  min_prompts: 30\n"


def _sources() -> list[tuple[str, str]]:
    """(name, path relative to the demo case) of every source of the demo case, in case order."""
    from forensics.case import load_case

    case = load_case(DEMO_CASE)
    return [(s.name, s.rel_path) for s in case.sources]


def _rows(path: Path) -> dict[str, dict[str, str]]:
    """Answered rows of one demo file, by normalised prompt."""
    from forensics.exchanges import read_exchanges

    frame = read_exchanges(path).frame
    frame = frame.loc[~frame["empty"].astype(bool)]
    return {p: {"prompt": q, "response": r}
            for p, q, r in zip(frame["prompt_norm"], frame["prompt"], frame["response"], strict=True)}


def write_case(folder: Path) -> Path:
    """The sample case in ``folder``; returns its case file."""
    sources = _sources()
    rows = {name: _rows(DEMO_CASE.parent / rel) for name, rel in sources}
    shared = set.intersection(*(set(r) for r in rows.values()))
    chosen = sorted(shared, key=lambda p: hashlib.sha256(p.encode()).hexdigest())[:N_PROMPTS]
    (folder / "exchanges").mkdir(parents=True, exist_ok=True)
    text = DEMO_CASE.read_text(encoding="utf-8")
    for name, rel in sources:
        records = [dict(rows[name][p]) for p in chosen if not (name == MISSING_FROM and p == chosen[-2])]
        if name == EMPTY_IN:
            records[-1]["response"] = ""
        target = f"exchanges/{name}.jsonl"
        (folder / target).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records),
                                     encoding="utf-8")
        text = text.replace(f"path: {rel}", f"path: {target}")
    text = re.sub(r"\A(#.*\n)*", "# Written by tests/data/make_findings_sample.py: the demo case cut to "
                  f"{N_PROMPTS} prompts.\n", text)
    text = re.sub(r"^case: .*$", "case: sample-alpaca", text, flags=re.M)
    text = re.sub(r"^parameters:\n(  .*\n)*", PARAMETERS, text, flags=re.M)
    case_file = folder / "case.yaml"
    case_file.write_text(text, encoding="utf-8")
    return case_file


def run(case_file: Path, out: Path) -> Path:
    """``forensics run`` in a child process (offline, deterministic hashing); returns the run folder."""
    env = {**os.environ, "PYTHONHASHSEED": "0", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    subprocess.run([sys.executable, "-m", "forensics.cli", "run", str(case_file), "--out", str(out)],
                   env=env, check=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="also keep the run folder here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="findings-sample-") as tmp:
        out = run(write_case(Path(tmp) / "case"), Path(tmp) / "run")
        shutil.copyfile(out / "findings.json", TARGET)
        if args.keep:
            shutil.copytree(out, args.keep, dirs_exist_ok=True)
    print(f"wrote {TARGET.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
