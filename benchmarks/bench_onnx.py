"""The onnx-int8 embedding backend against torch fp32: throughput, and the verdicts it changes.

Why: the int8 backend (forensics/onnx_backend.py) is only worth having if it is clearly faster on a CPU
and changes no conclusion. The pipeline runs it where no verdict rests on it: whole answers (most of the
tokens) go through int8, the answer openings (the fused semantic line) through torch fp32 whatever the
backend (``forensics.embeddings.CaseEmbedders``). Two measurements, in one process, appended to
benchmarks/results/onnx.txt:

* **throughput** - the same demo answers (same windows) through ``Embedder.embed`` with no cache: torch
  fp32 (the default path: fixed-shape batches of 32), ONNX fp32 and ONNX int8 (one window per run, see
  the backend's docstring), the same thread count for all; rounds interleaved, best round of each kept
  (the machine may be shared). ONNX fp32 runs the int8 path's schedule on the unquantised export, so
  the table separates what quantisation gives from what the schedule gives. Then the **embedding
  stage** as a case runs it (those answers and their openings): torch for both against the case
  embedders of ``embedding_backend: onnx-int8``. Also: whether a second export gives the same bytes.
* **verdicts** - the development benchmark (LABELS.csv) embedded as ``forensics calibrate`` embeds it
  (openings only): with torch; with the openings embedder that a case with ``embedding_backend:
  onnx-int8`` uses; and, as a what-if, with int8 openings (why the pipeline keeps them fp32). Every case
  (student or control, every prompt set) is scored with the pipeline's fused lines and decided with the
  *shipped* calibration (not refitted); every case whose conclusion (attributed teacher, attributed
  family, outcome) differs from torch's is listed.

    python benchmarks/bench_onnx.py                       # both parts
    python benchmarks/bench_onnx.py --part throughput --texts 200 --rounds 2
    python benchmarks/bench_onnx.py --part verdicts --labels ../shared/data/alpaca_eval/LABELS.csv

The verdict part uses the user's embedding store (``$FORENSICS_CACHE`` or the per-user folder): torch
vectors already there are reused, the int8 ones are added under their own fingerprint.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from forensics import onnx_backend  # noqa: E402
from forensics.embeddings import CaseEmbedders, Embedder, opening  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "data" / "demo" / "exchanges"
DEFAULT_LABELS = ROOT.parent / "shared" / "data" / "alpaca_eval" / "LABELS.csv"
RESULTS = ROOT / "benchmarks" / "results" / "onnx.txt"


def say(line: str = "") -> None:
    print(line, flush=True)
    LINES.append(line)


LINES: list[str] = []


# ----------------------------------------------------------------------------------------- throughput

def demo_answers(n: int) -> list[str]:
    """The first answers of every demo .jsonl file in turn (short and long), ``n`` of them."""
    per_file = []
    for path in sorted(DEMO.glob("*.jsonl")):
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        per_file.append([r["response"] for r in rows if (r.get("response") or "").strip()])
    texts: list[str] = []
    for i in range(max(len(f) for f in per_file)):
        texts += [f[i] for f in per_file if i < len(f)]
    return texts[:n]


class OnnxFp32(Embedder):
    """The int8 path's schedule (one window per run) on the unquantised export: attribution only."""

    def __init__(self, fp32_path: Path, threads: int) -> None:
        super().__init__(cache=False, threads=threads)
        self._session = onnx_backend.session(fp32_path.read_bytes(), self.threads)
        self._onnx_inputs = [i.name for i in self._session.get_inputs()]


def timed(fn: Any) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def throughput(n_texts: int, rounds: int, threads: int) -> None:
    texts = demo_answers(n_texts)
    with tempfile.TemporaryDirectory() as tmp:
        torch_e = Embedder(cache=False, threads=threads)
        int8_e = Embedder(cache=False, threads=threads, backend="onnx-int8")
        chunks = torch_e.chunk(texts)
        tokens = sum(len(c.ids) for c in chunks)
        say(f"## throughput: {len(texts)} demo answers, {len(chunks)} windows, {tokens} tokens; "
            f"{threads} threads; best of {rounds} interleaved rounds; no cache")
        # Reproducibility of the export: a second export in a fresh folder, same bytes?
        again, export_s, _ = timed(lambda: onnx_backend.load_or_export(torch_e._model, torch_e.model_fingerprint,
                                                                       Path(tmp) / "again"))
        same = again.sha256 == int8_e._int8.sha256
        say(f"int8 file {int8_e._int8.sha256[:16]} ({int8_e._int8.record['bytes'] / 1e6:.1f} MB); a second "
            f"export ({export_s:.0f} s) gives {'the same bytes' if same else 'OTHER bytes: ' + again.sha256[:16]}")
        fp32_path = Path(tmp) / "fp32.onnx"
        onnx_backend.export_fp32(torch_e._model, fp32_path)
        fp32_e = OnnxFp32(fp32_path, threads)
        runs = {"torch fp32 (fixed batches)": torch_e, "onnx fp32 (one window/run)": fp32_e,
                "onnx int8 (one window/run)": int8_e}
        for e in runs.values():
            e.embed(texts[:4])  # first-call overhead out of the timings
        best: dict[str, tuple[float, float]] = {}
        out: dict[str, np.ndarray] = {}
        for _ in range(rounds):
            for name, e in runs.items():
                out[name], wall, cpu = timed(lambda e=e: e.embed(texts))
                w, c = best.get(name, (float("inf"), float("inf")))
                best[name] = (min(w, wall), min(c, cpu))
    ref_name = "torch fp32 (fixed batches)"
    say(f"{'backend':<28} {'wall s':>7} {'cpu s':>7} {'texts/s':>8} {'vs torch':>8} {'cos min':>8} {'cos mean':>8}")
    for name, (wall, cpu) in best.items():
        cos = (out[name] * out[ref_name]).sum(axis=1)
        say(f"{name:<28} {wall:>7.2f} {cpu:>7.2f} {len(texts) / wall:>8.1f} {best[ref_name][0] / wall:>7.2f}x "
            f"{cos.min():>8.4f} {cos.mean():>8.4f}")
    ratio = best[ref_name][0] / best["onnx int8 (one window/run)"][0]
    say(f"ONNX int8 / torch fp32 throughput: {ratio:.2f}x (wall); "
        f"{best[ref_name][1] / best['onnx int8 (one window/run)'][1]:.2f}x (cpu)")
    stage(texts, best[ref_name], best["onnx int8 (one window/run)"], rounds, threads)


def stage(texts: list[str], torch_answers: tuple[float, float], int8_answers: tuple[float, float],
          rounds: int, threads: int) -> None:
    """The embedding stage of a case on these answers: answers plus their openings, torch for both
    against the case embedders of ``embedding_backend: onnx-int8`` (int8 answers, torch openings)."""
    from forensics.case import Parameters

    words = Parameters().opening_words
    openings = [opening(t, words) for t in texts]
    embedders = CaseEmbedders.for_case(backend="onnx-int8", cache=False, threads=threads)
    assert embedders.openings.backend == "torch" and embedders.answers.backend == "onnx-int8"
    embedders.openings.embed(openings[:4])
    best = (float("inf"), float("inf"))
    for _ in range(rounds):
        _, wall, cpu = timed(lambda: embedders.openings.embed(openings))
        best = (min(best[0], wall), min(best[1], cpu))
    torch_stage = [a + b for a, b in zip(torch_answers, best, strict=True)]
    mixed_stage = [a + b for a, b in zip(int8_answers, best, strict=True)]
    tokens = sum(len(c.ids) for c in embedders.openings.chunk(openings))
    say(f"## embedding stage of a case: the {len(texts)} answers and their {len(openings)} openings of {words} "
        f"words ({tokens} tokens), best of {rounds}")
    say(f"openings, torch fp32 (every backend): {best[0]:.2f} s wall, {best[1]:.2f} s cpu")
    say(f"stage with embedding_backend: torch      {torch_stage[0]:>7.2f} s wall {torch_stage[1]:>7.2f} s cpu")
    say(f"stage with embedding_backend: onnx-int8  {mixed_stage[0]:>7.2f} s wall {mixed_stage[1]:>7.2f} s cpu")
    say(f"embedding stage, onnx-int8 / torch throughput: {torch_stage[0] / mixed_stage[0]:.2f}x (wall); "
        f"{torch_stage[1] / mixed_stage[1]:.2f}x (cpu)")


# ----------------------------------------------------------------------------------------- verdicts

def fused_pairs(bench: Any, params: Any) -> tuple[Any, Any]:
    """:func:`forensics.validation.benchmark_tables` restricted to what a decision needs (the fused score and
    the comparison statistic)."""
    from forensics import validation as v

    pairs, preferences = v.benchmark_tables(bench, params, every_line=False)
    return pairs.assign(scheme="shipped"), preferences


def decide_with_shipped(pairs: Any, preferences: Any, params: Any) -> Any:
    import pandas as pd

    from forensics import validation as v
    from forensics.calibration import CalibrationSet, supports

    cal = CalibrationSet.load()
    band = params.inconclusive_band
    families = v.family_table(pairs)
    families["scheme"] = "shipped"
    for frame, level in ((pairs, "teacher"), (families, "family")):
        frame["log10_lr"] = v.transform_level(frame, level, "score", cal.levels)  # as the pipeline weighs
        frame["supports"] = [supports(x, band) for x in frame["log10_lr"]]
    return pd.DataFrame(v.case_outcomes(pairs, families, cal["comparison"], band, preferences))


def _shown(path: Path) -> str:
    """The path relative to the repository where it can be (no machine's absolute path in the results)."""
    try:
        return str(Path(os.path.relpath(path.resolve(), ROOT)))
    except ValueError:
        return path.name


def verdicts(labels: Path) -> None:
    from forensics.case import Parameters
    from forensics.validation import load_benchmark

    params = Parameters()
    bench = load_benchmark(labels, params.max_response_chars)
    say(f"## verdicts: {_shown(labels)} ({len(bench.responses)} models, {len(bench.prompt_keys)} prompts, "
        f"prompt sets {', '.join(f'{k} ({len(v)})' for k, v in bench.prompt_sets().items())}); openings of "
        f"{params.opening_words} words embedded as `forensics calibrate` does; shipped calibration, not refitted")
    pipeline_backend = CaseEmbedders.for_case(backend="onnx-int8").openings.backend
    runs = {"torch": "torch", "onnx-int8 (pipeline: openings by its openings embedder)": pipeline_backend,
            "int8 openings (what-if)": "onnx-int8"}
    outcomes, openings = {}, {}
    for name, backend in runs.items():
        started = time.perf_counter()
        embed(bench, params, backend)
        openings[name] = dict(bench.openings)
        pairs, preferences = fused_pairs(bench, params)
        outcomes[name] = (pairs, decide_with_shipped(pairs, preferences, params))
        say(f"{name}: openings embedded with {backend}, decided in {time.perf_counter() - started:.0f} s")
    for name in list(runs)[1:]:
        say(f"### {name} against torch")
        compare_runs(openings["torch"], openings[name], outcomes["torch"], outcomes[name])


def compare_runs(torch_openings: dict[str, np.ndarray], other_openings: dict[str, np.ndarray],
                 torch_outcomes: tuple[Any, Any], other_outcomes: tuple[Any, Any]) -> None:
    cos = np.concatenate([(torch_openings[s] * other_openings[s]).sum(axis=1) for s in torch_openings])
    identical = all(np.array_equal(torch_openings[s], other_openings[s]) for s in torch_openings)
    say(f"openings: {cos.size} vectors, {'bit for bit the torch ones' if identical else 'not the torch bits'}; "
        f"cosine with torch min {cos.min():.4f}, 1st percentile {np.percentile(cos, 1):.4f}, mean {cos.mean():.4f}")
    (p_t, c_t), (p_q, c_q) = torch_outcomes, other_outcomes
    delta = (p_q["score"] - p_t["score"]).abs()
    say(f"fused scores (z): {len(p_t)} (set, suspect, teacher) pairs, |this - torch| max {delta.max():.3f}, "
        f"mean {delta.mean():.3f}")
    keys = ["set", "suspect"]
    merged = c_t.merge(c_q, on=keys, suffixes=("_torch", "_this"))
    assert len(merged) == len(c_t) == len(c_q)
    verdict = ["attributed", "attributed_family", "outcome"]
    changed = merged[np.logical_or.reduce([merged[f"{c}_torch"] != merged[f"{c}_this"] for c in verdict])]
    support = merged[np.logical_or.reduce([merged[f"{c}_torch"] != merged[f"{c}_this"]
                                           for c in ("supported", "families_supported")])]
    all_set = merged[merged["set"] == "all"]
    say(f"cases: {len(merged)} ({len(all_set)} on all prompts); correct (torch / this): teacher "
        f"{int(c_t['correct'].sum())} / {int(c_q['correct'].sum())}, family {int(c_t['correct_family'].sum())} / "
        f"{int(c_q['correct_family'].sum())}")
    say(f"changed verdicts (attributed teacher, attributed family or outcome): {len(changed)} of {len(merged)}")
    for row in changed.itertuples():
        say("  " + "; ".join(f"{c}: {getattr(row, c + '_torch')} -> {getattr(row, c + '_this')}" for c in verdict)
            + f"  [{row.set}, {row.suspect}]")
    say(f"cases whose set of supported teachers or families changed (not a verdict): {len(support)}")
    for row in support.itertuples():
        say(f"  [{row.set}, {row.suspect}] teachers {row.supported_torch} -> {row.supported_this}; families "
            f"{row.families_supported_torch} -> {row.families_supported_this}")


def embed(bench: Any, params: Any, backend: str) -> None:
    from forensics.validation import embed_benchmark

    embed_benchmark(bench, None, params.opening_words, backend)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=("throughput", "verdicts", "both"), default="both")
    parser.add_argument("--texts", type=int, default=200, help="demo answers timed (default 200)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved timing rounds (default 2)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--labels", type=Path, default=DEFAULT_LABELS)
    parser.add_argument("--out", type=Path, default=RESULTS, help="append the output here (default %(default)s)")
    args = parser.parse_args(argv)
    import platform

    import onnxruntime
    import torch

    say(f"# bench_onnx.py {time.strftime('%Y-%m-%d %H:%M')} on {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs; torch {torch.__version__}, onnxruntime {onnxruntime.__version__}; load average "
        f"{os.getloadavg()[0]:.1f} at start")
    say(f"recipe: {onnx_backend.RECIPE}")
    if args.part in ("throughput", "both"):
        throughput(args.texts, args.rounds, args.threads)
    if args.part in ("verdicts", "both"):
        verdicts(args.labels)
    say(f"load average at end {os.getloadavg()[0]:.1f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("a", encoding="utf-8") as handle:
        handle.write("\n".join(LINES) + "\n\n")
    digest = hashlib.sha256(args.out.read_bytes()).hexdigest()[:16]
    print(f"appended to {args.out} (sha256 {digest})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
