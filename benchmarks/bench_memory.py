"""Peak memory of a 100k-exchange case: reading + joining, stylometry, markers, embeddings.

Why: case data can be large (issue 6 asks for memory that stays bounded on a 100k-exchange input), and
the machine an investigator has may be a laptop. This generates a synthetic but realistic case (5
sources x 20,000 prompts, responses of 50-3,000 characters drawn from the word frequencies of the demo
case's real responses, in JSONL, CSV, Parquet and AlpacaEval JSON), then runs each stage in its own
subprocess, so that each stage's peak is its own and not the high-water mark of an earlier one:

- ``join``: ``load_case`` + ``join_case(case).corpus()`` (what ``forensics run`` does before anything);
- ``step00``: step 00_case's ``run_step`` (join again, write ``exchanges.parquet`` + coverage);
- ``load_corpus``: what every later notebook does first (read the artifact back, pivot to the corpus);
- ``stylometry``: ``stylometric_features`` (pooled under a small bootstrap) + ``stylometric_similarities``;
- ``markers``: ``marker_rates`` (phrase table + Fightin' Words) with the same bootstrap;
- ``embed_chunk``: what ``Embedder.embed`` does with *all* texts before its first forward pass
  (tokenize every text, cut the windows): the part of embedding whose memory grows with the case;
- ``store``: a (synthetic) vector for every text of the case, answers and openings, written through the
  packed embedding store a group at a time: the embedding step's storage at full size;
- ``prepare_warm``: ``pipeline.prepare`` on that store, what ``forensics run`` does before the
  notebooks on a warm cache (the case joined, every text's entry verified, nothing embedded);
- ``step01``: step 01's ``run_step`` from the store (the two embeddings artifacts of the whole case);
- ``semantic``: step 02's ``run_step`` on those artifacts;
- ``step03`` .. ``step07``: the later steps' ``run_step`` in turn (stylometry, markers, clusters,
  evidence, report) on the run folder, each reading the artifacts of the steps before it;
- ``embeddings``: a 2,000-text slice only, with a fresh temporary cache. Embedding 100k texts on a
  2-core CPU takes about an hour (roughly 27 long texts/s), which is beyond a benchmark; the embedder
  works in groups of ``GROUP_BATCHES x batch_size`` chunks, so its working set does not grow with the
  number of texts beyond the texts themselves, their token ids and one 384-float vector each.

Each stage reports wall seconds and ``ru_maxrss`` (peak resident set, including numpy/torch/arrow
buffers). The case is generated in a child process too: a child started by ``subprocess`` (vfork/exec)
inherits the parent's high-water mark in ``ru_maxrss``, so the parent must stay small for the children's
figures to be their own. A second run of the same stage under ``tracemalloc`` reports the peak of Python-level
allocations (numpy arrays included, torch and arrow buffers not). Both are in separate subprocesses
because tracemalloc slows allocation several-fold and adds its own memory. ``base`` is the RSS after
imports and after loading the stage's input (the corpus), so ``peak - base`` is what the stage adds.

    python benchmarks/bench_memory.py                         # 5 x 20,000, bootstrap 20, 2,000 embedded
    python benchmarks/bench_memory.py --prompts 2000 --embed-texts 200 --no-tracemalloc   # quick look
    python benchmarks/bench_memory.py --keep /tmp/bench100k   # keep the generated case
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "data" / "demo" / "case.yaml"
STAGES = ("join", "step00", "load_corpus", "stylometry", "wording", "markers", "embed_chunk", "embeddings", "store",
          "prepare_warm", "step01", "semantic", "step03", "step04", "step05", "step06", "step07")
#: (name, role, format) of the generated sources; format decides the file extension and writer.
SOURCES = (
    ("suspect-model", "suspect", "jsonl"),
    ("teacher-a", "teacher", "csv"),
    ("teacher-b", "teacher", "parquet"),
    ("reference-1", "reference", "json"),
    ("reference-2", "reference", "jsonl"),
    ("reference-3", "reference", "csv"),
    ("reference-4", "reference", "jsonl"),
    ("reference-5", "reference", "parquet"),
    ("reference-6", "reference", "jsonl"),
    ("reference-7", "reference", "csv"),
)
#: Source-specific habits (openers, closers, formatting), so the lines of evidence have signal to find.
OPENERS = ("", "Certainly! ", "Sure, here is an overview. ", "Great question! ", "", "Here's what I found. ")
CLOSERS = ("", " I hope this helps!", " Let me know if you have any other questions.", "",
           " In summary, it depends on your situation.", "")
PROMPT_TEMPLATES = (
    "How do I {0} the {1} when the {2} is {3}?", "Explain why {0} {1} matters for {2}.",
    "Write a short {0} about {1} and {2}.", "What is the difference between {0} and {1} in {2}?",
    "Give me {n} tips to {0} my {1}.", "Summarize the {0} of {1} for a {2} audience.",
    "Can you compare {0}, {1} and {2}?", "List the steps to {0} a {1} without {2}.",
)


# --------------------------------------------------------------------------------------------------
# Generating the case
# --------------------------------------------------------------------------------------------------

def demo_vocabulary() -> tuple[list[str], list[float]]:
    """Words and their frequencies in the demo case's real responses: a real Zipf curve to sample from."""
    from forensics.case import load_case
    from forensics.exchanges import read_exchanges

    counts: Counter[str] = Counter()
    for src in load_case(DEMO).sources:
        for text in read_exchanges(src.path).frame["response"]:
            counts.update(w.strip(".,:;!?()\"'*#") for w in text.split())
    counts.pop("", None)
    words = [w for w, c in counts.most_common() if c >= 2]
    return words, [float(counts[w]) for w in words]


def make_response(rng: random.Random, words: list[str], cum: list[float], source: int) -> str:
    """A response of 50-3,000 characters (log-uniform): sentences, paragraphs, sometimes a list."""
    target = int(round(50 * (60 ** rng.random())))
    parts = [OPENERS[source % len(OPENERS)]]
    size = len(parts[0])
    listing = rng.random() < 0.3 + 0.1 * source
    while size < target:
        sentence = " ".join(rng.choices(words, cum_weights=cum, k=rng.randint(6, 22)))
        sentence = sentence[:1].upper() + sentence[1:] + rng.choice(".....?!")
        if listing and rng.random() < 0.4:
            sentence = f"\n{'-' if source % 2 else '1.'} **{sentence}**"
        elif rng.random() < 0.15:
            sentence = "\n\n" + sentence
        parts.append(sentence + " ")
        size += len(sentence) + 1
    text = "".join(parts)[:target].rstrip() + CLOSERS[source % len(CLOSERS)]
    return text if text.strip() else "Yes."


def make_prompts(rng: random.Random, words: list[str], n: int) -> list[str]:
    """``n`` prompts, distinct after the joiner's normalisation."""
    from forensics.exchanges import normalise_prompt

    content = [w for w in words[200:5000] if w.isalpha()]
    seen: set[str] = set()
    prompts: list[str] = []
    while len(prompts) < n:
        fill = rng.sample(content, 4)
        prompt = rng.choice(PROMPT_TEMPLATES).format(*fill, n=rng.randint(3, 9))
        if rng.random() < 0.3:
            prompt += " " + " ".join(rng.sample(content, rng.randint(3, 12))) + "."
        key = normalise_prompt(prompt)
        if key not in seen:
            seen.add(key)
            prompts.append(prompt)
    return prompts


def source_rows(rng: random.Random, prompts: list[str], words: list[str], cum: list[float],
                index: int) -> list[dict[str, str]]:
    """One source's rows: ~0.5% of prompts missing, ~0.2% empty answers, ~0.1% exact repeats."""
    rows = []
    for prompt in prompts:
        roll = rng.random()
        if roll < 0.005:
            continue
        response = "" if roll < 0.007 else make_response(rng, words, cum, index)
        rows.append({"prompt": prompt, "response": response})
        if rng.random() < 0.001:
            rows.append(dict(rows[-1]))
    return rows


def write_rows(path: Path, fmt: str, rows: list[dict[str, str]]) -> None:
    if fmt == "jsonl":
        with open(path, "w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    elif fmt == "csv":
        with open(path, "w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["prompt", "response"])
            writer.writeheader()
            writer.writerows(rows)
    elif fmt == "parquet":
        import pandas as pd

        pd.DataFrame(rows).to_parquet(path, index=False)
    else:  # AlpacaEval layout
        items = [{"instruction": r["prompt"], "output": r["response"], "generator": path.stem} for r in rows]
        path.write_text(json.dumps(items, ensure_ascii=False, indent=1), encoding="utf-8")


def generate_case(folder: Path, n_prompts: int, n_sources: int, seed: int = 0, bootstrap: int = 20) -> Path:
    """Write the exchange files and case.yaml into ``folder``; return the case file's path."""
    rng = random.Random(seed)
    words, freqs = demo_vocabulary()
    cum, total = [], 0.0
    for f in freqs:
        total += f
        cum.append(total)
    prompts = make_prompts(rng, words, n_prompts)
    (folder / "exchanges").mkdir(parents=True, exist_ok=True)
    chosen = list(SOURCES[:n_sources])
    for index, (name, _role, fmt) in enumerate(chosen):
        write_rows(folder / f"exchanges/{name}.{fmt}", fmt, source_rows(rng, prompts, words, cum, index))
    (folder / "case.yaml").write_text(_case_yaml(chosen, bootstrap), encoding="utf-8")
    return folder / "case.yaml"


def _case_yaml(chosen: list[tuple[str, str, str]], bootstrap: int) -> str:
    out = ["case: bench-memory", "title: synthetic 100k-exchange benchmark"]
    for role, key in (("suspect", "suspect"), ("teacher", "teachers"), ("reference", "references")):
        out.append(f"{key}:")
        for name, r, fmt in chosen:
            if r != role:
                continue
            prefix = "  " if role == "suspect" else "  - "
            out.append(f"{prefix}name: {name}")
            out.append(f"{'  ' if role == 'suspect' else '    '}path: exchanges/{name}.{fmt}")
    out.append(f"parameters: {{bootstrap: {bootstrap}}}  # the steps run here use the benchmark's replicates")
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------------------------------
# Stages (each runs in a child process)
# --------------------------------------------------------------------------------------------------

def peak_rss_mib() -> float:
    """``ru_maxrss`` of this process in MiB (kibibytes on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def save_corpus(corpus: Any, folder: Path) -> None:
    """The aligned corpus as Parquet + JSON, so later stages start from it without re-joining."""
    import pandas as pd

    frame = pd.DataFrame({"prompt_key": corpus.prompt_keys, "prompt": corpus.prompts,
                          **{f"r:{s}": corpus.responses[s] for s in corpus.sources}})
    frame.to_parquet(folder / "corpus.parquet", index=False)
    roles = {"suspect": corpus.suspect, "teachers": corpus.teachers, "references": corpus.references}
    (folder / "corpus.json").write_text(json.dumps(roles), encoding="utf-8")


def read_corpus(folder: Path) -> Any:
    import pandas as pd

    from forensics.exchanges import AlignedCorpus

    roles = json.loads((folder / "corpus.json").read_text(encoding="utf-8"))
    frame = pd.read_parquet(folder / "corpus.parquet")
    sources = [roles["suspect"], *roles["teachers"], *roles["references"]]
    corpus = AlignedCorpus(prompt_keys=frame["prompt_key"].tolist(), prompts=frame["prompt"].tolist(),
                           responses={s: frame[f"r:{s}"].tolist() for s in sources}, **roles)
    del frame
    return corpus


def boot_indices(n: int, b: int, seed: int = 0) -> Any:
    import numpy as np

    return np.random.default_rng(seed).integers(0, n, size=(b, n))


def stage_join(folder: Path, args: argparse.Namespace) -> Callable[[], int]:
    from forensics.case import load_case
    from forensics.exchanges import join_case

    def work() -> int:
        joined = join_case(load_case(folder / "case.yaml"))
        corpus = joined.corpus()
        work.corpus = corpus  # type: ignore[attr-defined]  # saved after the measurement
        return len(joined.exchanges)

    return work


def stage_step00(folder: Path, args: argparse.Namespace) -> Callable[[], int]:
    from forensics import exchanges
    from forensics.case import load_case
    from forensics.custody import RunFolder

    def work() -> int:
        case = load_case(folder / "case.yaml")
        run = RunFolder(folder / "run")
        exchanges.run_step(case, run)
        return sum(s["rows"] for s in run.read_json(exchanges.COVERAGE_ARTIFACT)["sources"].values())

    return work


def stage_load_corpus(folder: Path, args: argparse.Namespace) -> Callable[[], int]:
    from forensics.case import load_case
    from forensics.custody import RunFolder
    from forensics.exchanges import load_corpus

    case = load_case(folder / "case.yaml")

    def work() -> int:
        corpus = load_corpus(RunFolder(folder / "run"), case)
        return len(corpus) * len(corpus.sources)

    return work


def stage_stylometry(folder: Path, args: argparse.Namespace) -> Callable[[], int]:
    from forensics.stylometry import stylometric_features, stylometric_similarities

    corpus = read_corpus(folder)
    boot = boot_indices(len(corpus), args.bootstrap)

    def work() -> int:
        features = stylometric_features(corpus, None, boot)
        stylometric_similarities(corpus, boot, features=features)
        return len(corpus) * len(corpus.sources)

    return work


def stage_wording(folder: Path, args: argparse.Namespace) -> Callable[[], int]:
    from forensics.case import Parameters
    from forensics.wording import measure

    corpus = read_corpus(folder)
    boot = boot_indices(len(corpus), args.bootstrap)

    def work() -> int:
        measure(corpus, boot, Parameters().opening_words)
        return len(corpus) * len(corpus.sources)

    return work


def stage_markers(folder: Path, args: argparse.Namespace) -> Callable[[], int]:
    from forensics.markers import marker_rates

    corpus = read_corpus(folder)
    boot = boot_indices(len(corpus), args.bootstrap)

    def work() -> int:
        marker_rates(corpus, boot)
        return len(corpus) * len(corpus.sources)

    return work


def stage_embed_chunk(folder: Path, args: argparse.Namespace) -> Callable[[], int]:
    from forensics.case import Parameters
    from forensics.embeddings import Embedder, texts_to_embed

    corpus = read_corpus(folder)
    texts = texts_to_embed(corpus, Parameters().opening_words)  # as pipeline.prepare
    del corpus
    embedder = Embedder(cache=False)

    def work() -> int:
        work.chunks = len(embedder.chunk(texts))  # type: ignore[attr-defined]
        return len(texts)

    return work


def stage_embeddings(folder: Path, args: argparse.Namespace) -> Callable[[], int]:
    from forensics.embeddings import Embedder, EmbeddingCache

    corpus = read_corpus(folder)
    per_source = max(1, args.embed_texts // len(corpus.sources))
    texts = [t for s in corpus.sources for t in corpus.responses[s][:per_source]]
    del corpus
    cache_dir = Path(tempfile.mkdtemp(prefix="bench-cache-", dir=folder))
    embedder = Embedder(cache=EmbeddingCache(cache_dir))

    def work() -> int:
        embedder.embed(texts)
        return len(texts)

    return work


def _case_texts(folder: Path) -> list[str]:
    from forensics.case import Parameters
    from forensics.embeddings import texts_to_embed

    return texts_to_embed(read_corpus(folder), Parameters().opening_words)


def _use_store(folder: Path) -> Path:
    """The benchmark's own embedding store (``FORENSICS_CACHE``), shared by the stages below."""
    store = folder / "store"
    os.environ["FORENSICS_CACHE"] = str(store)
    return store


def stage_store(folder: Path, args: argparse.Namespace) -> Callable[[], int]:
    """The embedding step's storage at full size: a vector for every text (answers and openings) written
    through the packed store a group at a time, as the embedder does; the vectors are synthetic (seeded
    unit vectors), since the model's time is measured on a sample by ``embeddings``."""
    import numpy as np

    from forensics.custody import sha256_text
    from forensics.embeddings import EmbeddingCache, model_fingerprint, resolve_model

    texts = _case_texts(folder)
    cache = EmbeddingCache(_use_store(folder))
    fingerprint = model_fingerprint(resolve_model(None)[1])
    rng = np.random.default_rng(0)

    def work() -> int:
        for start in range(0, len(texts), 512):
            part = texts[start:start + 512]
            block = rng.normal(size=(len(part), 384)).astype(np.float32)
            block /= np.linalg.norm(block, axis=1, keepdims=True)
            cache.put_many(fingerprint, zip([sha256_text(t) for t in part], block, strict=True))
        return len(texts)

    return work


def stage_prepare_warm(folder: Path, args: argparse.Namespace) -> Callable[[], int]:
    """What ``forensics run`` does before the notebooks (``pipeline.prepare``: the case read and joined,
    every text's entry in the store verified) on a warm store: nothing embedded."""
    from forensics import pipeline
    from forensics.case import load_case

    case = load_case(folder / "case.yaml")
    _use_store(folder)

    def work() -> int:
        pipeline.prepare(case)
        return sum(s["rows"] for s in json.loads((folder / "run" / "artifacts" / "coverage.json").read_text(
            encoding="utf-8"))["sources"].values())

    return work


def stage_step01(folder: Path, args: argparse.Namespace) -> Callable[[], int]:
    """Step 01 with every vector in the store: the embeddings artifacts of the whole case."""
    from forensics import embeddings
    from forensics.case import load_case
    from forensics.custody import RunFolder

    case = load_case(folder / "case.yaml")
    _use_store(folder)

    def work() -> int:
        stats = embeddings.run_step(case, RunFolder(folder / "run"), progress=False)
        return stats["texts"]

    return work


def stage_semantic(folder: Path, args: argparse.Namespace) -> Callable[[], int]:
    """Step 02 on the whole case from the step-01 artifacts."""
    from forensics import semantic
    from forensics.case import load_case
    from forensics.custody import RunFolder

    case = load_case(folder / "case.yaml")  # bootstrap: the benchmark's replicates (written into the case)

    def work() -> int:
        return semantic.run_step(case, RunFolder(folder / "run"))["n_prompts"]

    return work


#: The later steps, each run as the notebook runs it (``run_step`` on the run folder, artifacts of the
#: steps before it present): what a case of this size costs end to end once its vectors are stored.
LATER_STEPS = {"step03": "forensics.stylometry.step", "step04": "forensics.markers",
               "step05": "forensics.clustering", "step06": "forensics.evidence", "step07": "forensics.report.step"}


def stage_later_step(name: str) -> Callable[[Path, argparse.Namespace], Callable[[], int]]:
    def stage(folder: Path, args: argparse.Namespace) -> Callable[[], int]:
        import importlib

        from forensics.case import load_case
        from forensics.custody import RunFolder

        module = importlib.import_module(LATER_STEPS[name])
        case = load_case(folder / "case.yaml")

        def work() -> int:
            module.run_step(case, RunFolder(folder / "run"))
            exchanges = RunFolder(folder / "run").read_json("artifacts/coverage.json")["sources"].values()
            return sum(s["rows"] for s in exchanges)

        return work

    return stage


STAGE_FUNCS = {"join": stage_join, "step00": stage_step00, "load_corpus": stage_load_corpus,
               "stylometry": stage_stylometry, "wording": stage_wording, "markers": stage_markers,
               "embed_chunk": stage_embed_chunk,
               "embeddings": stage_embeddings, "store": stage_store, "prepare_warm": stage_prepare_warm,
               "step01": stage_step01, "semantic": stage_semantic,
               **{name: stage_later_step(name) for name in LATER_STEPS}}


def run_stage(name: str, folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Child side: set up (imports, input), then time and measure only the stage's work."""
    work = STAGE_FUNCS[name](folder, args)
    base = peak_rss_mib()
    if args.tracemalloc:
        tracemalloc.start()
    started = time.perf_counter()
    n = work()
    seconds = time.perf_counter() - started
    result: dict[str, Any] = {"stage": name, "exchanges": n, "seconds": round(seconds, 1),
                              "base_mib": round(base, 1), "peak_mib": round(peak_rss_mib(), 1)}
    if args.tracemalloc:
        result["py_peak_mib"] = round(tracemalloc.get_traced_memory()[1] / 2**20, 1)
        tracemalloc.stop()
    if name == "join":
        save_corpus(work.corpus, folder)  # type: ignore[attr-defined]
    return result


# --------------------------------------------------------------------------------------------------
# Parent
# --------------------------------------------------------------------------------------------------

def child(stage: str, folder: Path, args: argparse.Namespace, traced: bool) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--stage", stage, "--dir", str(folder),
           "--bootstrap", str(args.bootstrap), "--embed-texts", str(args.embed_texts)]
    if traced:
        cmd.append("--tracemalloc")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"stage {stage} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def print_table(rows: list[dict[str, Any]]) -> None:
    head = (f"{'stage':<12} {'exchanges':>10} {'seconds':>8} {'base MiB':>9} {'peak RSS MiB':>13} "
            f"{'py peak MiB':>12}")
    print(head)
    print("-" * len(head))
    for r in rows:
        py = f"{r['py_peak_mib']:.0f}" if "py_peak_mib" in r else "-"
        print(f"{r['stage']:<12} {r['exchanges']:>10,} {r['seconds']:>8.1f} {r['base_mib']:>9.0f} "
              f"{r['peak_mib']:>13.0f} {py:>12}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=20000, help="prompts per source")
    parser.add_argument("--sources", type=int, default=5, choices=range(4, len(SOURCES) + 1))
    parser.add_argument("--bootstrap", type=int, default=20,
                        help="bootstrap replicates (stylometry, markers)")
    parser.add_argument("--embed-texts", type=int, default=2000, help="texts in the embedding slice")
    parser.add_argument("--stages", default=",".join(STAGES), help="comma-separated subset, in order")
    parser.add_argument("--no-tracemalloc", action="store_true", help="skip the tracemalloc re-runs")
    parser.add_argument("--keep", help="generate into this folder and keep it (re-used if it has a case)")
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    parser.add_argument("--tracemalloc", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--generate", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.generate:
        generate_case(Path(args.dir), args.prompts, args.sources, bootstrap=args.bootstrap)
        return 0
    if args.stage:
        print(json.dumps(run_stage(args.stage, Path(args.dir), args)))
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        folder = Path(args.keep) if args.keep else Path(tmp)
        started = time.perf_counter()
        if not (folder / "case.yaml").exists():
            subprocess.run([sys.executable, str(Path(__file__).resolve()), "--generate", "--dir", str(folder),
                            "--prompts", str(args.prompts), "--sources", str(args.sources),
                            "--bootstrap", str(args.bootstrap)], check=True)
        size = sum(p.stat().st_size for p in (folder / "exchanges").iterdir()) / 2**20
        print(f"case: {args.sources} sources x {args.prompts:,} prompts, {size:.0f} MiB of exchange files "
              f"(generated in {time.perf_counter() - started:.0f} s) in {folder}", flush=True)
        rows = []
        for stage in args.stages.split(","):
            row = child(stage, folder, args, traced=False)
            if not args.no_tracemalloc:
                row["py_peak_mib"] = child(stage, folder, args, traced=True)["py_peak_mib"]
            rows.append(row)
            print(f"  {stage}: {row}", flush=True)
        print()
        print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
