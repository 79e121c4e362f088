"""What the benchmarks measured on the labelled development benchmark share: where its labels are by
default, reading and embedding it, and appending a result to ``benchmarks/results/``.

Imported by a benchmark script run from anywhere (``python benchmarks/bench_X.py``): it puts the repository
on the import path and keeps the embedding model offline before anything of ``forensics`` is imported.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from forensics import validation  # noqa: E402
from forensics.case import Parameters  # noqa: E402

DEFAULT_LABELS = ROOT.parent / "shared" / "data" / "alpaca_eval" / "LABELS.csv"
RESULTS = ROOT / "benchmarks" / "results"


def labels_argument(description: str) -> Path:
    """The benchmark's one argument, ``--labels`` (the ``LABELS.csv`` beside the benchmark's answer files)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--labels", type=Path, default=DEFAULT_LABELS)
    return parser.parse_args().labels


def embedded_benchmark(labels: Path, params: Parameters) -> validation.Benchmark:
    """The labelled benchmark read as ``forensics calibrate`` reads it, its answer openings embedded."""
    bench = validation.load_benchmark(labels, params.max_response_chars)
    validation.embed_benchmark(bench, None, params.opening_words)
    return bench


def append_result(name: str, text: str) -> None:
    """Print ``text`` and append it to ``benchmarks/results/<name>`` (earlier runs stay above it)."""
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    with (RESULTS / name).open("a", encoding="utf-8") as out:
        out.write(text + "\n\n")
