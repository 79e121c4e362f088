"""Time the embedding stage: cold cache, warm cache, and plain ``SentenceTransformer.encode``.

Why: chunk-and-pool costs more than sentence-transformers' default (which truncates at 256 tokens), and
the cache is meant to make that cost a one-off. This shows both, on the same texts in one process.

    python benchmarks/bench_embeddings.py                       # data/demo/case.yaml
    python benchmarks/bench_embeddings.py CASE.yaml
    python benchmarks/bench_embeddings.py --files a.json b.json c.json --limit 60

``--files`` takes AlpacaEval-layout JSON (a list of {instruction, output}); prompts are the instructions
answered non-emptily in every file, in the first file's order, the first ``--limit`` of them.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from forensics.embeddings import Embedder, EmbeddingCache  # noqa: E402


def texts_from_files(files: list[Path], limit: int | None) -> dict[str, list[str]]:
    """``source -> responses`` over the prompts every file answers (joined on the instruction)."""
    answers = []
    for path in files:
        rows = json.loads(path.read_text(encoding="utf-8"))
        answers.append({r["instruction"]: r["output"] for r in rows if (r.get("output") or "").strip()})
    keys = [k for k in answers[0] if all(k in a for a in answers[1:])][:limit]
    return {path.stem: [a[k] for k in keys] for path, a in zip(files, answers, strict=True)}


def texts_from_case(case_file: Path, limit: int | None) -> dict[str, list[str]]:
    """``source -> responses`` of a case's aligned corpus (needs forensics.case and forensics.exchanges)."""
    from forensics import exchanges
    from forensics.case import load_case
    from forensics.custody import RunFolder

    case = load_case(case_file)
    with tempfile.TemporaryDirectory() as tmp:
        run = RunFolder(tmp)
        if hasattr(exchanges, "run_step"):
            exchanges.run_step(case, run)
        corpus = exchanges.load_corpus(run, case)
    n = len(corpus.prompt_keys) if limit is None else min(limit, len(corpus.prompt_keys))
    return {s: list(corpus.responses[s][:n]) for s in corpus.sources}


def timed(fn: Any) -> tuple[Any, float, float]:
    """Result, wall seconds and CPU seconds of this process (fairer than wall time on a shared machine)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def bench(texts: list[str], threads: int | None, batch_size: int) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as tmp:
        (embedder, load_s, _) = timed(lambda: Embedder(threads=threads, batch_size=batch_size,
                                                    cache=EmbeddingCache(tmp)))
        print(f"model {embedder.name} fingerprint {embedder.fingerprint[:16]} loaded in {load_s:.1f} s; "
              f"{embedder.threads} threads, batch {batch_size}, window {embedder.window} tokens")
        embedder._model.encode(["warm-up"], batch_size=1)  # first-call overhead out of every timing
        cold, cold_s, cold_cpu = timed(lambda: embedder.embed(texts))
        cold_stats = dict(embedder.last_stats)
        warm, warm_s, warm_cpu = timed(lambda: embedder.embed(texts))
        warm_stats = dict(embedder.last_stats)
        plain, plain_s, plain_cpu = timed(lambda: embedder._model.encode(texts, batch_size=batch_size,
                                                               normalize_embeddings=True))
        # The same token windows the chunked stage embeds, as text, through plain ``encode``: what the
        # cold stage costs beyond the model itself (tokenising, fixed-shape batches, pooling, the store).
        windows = [embedder._tokenizer.decode(c.ids) for c in embedder.chunk(texts)]
        _, win_s, win_cpu = timed(lambda: embedder._model.encode(windows, batch_size=batch_size,
                                                                normalize_embeddings=True))
    assert cold.tobytes() == warm.tobytes(), "warm cache returned different vectors"
    report_truncation(embedder, texts, cold, plain)
    return [
        {"stage": "chunked, cold cache", "seconds": cold_s, "cpu": cold_cpu, **_counts(cold_stats)},
        {"stage": "chunked, warm cache", "seconds": warm_s, "cpu": warm_cpu, **_counts(warm_stats)},
        {"stage": "plain encode (truncates)", "seconds": plain_s, "cpu": plain_cpu, "embedded": len(texts),
         "from_cache": 0, "chunks": len(texts)},
        {"stage": "plain encode, same windows", "seconds": win_s, "cpu": win_cpu, "embedded": len(texts),
         "from_cache": 0, "chunks": len(windows)},
    ]


def _counts(stats: dict[str, Any]) -> dict[str, Any]:
    return {k: stats[k] for k in ("embedded", "from_cache", "chunks")}


def report_truncation(embedder: Embedder, texts: list[str], chunked: np.ndarray, plain: np.ndarray) -> None:
    """How much the default truncation would change: texts over one window, and their cosine."""
    lengths = np.array([len(ids) for ids in embedder._tokenize(texts)])
    long = lengths > embedder.window
    cos = (chunked * plain).sum(axis=1)
    print(f"{len(texts)} texts, tokens median {int(np.median(lengths))}, max {lengths.max()}; "
          f"{long.sum()} ({long.mean():.0%}) exceed {embedder.window} tokens")
    if long.any():
        print(f"cosine chunked vs truncated on those: mean {cos[long].mean():.3f}, min {cos[long].min():.3f}")
    if (~long).any():
        print(f"max |difference| on one-window texts: {np.abs(chunked[~long] - plain[~long]).max():.2e}")


def print_table(rows: list[dict[str, Any]], n_texts: int) -> None:
    print(f"\n{'stage':<28} {'wall s':>8} {'cpu s':>8} {'texts/s':>8} {'embedded':>9} {'cached':>7} "
          f"{'chunks':>7}")
    for r in rows:
        rate = n_texts / r["seconds"] if r["seconds"] > 0 else float("inf")
        print(f"{r['stage']:<28} {r['seconds']:>8.2f} {r['cpu']:>8.2f} {rate:>8.1f} {r['embedded']:>9} "
              f"{r['from_cache']:>7} {r['chunks']:>7}")
    for unit in ("seconds", "cpu"):
        cold, warm, plain, windows = (r[unit] for r in rows)
        print(f"{'wall' if unit == 'seconds' else 'cpu '}: cold / plain = {cold / plain:.2f}x   "
              f"cold / plain on the same windows = {cold / windows:.2f}x   "
              f"warm / plain = {warm / plain:.4f}x   cold / warm = {cold / max(warm, 1e-9):.0f}x")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("case", nargs="?", default="data/demo/case.yaml", type=Path)
    parser.add_argument("--files", nargs="+", type=Path, help="AlpacaEval-layout JSON instead of a case")
    parser.add_argument("--limit", type=int, default=None, help="first N prompts only")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.files:
        sources = texts_from_files(args.files, args.limit)
    elif args.case.is_file():
        sources = texts_from_case(args.case, args.limit)
    else:
        parser.error(f"{args.case} not found; give a case file or --files F1 F2 ...")
    texts = [t for responses in sources.values() for t in responses]
    print(f"{len(sources)} sources x {len(texts) // max(1, len(sources))} prompts: {', '.join(sources)}")
    print_table(bench(texts, args.threads, args.batch_size), len(texts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
