"""End to end: ``forensics run`` on a small real case with a control suspect, a cached re-run, ``verify``.

The case is made of real demo outputs (data/demo/exchanges), trimmed to 60 prompts with every file kept
in its own format: the suspect llama-2-13b-chat was fine-tuned on human-written data only (a control), so
no candidate teacher may be attributed. One cold run fills a private embedding cache; ``forensics verify``
re-executes it into another folder (kept with ``--workdir``), which must embed nothing, give identical
findings and pass, and must fail, naming the file, once one byte of one input changed.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pandas as pd
import pytest
from pdfparts import pdf_streams
from runlog import embedding_stats

from forensics.calibration import DEFAULT_CALIBRATION, Calibration, CalibrationSet, supports, verbal
from forensics.custody import sha256_file
from forensics.exchanges import normalise_prompt, read_exchanges
from forensics.pipeline import notebooks
from forensics.results import SCHEMA, SCHEMA_PATH, Findings
from forensics.verify import compare_findings
from forensics.weighing import FUSED_LINES

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo" / "exchanges"
N_PROMPTS = 60
SUSPECT = ("llama-2-13b-chat", "llama-2-13b-chat.csv", "Llama-2-13B")
TEACHERS = (("text-davinci-003", "text-davinci-003.json"), ("gpt-3.5-turbo-0301", "gpt-3.5-turbo-0301.csv"))
REFERENCES = (("guanaco-13b", "guanaco-13b.jsonl", "LLaMA-13B"), ("gemini-pro", "gemini-pro.json", None),
              ("cohere", "cohere.jsonl", None))
PARAMETERS = {"bootstrap": 100, "permutations": 200, "min_prompts": 30}
RUN_TIMEOUT_S = 600
#: The file whose byte is changed in the last test, and the response text the change lands in.
TAMPERED = "exchanges/cohere.jsonl"


# --------------------------------------------------------------------------------------------------
# Building the case: trimmed copies of the demo files, each in its own format
# --------------------------------------------------------------------------------------------------

def _answered(path: Path) -> set[str]:
    frame = read_exchanges(path).frame
    return set(frame.loc[~frame["empty"].astype(bool), "prompt_norm"])


def _trim(source: Path, target: Path, keep: set[str]) -> int:
    """Copy ``source`` to ``target`` keeping only the records whose normalised prompt is in ``keep``."""
    suffix = source.suffix
    if suffix == ".jsonl":
        lines = [line for line in source.read_text(encoding="utf-8").splitlines(keepends=True)
                 if line.strip() and normalise_prompt(json.loads(line)["prompt"]) in keep]
        target.write_text("".join(lines), encoding="utf-8")
        return len(lines)
    if suffix == ".json":  # the AlpacaEval layout: a list of objects with instruction/output (+ extras)
        items = [item for item in json.loads(source.read_text(encoding="utf-8"))
                 if normalise_prompt(item["instruction"]) in keep]
        target.write_text(json.dumps(items, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        return len(items)
    if suffix == ".csv":
        frame = pd.read_csv(source, dtype=str, keep_default_na=False)
        kept = frame[[normalise_prompt(p) in keep for p in frame["prompt"]]]
        kept.to_csv(target, index=False)
        return len(kept)
    raise AssertionError(f"no trimming for {source}")


def write_case(folder: Path) -> Path:
    """The control case in ``folder``; returns the case file. Prompts: the 60 with the smallest sha256."""
    files = [SUSPECT[1], *(f for _, f in TEACHERS), *(f for _, f, _ in REFERENCES)]
    shared = set.intersection(*(_answered(DEMO / f) for f in files))
    assert len(shared) >= N_PROMPTS, "the demo data no longer share enough answered prompts"
    keep = set(sorted(shared, key=lambda p: hashlib.sha256(p.encode()).hexdigest())[:N_PROMPTS])
    (folder / "exchanges").mkdir(parents=True)
    for f in files:
        assert _trim(DEMO / f, folder / "exchanges" / f, keep) >= N_PROMPTS
    lines = ["case: control-llama", "title: Was llama-2-13b-chat trained on a candidate teacher's outputs?",
             "suspect:", f"  name: {SUSPECT[0]}", f"  path: exchanges/{SUSPECT[1]}", f"  base_model: {SUSPECT[2]}",
             "teachers:"]
    for name, f in TEACHERS:
        lines += [f"  - name: {name}", f"    path: exchanges/{f}", "    why: candidate named in the allegation"]
    lines.append("references:")
    for name, f, base in REFERENCES:
        lines += [f"  - name: {name}", f"    path: exchanges/{f}", "    why: believed independent"]
        lines += [f"    base_model: {base}"] if base else []
    lines += ["parameters:", *(f"  {k}: {v}" for k, v in PARAMETERS.items())]
    case_file = folder / "case.yaml"
    case_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return case_file


# --------------------------------------------------------------------------------------------------
# Running the command line
# --------------------------------------------------------------------------------------------------

@dataclass
class Done:
    """One finished command: its result, its wall time and, for runs, the run folder."""

    proc: subprocess.CompletedProcess[str]
    seconds: float
    out: Path | None = None

    @property
    def findings(self) -> dict[str, Any]:
        assert self.out is not None
        return json.loads((self.out / "findings.json").read_text(encoding="utf-8"))

    def explain(self) -> str:
        return f"exit {self.proc.returncode} after {self.seconds:.0f} s\nstdout:\n{self.proc.stdout[-3000:]}\n" \
               f"stderr:\n{self.proc.stderr[-5000:]}"


def forensics(cache: Path, cwd: Path, *args: str) -> Done:
    env = {**os.environ, "FORENSICS_CACHE": str(cache), "PYTHONHASHSEED": "0", "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "forensics.cli", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=RUN_TIMEOUT_S, check=False)
    return Done(proc, time.monotonic() - started)


# --------------------------------------------------------------------------------------------------
# Fixtures: one cold run, one cached run, for the whole module
# --------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def calibration() -> Calibration:
    if not DEFAULT_CALIBRATION.exists():
        pytest.skip(f"{DEFAULT_CALIBRATION} does not exist yet: it is written by `forensics calibrate` "
                    "(the end-to-end run needs the shipped calibration)")
    return CalibrationSet.load(DEFAULT_CALIBRATION)["teacher"]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pipeline")


@pytest.fixture(scope="module")
def case_file(root: Path) -> Path:
    return write_case(root / "case")


@pytest.fixture(scope="module")
def cache(root: Path) -> Path:
    return root / "cache"


@pytest.fixture(scope="module")
def first(calibration: Calibration, case_file: Path, cache: Path, root: Path) -> Done:
    """``forensics run`` with an empty cache."""
    out = root / "run-1"
    done = forensics(cache, root, "run", str(case_file), "--out", str(out))
    done.out = out
    assert done.proc.returncode == 0, done.explain()
    return done


@pytest.fixture(scope="module")
def second(first: Done, cache: Path, root: Path) -> Done:
    """``forensics verify`` of the first run: its re-execution of the same case into another folder, with
    the cache the first run filled, kept with ``--workdir`` (one run is both the cached re-run and the
    verification, since a verification is exactly that)."""
    assert first.out is not None
    done = forensics(cache, root, "verify", str(first.out), "--workdir", str(root / "verify"))
    done.out = root / "verify" / "rerun"
    assert done.proc.returncode == 0, done.explain()
    return done


@pytest.fixture
def teachers(first: Done) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in first.findings["teachers"]}


# --------------------------------------------------------------------------------------------------
# The first run
# --------------------------------------------------------------------------------------------------

def test_run_succeeds_and_writes_every_output(first: Done) -> None:
    assert first.out is not None
    assert "Traceback" not in first.proc.stderr
    for name in ("findings.json", "report.html", "report.pdf", "manifest.json"):
        assert (first.out / name).is_file(), name
        assert (first.out / name).stat().st_size > 0, name
    assert f"findings: {first.out / 'findings.json'}" in first.proc.stdout
    assert not first.out.with_name(first.out.name + ".partial").exists()


def test_every_notebook_was_executed(first: Done) -> None:
    assert first.out is not None
    expected = [nb.name for nb in notebooks()]
    assert len(expected) >= 8
    found = sorted(p.name for p in (first.out / "notebooks").glob("*.ipynb"))
    assert found == expected
    for name in expected:
        nb = json.loads((first.out / "notebooks" / name).read_text(encoding="utf-8"))
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        assert code and all(c.get("execution_count") for c in code), f"{name} has cells that did not run"
        errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
        assert not errors, f"{name}: {errors[:1]}"
        assert nb["metadata"]["papermill"]["parameters"]["case_file"].endswith("case.yaml")
    artifacts = json.loads((first.out / "manifest.json").read_text(encoding="utf-8"))["artifacts"]
    for name in expected:  # hashed like every artifact, so `forensics verify` catches an edited notebook
        assert artifacts[f"notebooks/{name}"]["sha256"] == sha256_file(first.out / "notebooks" / name)


def test_findings_follow_the_contract(first: Done, calibration: Calibration) -> None:
    f = first.findings
    assert f["schema"] == SCHEMA
    # the real run's findings follow the published JSON Schema (an independent validator) and the types
    jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))).validate(f)
    assert Findings.from_json(f).to_json() == f
    assert f["case"] == "control-llama"
    assert f["suspect"] == SUSPECT[0]
    assert set(f["propositions"]) == {"Hp", "Hd"}
    assert [p["name"] for p in f["panel"]] == [r[0] for r in REFERENCES]
    assert [c["name"] for c in f["candidates"]] == [t[0] for t in TEACHERS]
    assert [t["name"] for t in f["teachers"]] == [t[0] for t in TEACHERS]
    assert f["data"]["n_prompts_analysed"] == N_PROMPTS
    for key in ("conclusion", "exhibits", "identity_leaks", "limitations", "validation", "inputs", "model",
                "parameters", "parameters_sha256", "environment", "generated"):
        assert key in f, key
    assert f["environment"]["forensics"] and f["environment"]["python"]
    assert f["model"]["fingerprint"]
    assert {k: f["parameters"][k] for k in PARAMETERS} == PARAMETERS
    assert f["validation"]["calibration_sha256"] == sha256_file(DEFAULT_CALIBRATION)
    # keys are sorted and floats rounded to 6 decimals (docs/FINDINGS.md)
    assert list(f) == sorted(f)
    unrounded = [(where, x) for where, x in floats(f) if round(x, 6) != x]
    assert not unrounded, unrounded[:5]


def floats(value: Any, where: str = "") -> Iterator[tuple[str, float]]:
    """Every float of a JSON document with its path."""
    if isinstance(value, float):
        yield where, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from floats(v, f"{where}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from floats(v, f"{where}[{i}]")


@pytest.mark.parametrize("teacher", [t[0] for t in TEACHERS])
def test_each_teacher_has_a_calibrated_lr_and_its_words(teachers: dict[str, dict[str, Any]], teacher: str,
                                                        first: Done, calibration: Calibration) -> None:
    t = teachers[teacher]
    band = tuple(first.findings["parameters"]["inconclusive_band"])
    assert isinstance(t["log10_lr"], float)
    assert calibration.lower <= t["log10_lr"] <= calibration.upper
    assert t["lr_bounds"] == [round(calibration.lower, 6), round(calibration.upper, 6)]
    # the LR is the shipped calibration applied to the fused score (score rounded to 6 decimals)
    assert t["log10_lr"] == pytest.approx(calibration.log10_lr(t["score"]), abs=1e-5)
    assert t["verbal"] == verbal(t["log10_lr"])
    assert t["supports"] == supports(t["log10_lr"], band)
    assert t["supports"] in ("Hp", "Hd", "inconclusive")
    assert isinstance(t["beats_other_candidates"], bool)


@pytest.mark.parametrize("teacher", [t[0] for t in TEACHERS])
def test_each_line_of_evidence_has_its_statistics(teachers: dict[str, dict[str, Any]], teacher: str) -> None:
    ev = teachers[teacher]["evidence"]
    assert {"embedding", "stylometry", "markers", "clusters"} <= set(ev)
    refs = {r[0] for r in REFERENCES}
    for line in ("embedding", "stylometry", "markers"):
        entry = ev[line]
        assert entry["statistic"], line
        assert isinstance(entry["z"], float), line
        assert entry["n_prompts"] == N_PROMPTS, line
        assert set(entry["panel_values"]) == refs, line
        assert isinstance(entry["suspect_value"], float), line
        low, high = entry["ci95"]
        assert low is not None and high is not None and low <= high, line
    clusters = ev["clusters"]
    assert clusters["statistic"]
    assert clusters["n_prompts"] == N_PROMPTS
    assert clusters["z"] is None or isinstance(clusters["z"], float)
    assert 0 <= clusters["p_value"] <= 1
    # the fused score is the mean of the fused lines' z (each rounded to 6 decimals in the findings)
    zs = [ev[line]["z"] for line in FUSED_LINES if ev[line]["z"] is not None]
    assert teachers[teacher]["score"] == pytest.approx(sum(zs) / len(zs), abs=1e-5)


def test_control_suspect_is_attributed_no_teacher(first: Done) -> None:
    conclusion = first.findings["conclusion"]
    why = "; ".join(f"{t['name']}: score {t['score']}, log10 LR {t['log10_lr']} ({t['supports']}), line z "
                    f"{ {line: e.get('z') for line, e in t['evidence'].items()} }"
                    for t in first.findings["teachers"])
    assert conclusion["attributed_teacher"] is None, f"a control was attributed: {why}"
    assert conclusion["outcome"] in ("no teacher supported", "inconclusive")
    assert conclusion["statement"]
    assert "The evidence supports the proposition" not in conclusion["statement"]


def test_inputs_are_recorded_with_the_hashes_of_the_files(first: Done, case_file: Path) -> None:
    inputs = first.findings["inputs"]
    expected = {SUSPECT[0]: "suspect", **{t[0]: "teacher" for t in TEACHERS},
                **{r[0]: "reference" for r in REFERENCES}}
    assert {i["name"]: i["role"] for i in inputs} == expected
    for item in inputs:
        path = case_file.parent / item["path"]
        assert path.is_file(), item
        assert item["sha256"] == sha256_file(path), item["name"]


def test_limitations_come_from_this_case(first: Done) -> None:
    limitations = first.findings["limitations"]
    assert any("The reference panel has only 3 models" in s for s in limitations)
    # three references of three model lines: decided again without each of them (two lines remain), said once
    assert sum("each of the 3 references left out in turn" in s for s in limitations) == 1
    assert any(f"Only {N_PROMPTS} prompts were analysed" in s for s in limitations)
    # the suspect's base model is stated and no reference shares it: neither base-model sentence
    assert not any("base model" in s for s in limitations)


def test_report_pdf_embeds_the_findings(first: Done) -> None:
    assert first.out is not None
    pdf = (first.out / "report.pdf").read_bytes()
    assert pdf.startswith(b"%PDF")
    streams = pdf_streams(pdf)
    everything = pdf + b"\n".join(streams)
    assert b"findings.json" in everything
    assert b"manifest.json" in everything
    assert b"/EmbeddedFile" in everything
    # the attachment is the run's findings.json, byte for byte
    assert (first.out / "findings.json").read_bytes() in streams


def test_report_html_is_inert_and_states_the_conclusion(first: Done) -> None:
    assert first.out is not None
    text = (first.out / "report.html").read_text(encoding="utf-8")
    assert not re.search(r"<\s*script", text, re.I)
    assert not re.search(r"\son[a-z]+\s*=", text, re.I)  # no inline event handlers
    assert not re.search(r"javascript:", text, re.I)
    visible = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", text)).split())
    statement = " ".join(first.findings["conclusion"]["statement"].split())
    assert statement in visible
    for name in [SUSPECT[0], *(t[0] for t in TEACHERS), *(r[0] for r in REFERENCES)]:
        assert name in visible


# --------------------------------------------------------------------------------------------------
# The re-execution by verify: everything from the cache, identical findings
# --------------------------------------------------------------------------------------------------

def test_first_run_embedded_every_text(first: Done) -> None:
    texts, cached, embedded = embedding_stats(first.proc.stderr)
    assert texts > 0
    assert (cached, embedded) == (0, texts)


def test_second_run_embeds_nothing(second: Done, first: Done) -> None:
    texts, cached, embedded = embedding_stats(second.proc.stderr)
    assert (texts, cached, embedded) == (embedding_stats(first.proc.stderr)[0], texts, 0)
    assert "0 embedded now" in second.proc.stderr


def test_two_runs_give_identical_findings(first: Done, second: Done) -> None:
    differences = compare_findings(first.findings, second.findings)
    assert not differences, "\n".join(d.line() for d in differences[:20])


# --------------------------------------------------------------------------------------------------
# The same case on a 2-worker Dask cluster, and a sample-size plan from the first run
# --------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def on_cluster(first: Done, case_file: Path, root: Path) -> Done:
    """``forensics run --workers 2`` (a local Dask cluster of two worker processes), with a cold cache."""
    pytest.importorskip("distributed")
    out = root / "run-dask"
    done = forensics(root / "cache-dask", root, "run", str(case_file), "--out", str(out), "--workers", "2")
    done.out = out
    assert done.proc.returncode == 0, done.explain()
    return done


@pytest.mark.slow
def test_dask_run_embeds_on_the_cluster_with_identical_findings(first: Done, on_cluster: Done) -> None:
    texts, cached, embedded = embedding_stats(on_cluster.proc.stderr)
    assert (texts, cached, embedded) == (embedding_stats(first.proc.stderr)[0], 0, texts)
    differences = compare_findings(first.findings, on_cluster.findings)
    assert not differences, "\n".join(d.line() for d in differences[:20])


def test_plan_reads_the_run(first: Done, root: Path, cache: Path) -> None:
    assert first.out is not None
    done = forensics(cache, root, "plan", str(first.out), "--json")
    assert done.proc.returncode == 0, done.explain()
    result = json.loads(done.proc.stdout)
    assert result["n_prompts_pilot"] == first.findings["data"]["n_prompts_analysed"]
    names = [t["name"] for t in first.findings["teachers"]]
    assert [t["name"] for t in result["teachers"]] == names
    for estimate, teacher in zip(result["teachers"], first.findings["teachers"], strict=True):
        assert estimate["verdict"] in {"enough", "collect", "panel-limited"}
        inside = teacher["supports"] == "inconclusive"
        assert (estimate["verdict"] == "panel-limited") == inside
        assert estimate["verdict"] != "collect" or estimate["prompts_needed"] > result["n_prompts_pilot"]


# --------------------------------------------------------------------------------------------------
# forensics verify
# --------------------------------------------------------------------------------------------------

def test_verify_passes_on_the_untouched_run(second: Done) -> None:
    assert second.out is not None
    assert second.proc.stdout.strip().splitlines()[-1].startswith("verified:")
    assert (second.out / "report.pdf").is_file() and (second.out / "manifest.json").is_file()


@pytest.fixture
def tampered(case_file: Path) -> Iterator[Path]:
    """One byte of one response in one input changed (a letter for another); restored afterwards."""
    path = case_file.parent / TAMPERED
    original = path.read_bytes()
    record = json.loads(original.splitlines()[0])
    word = re.search(r"[a-z]{4,}", record["response"])
    assert word, "no word to change in the first response"
    start = original.index(word.group().encode())
    letter = original[start:start + 1]
    changed = original[:start] + (b"q" if letter != b"q" else b"z") + original[start + 1:]
    assert len(changed) == len(original) and sum(a != b for a, b in zip(changed, original, strict=True)) == 1
    path.write_bytes(changed)
    try:
        yield path
    finally:
        path.write_bytes(original)


def test_verify_fails_naming_the_changed_input(first: Done, tampered: Path, cache: Path, root: Path) -> None:
    assert first.out is not None
    done = forensics(cache, root, "verify", str(first.out))
    assert done.proc.returncode != 0, done.explain()
    lines = done.proc.stdout.strip().splitlines()
    changed = [line for line in lines if "has changed" in line]
    assert len(changed) == 1, done.explain()
    assert TAMPERED in changed[0]
    assert sha256_file(tampered) in changed[0]
    assert lines[-1].startswith("NOT verified:")
    assert "1 changed or missing inputs" in lines[-1]
