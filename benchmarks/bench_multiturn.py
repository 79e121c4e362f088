"""Multi-turn cases end to end: the labelled answers recast as two-turn chat logs, each run by ``forensics run``.

The validation scores single-turn exchanges. Real logs are conversations, read through
:mod:`forensics.conversations` (each assistant turn one exchange, keyed by what the user said so far); this
benchmark checks that path on real answers with documented lineage. For each suspect it draws
``2 x --conversations`` prompts (seeded), pairs them into conversations ``user: p1 / assistant: a1 / user: p2
/ assistant: a2`` in the OpenAI ``messages`` layout, writes one log per model (every model's own answers),
builds the case as the validation does (every labelled teacher with its family; the panel: references and
controls not of the suspect's lineage) and runs the real command line. The second question does not follow
from the first answer here, so this checks the reading, joining and weighing of turns, not how models
behave deep in a conversation.

    python benchmarks/bench_multiturn.py --suspects vicuna-13b guanaco-13b [--conversations 200]

A student is right when the attributed family is one it is documented to have learned from; a control when
no teacher or family is supported. Appends to ``benchmarks/results/multiturn.txt``.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
from labelled_benchmark import DEFAULT_LABELS, append_result

from forensics import validation


def conversation_log(prompts: list[str], answers: list[str]) -> str:
    """JSON lines, one two-turn conversation per consecutive pair of prompts."""
    lines = []
    for i in range(0, len(prompts) - 1, 2):
        messages = [{"role": "user", "content": prompts[i]}, {"role": "assistant", "content": answers[i]},
                    {"role": "user", "content": prompts[i + 1]}, {"role": "assistant", "content": answers[i + 1]}]
        lines.append(json.dumps({"id": f"c{i // 2:04d}", "messages": messages}, ensure_ascii=False))
    return "\n".join(lines) + "\n"


def write_case(bench: validation.Benchmark, suspect: str, n_conversations: int, seed: int, folder: Path) -> Path:
    """The suspect's two-turn case in ``folder`` (logs and case.yaml); returns the case file. Its teachers
    and panel are the validation's (:func:`forensics.validation.benchmark_cases`) on the drawn prompts."""
    chosen = np.array(sorted(random.Random(seed).sample(range(len(bench.prompts)), 2 * n_conversations)))
    corpus = next(c for c in validation.benchmark_cases(bench, chosen) if c.suspect == suspect)
    family = validation.family_of_teachers(bench.labels)
    (folder / "logs").mkdir(parents=True, exist_ok=True)
    for name in corpus.sources:
        log = conversation_log(corpus.prompts, corpus.responses[name])
        (folder / "logs" / f"{name}.jsonl").write_text(log, encoding="utf-8")

    def entry(name: str, family: str | None = None) -> list[str]:
        lines = [f"  - name: {json.dumps(name)}", f"    path: logs/{name}.jsonl"]
        return lines + ([f"    family: {json.dumps(family)}"] if family else [])

    case_id = re.sub(r"[^A-Za-z0-9_-]", "-", f"multiturn-{suspect}")  # a case id names a folder: no dots
    text = [f"case: {case_id}", f"title: {json.dumps(f'{suspect}, two-turn conversations')}",
            "suspect:", f"  name: {json.dumps(suspect)}", f"  path: logs/{suspect}.jsonl", "teachers:"]
    for t in corpus.teachers:
        text += entry(t, family[t] if family[t] != t else None)
    text.append("references:")
    for r in corpus.references:
        text += entry(r)
    case_file = folder / "case.yaml"
    case_file.write_text("\n".join(text) + "\n", encoding="utf-8")
    return case_file


def documented_families(bench: validation.Benchmark, suspect: str) -> set[str]:
    """The families of the teachers the suspect's label names (as the validation's ``hp``)."""
    labels = bench.labels.set_index("name")
    family = validation.family_of_teachers(bench.labels)
    label = labels.loc[suspect, "trained_on_outputs_of"]
    return {family[t] for t in family if validation.teacher_matches(label, labels.loc[t, "teacher_name"])}


def run_case(case_file: Path) -> dict:
    out = case_file.parent / "run"
    cli = Path(sys.executable).parent / "forensics"
    subprocess.run([str(cli), "run", str(case_file), "--out", str(out), "--quiet"], check=True)
    return json.loads((out / "findings.json").read_text(encoding="utf-8"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=Path, default=DEFAULT_LABELS)
    parser.add_argument("--suspects", nargs="+", required=True, help="labelled students or controls")
    parser.add_argument("--conversations", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--work", type=Path, default=Path("runs/bench-multiturn"))
    args = parser.parse_args()
    bench = validation.load_benchmark(args.labels)
    rows = [f"bench_multiturn: {args.conversations} two-turn conversations a case (seed {args.seed}), "
            f"benchmark data {bench.data_sha256[:12]}"]
    for suspect in args.suspects:
        role = bench.labels.loc[bench.labels["name"] == suspect, "role"].iloc[0]
        findings = run_case(write_case(bench, suspect, args.conversations, args.seed, args.work / suspect))
        conclusion = findings["conclusion"]
        documented = documented_families(bench, suspect)
        if role == "control":
            right = not (conclusion["families_supported"] or conclusion["candidates_supported"])
        else:
            right = conclusion["attributed_family"] in documented
        families = ", ".join(f"{f['name']} {f['log10_lr']:+.2f}" for f in findings["families"])
        rows.append(f"  {suspect} ({role}; documented: {', '.join(sorted(documented)) or 'none'}), "
                    f"{findings['data']['n_prompts_analysed']} turns: {conclusion['outcome']}, family "
                    f"{conclusion['attributed_family']}, teacher {conclusion['attributed_teacher']} -> "
                    f"{'right' if right else 'WRONG'}; family log10 LRs: {families}")
    append_result("multiturn.txt", "\n".join(rows))


if __name__ == "__main__":
    main()
