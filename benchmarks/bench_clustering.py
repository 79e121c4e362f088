"""How much time UMAP + HDBSCAN add to a case, fresh and warm.

A case runs each notebook in a fresh kernel, so the cost that matters is the *fresh-process* cost:
importing umap (numba compilation, or loading its on-disk cache), then the first fit (more JIT
compilation), then the fit itself. This script measures, in a fresh subprocess per row:

* ``import``: ``import umap, hdbscan``;
* ``first``: the first ``cluster_case`` (2-D map fit + 5-D clustering fit + HDBSCAN + permutation test);
* ``warm``: the same call again in the same process (pure compute);
* a breakdown of the warm call (2-D fit, 5-D fit, HDBSCAN, co-clustering test).

``cold numba cache`` rows point ``NUMBA_CACHE_DIR`` at an empty folder, which is what a fresh machine
or a fresh virtual environment pays once. Embeddings are deterministic synthetic unit vectors with topic
structure (prompts drawn from topics, each source adding its own offset), or real ones from a run folder
(``--case CASE.yaml --run-dir DIR``).

    .venv/bin/python benchmarks/bench_clustering.py                 # 7 sources x 200 prompts x 384 dims
    .venv/bin/python benchmarks/bench_clustering.py --prompts 200 571 --no-cold
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
T = TypeVar("T")


@dataclass(frozen=True)
class SyntheticCorpus:
    """Stand-in for ``AlignedCorpus`` carrying only what clustering reads."""

    prompt_keys: list[str]
    prompts: list[str]
    responses: dict[str, list[str]]
    suspect: str
    teachers: list[str]
    references: list[str]

    @property
    def sources(self) -> list[str]:
        return [self.suspect, *self.teachers, *self.references]


def synthetic(n_sources: int, n_prompts: int, dims: int, seed: int = 0) -> tuple[SyntheticCorpus, dict]:
    """Unit vectors = topic + prompt + source style + noise, so UMAP sees structure like real answers."""
    rng = np.random.default_rng(seed)
    n_topics = max(2, n_prompts // 10)
    topics = rng.normal(size=(n_topics, dims))
    prompt_vec = topics[rng.integers(0, n_topics, n_prompts)] + 0.6 * rng.normal(size=(n_prompts, dims))
    names = ["suspect", "teacher"] + [f"reference-{i}" for i in range(n_sources - 2)]
    vectors = {}
    for name in names:
        v = prompt_vec + 0.4 * rng.normal(size=(1, dims)) + 0.5 * rng.normal(size=(n_prompts, dims))
        vectors[name] = (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)
    keys = [f"p{i:05d}" for i in range(n_prompts)]
    responses = {name: [""] * n_prompts for name in names}
    return SyntheticCorpus(keys, [""] * n_prompts, responses, names[0], [names[1]], names[2:]), vectors


def real(case_file: str, run_dir: str) -> tuple[object, dict]:
    """The aligned corpus and vectors of an existing run (needs the exchanges and embeddings steps)."""
    from forensics.case import load_case
    from forensics.custody import RunFolder
    from forensics.embeddings import load_vectors
    from forensics.exchanges import load_corpus

    run = RunFolder(run_dir)
    corpus = load_corpus(run, load_case(case_file))
    return corpus, load_vectors(run, corpus)


def _timed(fn: Callable[..., T], *args: object) -> tuple[T, float]:
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def child(args: argparse.Namespace) -> dict:
    """Runs inside the fresh process: every timing of one row."""
    sys.path.insert(0, str(ROOT))
    if args.case and args.run_dir:
        corpus, vectors = real(args.case, args.run_dir)
    else:
        corpus, vectors = synthetic(args.sources, args.prompts[0], args.dims)
    start = time.perf_counter()
    import hdbscan  # noqa: F401
    import umap  # noqa: F401
    t_import = time.perf_counter() - start

    from forensics import clustering as cl

    params = cl.ClusterParams(permutations=args.permutations)
    _, t_first = _timed(cl.cluster_case, corpus, vectors, params)
    _, t_warm = _timed(cl.cluster_case, corpus, vectors, params)
    idx = cl.sample_prompts(len(corpus.prompt_keys), len(corpus.sources), params.umap_max_points, params.seed)
    x = cl._stack(vectors, corpus.sources, len(corpus.prompt_keys), idx)
    _, t_2d = _timed(cl.fit_umap, x, 2, params.min_dist, params)
    space, t_5d = _timed(cl.fit_umap, x, params.cluster_dims, params.cluster_min_dist, params)
    _, t_hdb = _timed(cl.fit_hdbscan, space, params)
    result = cl.project_and_cluster(vectors, corpus, params)
    _, t_test = _timed(cl.co_clustering, result, corpus, params)
    return {"points": len(x), "import": t_import, "first": t_first, "warm": t_warm, "umap_2d": t_2d,
            "umap_5d": t_5d, "hdbscan": t_hdb, "test": t_test, "n_clusters": result.n_clusters,
            "noise": result.noise_share}


def spawn(args: argparse.Namespace, prompts: int, cold: bool) -> dict:
    """One fresh interpreter, optionally with an empty numba cache; returns its timings."""
    cmd = [sys.executable, __file__, "--child", "--sources", str(args.sources), "--prompts", str(prompts),
           "--dims", str(args.dims), "--permutations", str(args.permutations)]
    if args.case and args.run_dir:
        cmd += ["--case", args.case, "--run-dir", args.run_dir]
    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as cache:
        if cold:
            env["NUMBA_CACHE_DIR"] = cache
        start = time.perf_counter()
        out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
        wall = time.perf_counter() - start
    row = json.loads(out.stdout.strip().splitlines()[-1])
    row.update(process=wall, prompts=prompts, cache="cold" if cold else "warm")
    return row


def table(rows: list[dict]) -> str:
    head = (f"{'numba cache':<11} {'points':>6} {'process':>8} {'import':>7} {'1st fit':>8} {'warm':>6} "
            f"{'umap2d':>7} {'umap5d':>7} {'hdbscan':>8} {'test':>6} {'clusters':>8} {'noise':>6}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['cache']:<11} {r['points']:>6} {r['process']:>7.1f}s {r['import']:>6.1f}s "
                     f"{r['first']:>7.1f}s {r['warm']:>5.1f}s {r['umap_2d']:>6.1f}s {r['umap_5d']:>6.1f}s "
                     f"{r['hdbscan']:>7.2f}s {r['test']:>5.2f}s {r['n_clusters']:>8} {r['noise']:>6.2f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=7)
    parser.add_argument("--prompts", type=int, nargs="+", default=[200])
    parser.add_argument("--dims", type=int, default=384)
    parser.add_argument("--permutations", type=int, default=2000)
    parser.add_argument("--case", help="case file of a real run (with --run-dir)")
    parser.add_argument("--run-dir", help="run folder holding the exchanges and embeddings artifacts")
    parser.add_argument("--no-cold", action="store_true", help="skip the empty-numba-cache row")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return
    rows = [] if args.no_cold else [spawn(args, args.prompts[0], cold=True)]
    rows += [spawn(args, prompts, cold=False) for prompts in args.prompts]
    print(f"{args.sources} sources x {args.prompts} prompts x {args.dims} dims; "
          f"{os.cpu_count()} CPUs visible; times in seconds")
    print(table(rows))
    print("process = wall time of the fresh interpreter (imports, data, two cluster_case calls, breakdown)")


if __name__ == "__main__":
    main()
