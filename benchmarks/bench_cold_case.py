"""A cold case end to end: 805 prompts x 17 sources from an empty embedding cache, per step.

Why: issue #13 asks how long a real-sized case takes on a fresh machine with the fastest CPU backend
(aim: under 15 minutes on 2 cores). This builds a timing case from the labelled development benchmark
(AlpacaEval layout, ``LABELS.csv``): one student as the suspect, every candidate teacher with its family,
and a panel of the references, the human-data controls and, to reach 17 sources, further students. It is
a *timing* case: students in the panel are not independent of the teachers, so its findings are not
evidence of anything. It runs ``forensics run`` with ``FORENSICS_CACHE`` pointed at an empty folder (so
every text is embedded, and the ONNX model is exported, from scratch) and with ``NUMBA_CACHE_DIR`` empty
(UMAP's compiled code too), then reads the step timings the manifest records.

    python benchmarks/bench_cold_case.py                              # onnx-int8, all prompts, 17 sources
    python benchmarks/bench_cold_case.py --backend torch --limit 200  # the default backend, a smaller case
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_LABELS = REPO.parent / "shared" / "data" / "alpaca_eval" / "LABELS.csv"
RESULTS = REPO / "benchmarks" / "results"


def _rows(labels: Path) -> list[dict[str, str]]:
    with labels.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _name(row: dict[str, str]) -> str:
    return Path(row["file"]).stem


def case_yaml(labels: Path, n_sources: int, suspect: str | None, backend: str, limit: int | None,
              case_dir: Path) -> str:
    """Write the exchange files into ``case_dir/exchanges`` and return the case file's text: the suspect,
    every teacher with its family, then the panel up to ``n_sources`` sources in all."""
    rows = _rows(labels)
    by_role: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        by_role.setdefault(row["role"], []).append(row)
    students = sorted(by_role.get("student", []), key=_name)
    chosen = next((r for r in students if _name(r) == suspect), students[0]) if suspect else students[0]
    teachers = sorted(by_role.get("teacher", []), key=_name)
    panel = sorted(by_role.get("reference", []) + by_role.get("control", []), key=_name)
    panel += [r for r in students if r is not chosen]
    panel = panel[:max(n_sources - 1 - len(teachers), 2)]
    (case_dir / "exchanges").mkdir(parents=True, exist_ok=True)

    def entry(row: dict[str, str], family: bool, indent: str = "  - ") -> str:
        records = json.loads((labels.parent / row["file"]).read_text(encoding="utf-8"))
        target = case_dir / "exchanges" / row["file"]
        target.write_text(json.dumps(records[:limit] if limit else records), encoding="utf-8")
        pad = " " * len(indent)
        text = f"{indent}name: {_name(row)}\n{pad}path: exchanges/{row['file']}\n"
        return text + (f"{pad}family: {json.dumps(row['family'])}\n" if family and row.get("family") else "")

    return ("case: bench-cold\ntitle: timing case (not evidence)\n"
            "suspect:\n" + entry(chosen, False, "  ")
            + "teachers:\n" + "".join(entry(r, True) for r in teachers)
            + "references:\n" + "".join(entry(r, False) for r in panel)
            + f"parameters:\n  embedding_backend: {backend}\n")


def step_seconds(manifest: dict) -> dict[str, float]:
    out = {}
    for step in manifest.get("steps", []):
        start, end = step.get("started"), step.get("finished")
        if start and end:
            seconds = (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
            out[step["step"]] = out.get(step["step"], 0.0) + seconds
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--labels", type=Path, default=DEFAULT_LABELS)
    parser.add_argument("--sources", type=int, default=17)
    parser.add_argument("--suspect", help="the student to use as the suspect (default: the first by name)")
    parser.add_argument("--backend", default="onnx-int8", choices=("torch", "onnx-int8"))
    parser.add_argument("--limit", type=int, help="only the first N prompts of every file")
    parser.add_argument("--keep", type=Path, help="keep the case, cache and run folder here")
    parser.add_argument("--out", type=Path, default=RESULTS / "cold_case.txt")
    args = parser.parse_args(argv)
    if not args.labels.is_file():
        print(f"labelled benchmark not found: {args.labels} (forensics benchmark fetch DEST)", file=sys.stderr)
        return 2
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-cold-"))
    (work / "case").mkdir(parents=True, exist_ok=True)
    case_file = work / "case" / "case.yaml"
    case_file.write_text(case_yaml(args.labels, args.sources, args.suspect, args.backend, args.limit,
                                   case_file.parent), encoding="utf-8")
    cache, numba = work / "cache", work / "numba"
    for folder in (cache, numba, work / "run"):
        shutil.rmtree(folder, ignore_errors=True)
    env = {**os.environ, "FORENSICS_CACHE": str(cache), "NUMBA_CACHE_DIR": str(numba), "HF_HUB_OFFLINE": "1"}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "forensics.cli", "run", str(case_file), "--out", str(work / "run"),
                           "--quiet"], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        print(proc.stderr[-2000:], file=sys.stderr)
        return proc.returncode
    manifest = json.loads((work / "run" / "manifest.json").read_text(encoding="utf-8"))
    findings = json.loads((work / "run" / "findings.json").read_text(encoding="utf-8"))
    lines = [f"# bench_cold_case.py {time.strftime('%Y-%m-%d %H:%M')} on {platform.machine()}, "
             f"{os.cpu_count()} CPUs; backend {args.backend}; load average {os.getloadavg()[0]:.1f} at end",
             f"case: {findings['data']['n_prompts_analysed']} prompts x {len(manifest.get('inputs', []))} sources "
             f"(suspect {findings['suspect']}, {len(findings['teachers'])} candidates, {len(findings['panel'])} "
             "panel models; a timing case, not evidence), empty embedding and numba caches",
             f"{'step':<20}{'seconds':>10}"]
    steps = step_seconds(manifest)
    for step, seconds in steps.items():
        lines.append(f"{step:<20}{seconds:>10.1f}")
    # forensics run embeds every text into the store before the notebooks run (step 01 then reads it)
    lines.append(f"{'embedding + kernels':<20}{wall - sum(steps.values()):>10.1f}   (outside the steps: "
                 "every text embedded cold, notebook kernels started)")
    lines.append(f"{'forensics run (all)':<20}{wall:>10.1f}   = {wall / 60:.1f} minutes")
    text = "\n".join(lines) + "\n"
    print(text, end="")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
