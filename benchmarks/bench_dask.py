"""A case run in one process and on a local 2-worker Dask cluster: wall time of each, findings compared.

Why: ``forensics run --workers N`` / ``--cluster ADDRESS`` must give the same findings as a one-process
run (vectors do not depend on how texts are sliced); this shows it on a real case and what the cluster
costs or saves. Each run starts with its own empty embedding store, so both embed every text.

    .venv/bin/python benchmarks/bench_dask.py                    # the tests' small case (40 prompts x 4)
    .venv/bin/python benchmarks/bench_dask.py --prompts 120
    .venv/bin/python benchmarks/bench_dask.py --case CASE.yaml --workers 4
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def run(case: Path, out: Path, cache: Path, *extra: str) -> float:
    env = {**os.environ, "FORENSICS_CACHE": str(cache), "PYTHONHASHSEED": "0", "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "forensics.cli", "run", str(case), "--out", str(out), "--quiet",
                           *extra], env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"run {' '.join(extra) or '(one process)'} failed:\n{done.stderr[-3000:]}")
    stats = next((line for line in done.stderr.splitlines() if line.startswith("embeddings:")), "")
    print(f"  {' '.join(extra) or 'one process':<12} {time.perf_counter() - started:7.1f} s   {stats}", flush=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", type=Path, help="a case file (default: the tests' small case)")
    parser.add_argument("--prompts", type=int, default=40, help="prompts of the small case")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    from forensics.verify import compare_findings

    with tempfile.TemporaryDirectory(prefix="bench-dask-") as tmp:
        root = Path(tmp)
        case = args.case
        if case is None:
            sys.path.insert(0, str(ROOT / "tests"))
            from conftest import write_small_case

            case = write_small_case(root / "case", n_prompts=args.prompts)
        print(f"case {case}; {os.cpu_count()} CPUs visible")
        single = run(case, root / "one", root / "cache-one")
        cluster = run(case, root / "dask", root / "cache-dask", "--workers", str(args.workers))
        first, second = (json.loads((root / d / "findings.json").read_text(encoding="utf-8")) for d in ("one", "dask"))
        differences = compare_findings(first, second)
    print(f"one process {single:.1f} s, {args.workers} Dask workers {cluster:.1f} s; findings "
          + ("identical (timestamps aside)" if not differences else f"DIFFER in {len(differences)} field(s):"))
    for difference in differences[:20]:
        print("  " + difference.line())


if __name__ == "__main__":
    main()
