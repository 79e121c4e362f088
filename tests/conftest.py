"""Shared fixtures: a small real case (from the bundled demo data) and an isolated embedding cache.

Kept minimal: tests that run the whole pipeline need a case small enough to finish in well under a
minute on two cores, made of real model outputs (so every line of evidence has something to measure),
in every input format; and no test may read or write the user's own embedding cache.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pandas as pd
import pytest

# The tests run UMAP (numba) and the embedding model (torch) in one process; numba's default OpenMP layer
# then keeps its threads spinning against torch's and a later embedding runs ~10x slower (measured: 128 s
# instead of 11 s). The case runs themselves are unaffected: each notebook has its own kernel process.
os.environ.setdefault("NUMBA_THREADING_LAYER", "workqueue")

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "data" / "demo"
#: The development benchmark (AlpacaEval outputs, not shipped): beside the repository, or where
#: ``$FORENSICS_BENCHMARK_DIR`` points. Tests that need it skip with a reason when it is absent.
BENCHMARK_ENV = "FORENSICS_BENCHMARK_DIR"
BENCHMARK_DEFAULT = REPO.parent / "shared" / "data" / "alpaca_eval"

#: (source name in the small case, demo file, role, format written). Four sources, four formats.
SMALL_SOURCES = (
    ("alpaca-7b", "alpaca-7b.jsonl", "suspect", "jsonl"),
    ("text-davinci-003", "text-davinci-003.json", "teacher", "json"),
    ("guanaco-13b", "guanaco-13b.jsonl", "reference", "csv"),
    ("gpt-4-0314", "gpt-4-0314.parquet", "reference", "parquet"),
)
#: Parameters that keep a full run short; everything else is the default.
SMALL_PARAMETERS = {"seed": 0, "min_prompts": 30, "bootstrap": 50, "permutations": 100}


#: The bad-input generator (also a documented script): builds a corpus of broken files with expectations.
BAD_INPUT_GENERATOR = Path(__file__).parent / "bad_inputs" / "make_bad_inputs.py"


def _load_bad_input_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_bad_inputs", BAD_INPUT_GENERATOR)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BAD_INPUTS = _load_bad_input_generator()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: runs the whole pipeline (tens of seconds); -m 'not slow' skips")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test asking for ``bad_input_name`` runs once per case the generator knows."""
    if "bad_input_name" in metafunc.fixturenames:
        metafunc.parametrize("bad_input_name", list(BAD_INPUTS.REGISTRY))


@pytest.fixture(scope="session")
def bad_input_generator() -> ModuleType:
    return BAD_INPUTS


def _demo_rows(path: Path) -> pd.DataFrame:
    from forensics.exchanges import read_exchanges

    frame = read_exchanges(path).frame
    return frame.loc[~frame["empty"], ["prompt", "prompt_norm", "response"]]


def _write(path: Path, fmt: str, frame: pd.DataFrame) -> None:
    rows = frame[["prompt", "response"]].to_dict("records")
    if fmt == "jsonl":
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    elif fmt == "json":  # the AlpacaEval layout
        items = [{"instruction": r["prompt"], "output": r["response"]} for r in rows]
        path.write_text(json.dumps(items, ensure_ascii=False, indent=1), encoding="utf-8")
    elif fmt == "csv":
        frame[["prompt", "response"]].to_csv(path, index=False)
    else:
        frame[["prompt", "response"]].to_parquet(path, index=False)


def write_small_case(folder: Path, n_prompts: int = 40, parameters: dict | None = None) -> Path:
    """Write a case of ``n_prompts`` demo prompts answered by all four sources into ``folder``.

    Prompts are the ``n_prompts`` with the smallest sha256 of their normalised text (a fixed, unbiased
    choice); each source keeps its real responses. Returns the path of ``case.yaml``.
    """
    frames = {name: _demo_rows(DEMO / "exchanges" / demo) for name, demo, _, _ in SMALL_SOURCES}
    shared = set.intersection(*(set(f["prompt_norm"]) for f in frames.values()))
    chosen = sorted(shared, key=lambda p: hashlib.sha256(p.encode()).hexdigest())[:n_prompts]
    (folder / "exchanges").mkdir(parents=True, exist_ok=True)
    lines = ["case: small-case", "title: small robustness case"]
    roles: dict[str, list[str]] = {"suspect": [], "teacher": [], "reference": []}
    for name, _, role, fmt in SMALL_SOURCES:
        frame = frames[name].set_index("prompt_norm").loc[chosen].reset_index()
        _write(folder / "exchanges" / f"{name}.{fmt}", fmt, frame)
        roles[role].append(f"name: {name}\n    path: exchanges/{name}.{fmt}")
    lines.append("suspect:\n  " + roles["suspect"][0].replace("\n    ", "\n  "))
    lines.append("teachers:\n" + "".join(f"  - {s}\n" for s in roles["teacher"]).rstrip())
    lines.append("references:\n" + "".join(f"  - {s}\n" for s in roles["reference"]).rstrip())
    params = {**SMALL_PARAMETERS, **(parameters or {})}
    lines.append("parameters:\n" + "".join(f"  {k}: {json.dumps(v)}\n" for k, v in params.items()).rstrip())
    case_file = folder / "case.yaml"
    case_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return case_file


@pytest.fixture
def small_case(tmp_path: Path) -> Path:
    """A 4-source, 40-prompt case (JSONL, AlpacaEval JSON, CSV, Parquet) in this test's own folder."""
    return write_small_case(tmp_path / "case")


@pytest.fixture(scope="session")
def make_small_case() -> Callable[..., Path]:
    """:func:`write_small_case` itself, for module-scoped cases and variants (other sizes, parameters)."""
    return write_small_case


def benchmark_candidate() -> Path:
    """Where the benchmark should be: ``$FORENSICS_BENCHMARK_DIR`` when set, else beside the repository."""
    return Path(os.environ.get(BENCHMARK_ENV) or BENCHMARK_DEFAULT)


@pytest.fixture(scope="session")
def benchmark_dir() -> Path:
    """The development benchmark's folder; the test is skipped, saying where it looked, when absent.

    One place decides where the real data live, so no test carries a path of one machine and every
    real-data test runs (or is skipped with the same reason) wherever the repository is checked out.
    """
    folder = benchmark_candidate()
    if not folder.is_dir() or not any(folder.glob("*.json")):
        pytest.skip(f"development benchmark (AlpacaEval *.json files) not found in {folder}; set "
                    f"${BENCHMARK_ENV} to its folder or fetch it with 'forensics benchmark fetch'")
    return folder


@pytest.fixture(scope="session")
def forensics_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An embedding cache folder for the session (pass it as FORENSICS_CACHE), never the user's own."""
    return tmp_path_factory.mktemp("forensics-cache")
