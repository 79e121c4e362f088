"""Reading exchange files, joining a case on the prompt, and step 00_case's artifacts."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from forensics.case import Case, load_case
from forensics.custody import RunFolder, sha256_file, sha256_text
from forensics.errors import ForensicsError, InputError, VerificationError
from forensics.exchanges import (
    JOINED_COLUMNS,
    REJECTS,
    AlignedCorpus,
    join_case,
    load_corpus,
    normalise_prompt,
    read_exchanges,
    run_step,
    text_prompt_key,
)

TRICKY = [
    ("q1", "Plain prompt?", "Plain answer."),
    ("q2", 'Commas, "quotes", and\nnew lines', 'Answer with "quotes",\r\ncommas and CRLF'),
    ("q3", "  leading and trailing spaces  ", ""),
    ("q4", "Unicode: naïve café, 日本語, emoji 🧙\u200d♂️, RTL عربي", "Ответ по-русски"),
    ("q5", "Tab\tseparated\tprompt", "line1\nline2\n\nline4 \\ backslash"),
]


def tricky_frame() -> pd.DataFrame:
    return pd.DataFrame({"prompt_id": [r[0] for r in TRICKY], "prompt": [r[1] for r in TRICKY],
                         "response": [r[2] for r in TRICKY], "generator": ["m"] * len(TRICKY)})


def write_format(frame: pd.DataFrame, path: Path) -> Path:
    """Write exchanges the way users' tools do: pandas for tables, json for the AlpacaEval layout."""
    if path.suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True, force_ascii=False)
    elif path.suffix == ".csv":
        frame.to_csv(path, index=False)
    elif path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        records = [{"instruction": p, "output": r, **({"prompt_id": i} if "prompt_id" in frame else {})}
                   for i, p, r in zip(frame.get("prompt_id", frame["prompt"]), frame["prompt"],
                                      frame["response"], strict=True)]
        path.write_text(json.dumps(records, ensure_ascii=False, indent=2), encoding="utf-8")
    return path


def write_case(folder: Path, sources: list[tuple[str, str, str, pd.DataFrame]], params: str = "") -> Case:
    """sources: (name, role, filename, frame); returns the loaded case."""
    (folder / "ex").mkdir(parents=True, exist_ok=True)
    lines = ["case: test-case"]
    by_role: dict[str, list[str]] = {"suspect": [], "teacher": [], "reference": []}
    for name, role, filename, frame in sources:
        write_format(frame, folder / "ex" / filename)
        by_role[role].append(f"{{name: {name}, path: ex/{filename}}}")
    lines += [f"suspect: {by_role['suspect'][0]}", "teachers:"] + [f"  - {t}" for t in by_role["teacher"]]
    lines += ["references:"] + [f"  - {r}" for r in by_role["reference"]]
    (folder / "case.yaml").write_text("\n".join(lines) + "\n" + params, encoding="utf-8")
    return load_case(folder / "case.yaml")


def model_frame(model: str, prompts: list[str], ids: bool = False) -> pd.DataFrame:
    data: dict[str, Any] = {"prompt": prompts, "response": [f"{model} on <{p}>" for p in prompts]}
    if ids:
        data = {"prompt_id": [f"id-{sha256_text(p)[:8]}" for p in prompts], **data}
    return pd.DataFrame(data)


PROMPTS = [f"Prompt number {i}: say something about {i}." for i in range(12)]
FEW = "parameters:\n  min_prompts: 3\n"


# --------------------------------------------------------------------------------------------------
# read_exchanges
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet", ".json"])
def test_every_format_reads_the_same_exchanges(tmp_path: Path, suffix: str) -> None:
    frame = tricky_frame()
    if suffix == ".csv":  # pandas leaves a lone CR unquoted; see test_properties for the general case
        frame["response"] = frame["response"].str.replace("\r\n", "\n")
    result = read_exchanges(write_format(frame, tmp_path / f"x{suffix}"))
    got = result.frame
    assert list(got.columns[:9]) == ["prompt_id", "prompt", "prompt_norm", "response", "response_sha256",
                                     "truncated", "empty", "file", "line"]
    assert got["prompt"].tolist() == frame["prompt"].tolist()
    assert got["response"].tolist() == frame["response"].tolist()
    assert got["prompt_id"].tolist() == frame["prompt_id"].tolist()
    assert got["response_sha256"].tolist() == [sha256_text(r) for r in frame["response"]]
    assert got["empty"].tolist() == [False, False, True, False, False]
    assert result.warning_counts() == {"empty_response": 1}
    if suffix != ".json":
        assert got["generator"].tolist() == ["m"] * len(frame)  # extra columns kept
    assert result.sha256 == sha256_file(tmp_path / f"x{suffix}")


def test_alpaca_layout_keeps_extra_keys(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text(json.dumps([{"instruction": "i", "output": "o", "dataset": "d", "metadata": {"t": 1}}]),
                    encoding="utf-8")
    result = read_exchanges(path)
    assert result.format == "json-alpaca"
    row = result.frame.iloc[0]
    assert (row["prompt"], row["response"], row["dataset"], row["metadata"]) == ("i", "o", "d", {"t": 1})
    assert pd.isna(row["prompt_id"])


def test_line_numbers_point_at_the_record(tmp_path: Path) -> None:
    jsonl = tmp_path / "a.jsonl"
    jsonl.write_text('{"prompt": "a", "response": "x"}\n\n{"prompt": "b", "response": "y"}\n',
                     encoding="utf-8")
    assert read_exchanges(jsonl).frame["line"].tolist() == [1, 3]
    csv_path = tmp_path / "a.csv"
    csv_path.write_text('prompt,response\na,"multi\nline\nanswer"\nb,y\n', encoding="utf-8")
    assert read_exchanges(csv_path).frame["line"].tolist() == [2, 5]
    json_path = tmp_path / "a.json"
    items = [{"instruction": "a", "output": "x"}, {"instruction": "b", "output": "y"}]
    json_path.write_text(json.dumps(items, indent=2), encoding="utf-8")
    assert read_exchanges(json_path).frame["line"].tolist() == [2, 6]  # where each object starts


def test_truncation_keeps_the_hash_of_the_original(tmp_path: Path) -> None:
    long = "abc " * 1000
    frame = pd.DataFrame({"prompt": ["p", "q"], "response": [long, "short"]})
    path = write_format(frame, tmp_path / "t.jsonl")
    result = read_exchanges(path, max_response_chars=100)
    row = result.frame.iloc[0]
    assert row["truncated"] and len(row["response"]) == 100 and long.startswith(row["response"])
    assert row["response_sha256"] == sha256_text(long)
    assert not result.frame.iloc[1]["truncated"]
    warning = result.warnings[0]
    assert (warning.code, warning.count) == ("truncated_response", 1)
    assert warning.examples == ["line 1 (4000 characters)"]


def test_reading_never_modifies_the_file(tmp_path: Path) -> None:
    path = write_format(tricky_frame(), tmp_path / "x.csv")
    before = (sha256_file(path), path.stat().st_mtime_ns)
    read_exchanges(path)
    assert (sha256_file(path), path.stat().st_mtime_ns) == before


def test_normalise_prompt() -> None:
    assert normalise_prompt("  Hello\u00a0  WORLD\n") == "hello world"
    assert normalise_prompt("Ｆｕｌｌｗｉｄｔｈ") == "fullwidth"  # NFKC
    assert normalise_prompt("Stra\u00dfe") == normalise_prompt("STRASSE")  # casefold
    assert normalise_prompt("zero\u200bwidth \u202eRLO") == "zerowidth rlo"
    assert normalise_prompt("T\u0435ll me") != normalise_prompt("Tell me")  # Cyrillic е is not Latin e
    assert text_prompt_key("hello") == sha256_text("hello")[:16]


# --------------------------------------------------------------------------------------------------
# join_case
# --------------------------------------------------------------------------------------------------

def test_join_on_ids_ignores_row_order(tmp_path: Path) -> None:
    rng = random.Random(0)
    sources = []
    formats = (("s", "suspect", "jsonl"), ("t", "teacher", "csv"), ("r", "reference", "parquet"))
    for name, role, fmt in formats:
        frame = model_frame(name, PROMPTS, ids=True).sample(frac=1, random_state=rng.randrange(1000))
        sources.append((name, role, f"{name}.{fmt}", frame))
    joined = join_case(write_case(tmp_path, sources, FEW))
    assert joined.join_on == "prompt_id"
    corpus = joined.corpus()
    assert corpus.prompt_keys == sorted(corpus.prompt_keys) and len(corpus) == len(PROMPTS)
    for i, prompt in enumerate(corpus.prompts):
        for name in corpus.sources:
            assert corpus.responses[name][i] == f"{name} on <{prompt}>"


def test_join_on_text_normalises_but_never_on_row_order(tmp_path: Path) -> None:
    variants = [p.upper() for p in PROMPTS]  # same prompts, shouted
    teacher = model_frame("t", PROMPTS[::-1])
    teacher["prompt"] = ["  " + p.replace(" ", "   ") for p in teacher["prompt"]]  # spaced out
    sources = [("s", "suspect", "s.json", model_frame("s", PROMPTS)), ("t", "teacher", "t.csv", teacher),
               ("r", "reference", "r.jsonl", pd.DataFrame({"prompt": variants,
                                                           "response": [f"r on <{p}>" for p in PROMPTS]}))]
    joined = join_case(write_case(tmp_path, sources, FEW))
    assert joined.join_on == "prompt_text"
    corpus = joined.corpus()
    assert len(corpus) == len(PROMPTS)
    assert set(corpus.prompts) == set(PROMPTS)  # the suspect's own prompt text
    assert corpus.groups is None  # no conversations: every prompt is resampled on its own
    for i, prompt in enumerate(corpus.prompts):
        assert corpus.responses["t"][i] == f"t on <{prompt}>"
        assert corpus.responses["r"][i] == f"r on <{prompt}>"


def test_ids_no_two_files_share_fall_back_to_the_text_with_a_warning(tmp_path: Path) -> None:
    """Each file numbered its own rows (a separate collection): the ids match nothing, the text matches."""
    frames = []
    for name, offset in (("s", 0), ("t", 100), ("r", 200)):
        frame = model_frame(name, PROMPTS if name != "t" else PROMPTS[::-1])
        frame["prompt_id"] = [f"{name}-{offset + i}" for i in range(len(frame))]
        frames.append(frame)
    sources = [("s", "suspect", "s.jsonl", frames[0]), ("t", "teacher", "t.csv", frames[1]),
               ("r", "reference", "r.jsonl", frames[2])]
    joined = join_case(write_case(tmp_path, sources, FEW))
    assert joined.join_on == "prompt_text" and len(joined.corpus()) == len(PROMPTS)
    warning = [w for w in joined.coverage["warnings"] if w["code"] == "ids_unshared"]
    assert len(warning) == 1 and warning[0]["count"] == 3
    assert not [w for w in joined.coverage["warnings"] if w["code"] == "join_on_text"]
    corpus = joined.corpus()
    assert all(corpus.responses["t"][i] == f"t on <{p}>" for i, p in enumerate(corpus.prompts))
    frames[1]["prompt_id"] = [f"s-{i}" if i == 0 else v for i, v in enumerate(frames[1]["prompt_id"])]
    # one id shared by two files: the ids are a common scheme, so they are joined on, and checked: here
    # the teacher's 's-0' is another prompt than the suspect's, which stops the case rather than guessing
    with pytest.raises(InputError, match=r"t.csv:2: prompt_id 's-0' names different prompts"):
        join_case(write_case(tmp_path / "one", sources, FEW))


def test_exchanges_frame_is_long_sorted_and_relative(tmp_path: Path) -> None:
    sources = [("s", "suspect", "s.jsonl", model_frame("s", PROMPTS)),
               ("t", "teacher", "t.jsonl", model_frame("t", PROMPTS[:8])),
               ("r", "reference", "r.jsonl", model_frame("r", PROMPTS))]
    ex = join_case(write_case(tmp_path, sources, FEW)).exchanges
    assert list(ex.columns) == JOINED_COLUMNS
    assert len(ex) == 12 + 8 + 12
    order = {"s": 0, "t": 1, "r": 2}
    keys = list(zip(ex["prompt_key"], ex["source"].map(order), strict=True))
    assert keys == sorted(keys)
    assert set(ex["file"]) == {"ex/s.jsonl", "ex/t.jsonl", "ex/r.jsonl"}
    assert set(ex["role"]) == {"suspect", "teacher", "reference"}


def test_missing_prompts_are_reported_not_dropped_silently(tmp_path: Path) -> None:
    sources = [("s", "suspect", "s.jsonl", model_frame("s", PROMPTS)),
               ("t", "teacher", "t.jsonl", model_frame("t", PROMPTS[:9])),
               ("r", "reference", "r.jsonl", model_frame("r", PROMPTS[2:]))]
    joined = join_case(write_case(tmp_path, sources, FEW))
    cov = joined.coverage
    assert (cov["prompts_total"], cov["prompts_shared"], cov["prompts_analysable"]) == (12, 7, 7)
    key = text_prompt_key
    assert cov["sources"]["t"]["missing_prompt_keys"] == sorted(key(normalise_prompt(p)) for p in PROMPTS[9:])
    assert cov["sources"]["r"]["missing"] == 2 and cov["sources"]["s"]["missing"] == 0
    reasons = {e["prompt_key"]: e["reason"] for e in cov["excluded"]}
    assert reasons[key(normalise_prompt(PROMPTS[0]))] == "missing from r"
    assert reasons[key(normalise_prompt(PROMPTS[11]))] == "missing from t"
    assert len(reasons) == 5
    codes = {(w["source"], w["code"]): w["count"] for w in cov["warnings"]}
    assert codes == {("t", "missing_prompts"): 3, ("r", "missing_prompts"): 2}
    assert len(joined.corpus()) == 7


def test_empty_responses_are_counted_and_excluded_from_the_corpus(tmp_path: Path) -> None:
    teacher = model_frame("t", PROMPTS)
    teacher.loc[[0, 5], "response"] = ["", "  \n "]
    sources = [("s", "suspect", "s.jsonl", model_frame("s", PROMPTS)), ("t", "teacher", "t.csv", teacher),
               ("r", "reference", "r.jsonl", model_frame("r", PROMPTS))]
    joined = join_case(write_case(tmp_path, sources, FEW))
    cov = joined.coverage
    assert cov["sources"]["t"]["empty"] == 2 and cov["prompts_shared"] == 12
    assert cov["prompts_analysable"] == 10
    assert [e["reason"] for e in cov["excluded"]] == ["empty response from t"] * 2
    corpus = joined.corpus()
    assert len(corpus) == 10 and PROMPTS[0] not in corpus.prompts and PROMPTS[5] not in corpus.prompts
    assert all(r.strip() for rs in corpus.responses.values() for r in rs)
    assert int(joined.exchanges["empty"].sum()) == 2  # kept in the exchanges, flagged


def test_lookalike_prompts_are_never_paired(tmp_path: Path) -> None:
    """Near-identical prompts (homoglyph, one character, punctuation) stay distinct."""
    lookalikes = ["Tell me a joke.", "T\u0435ll me a joke.", "Tell me a joke!", "Tell me a jokes."]
    base = PROMPTS[:5]
    sources = [("s", "suspect", "s.jsonl", model_frame("s", [*base, lookalikes[0]])),
               ("t", "teacher", "t.jsonl", model_frame("t", [*base, lookalikes[1]])),
               ("r", "reference", "r.jsonl", model_frame("r", [*base, lookalikes[2], lookalikes[3]]))]
    joined = join_case(write_case(tmp_path, sources, FEW))
    assert joined.coverage["prompts_total"] == 5 + 4 and len(joined.corpus()) == 5
    for _, group in joined.exchanges.groupby("prompt_key"):
        assert group["prompt"].map(normalise_prompt).nunique() == 1


def test_same_file_for_two_sources_is_read_once(tmp_path: Path) -> None:
    sources = [("s", "suspect", "s.jsonl", model_frame("s", PROMPTS)),
               ("t", "teacher", "t.jsonl", model_frame("t", PROMPTS)),
               ("r", "reference", "r.jsonl", model_frame("r", PROMPTS))]
    write_case(tmp_path, sources, FEW)
    text = (tmp_path / "case.yaml").read_text(encoding="utf-8")
    text = text.replace("path: ex/r.jsonl", "path: ex/t.jsonl")
    (tmp_path / "case.yaml").write_text(text, encoding="utf-8")
    case = load_case(tmp_path / "case.yaml")
    assert any(w.startswith("shared_file") for w in case.warnings)
    joined = join_case(case)
    assert joined.reads["t"] is joined.reads["r"]
    assert joined.corpus().responses["t"] == joined.corpus().responses["r"]


def test_minimum_can_be_waived_for_diagnosis(tmp_path: Path) -> None:
    sources = [("s", "suspect", "s.jsonl", model_frame("s", PROMPTS)),
               ("t", "teacher", "t.jsonl", model_frame("t", PROMPTS[:4])),
               ("r", "reference", "r.jsonl", model_frame("r", PROMPTS))]
    case = write_case(tmp_path, sources, "parameters:\n  min_prompts: 5\n")
    with pytest.raises(InputError, match="only 4 prompts are analysable.*t lacks the most"):
        join_case(case)
    assert len(join_case(case, enforce_minimum=False).corpus()) == 4


def test_real_alpaca_eval_files_join_on_805_prompts(tmp_path: Path, benchmark_dir: Path) -> None:
    """Three benchmark files in the AlpacaEval layout; text_davinci_003 has two empty answers."""
    names = {"alpaca-7b": "alpaca-7b.json", "text-davinci-003": "text_davinci_003.json",
             "guanaco-13b": "guanaco-13b.json"}
    (tmp_path / "ex").mkdir()
    for filename in names.values():
        shutil.copyfile(benchmark_dir / filename, tmp_path / "ex" / filename)
    (tmp_path / "case.yaml").write_text(
        "case: alpaca\nsuspect: {name: alpaca-7b, path: ex/alpaca-7b.json}\n"
        "teachers: [{name: text-davinci-003, path: ex/text_davinci_003.json}]\n"
        "references: [{name: guanaco-13b, path: ex/guanaco-13b.json}]\n", encoding="utf-8")
    joined = join_case(load_case(tmp_path / "case.yaml"))
    cov = joined.coverage
    assert (cov["join_on"], cov["prompts_total"], cov["prompts_shared"]) == ("prompt_text", 805, 805)
    assert cov["prompts_analysable"] == 803 and cov["sources"]["text-davinci-003"]["empty"] == 2
    corpus = joined.corpus()
    for name, filename in names.items():
        original = {o["instruction"]: o["output"]
                    for o in json.loads((benchmark_dir / filename).read_text(encoding="utf-8"))}
        assert [original[p] for p in corpus.prompts] == corpus.responses[name]


# --------------------------------------------------------------------------------------------------
# run_step and load_corpus
# --------------------------------------------------------------------------------------------------

def _small_case(tmp_path: Path) -> Case:
    sources = [("s", "suspect", "s.jsonl", model_frame("s", PROMPTS)),
               ("t", "teacher", "t.csv", model_frame("t", PROMPTS[:10])),
               ("r", "reference", "r.parquet", model_frame("r", PROMPTS))]
    return write_case(tmp_path / "case", sources, FEW)


def test_run_step_records_custody_and_artifacts(tmp_path: Path) -> None:
    from forensics import exchanges
    from forensics.notebook import run_step as run_notebook_step

    case = _small_case(tmp_path)
    run = RunFolder(tmp_path / "run")
    run_step(case, run)
    assert run.manifest().data["steps"] == []  # the step itself records no step: notebook.step does, once
    summary = run_notebook_step(exchanges, case, run, "00_case")
    assert summary["prompts_analysable"] == 10 and summary["join_on"] == "prompt_text"
    manifest = run.manifest().data
    assert manifest["case_file"]["sha256"] == sha256_file(case.case_path)
    inputs = {i["name"]: i for i in manifest["inputs"]}
    for src in case.sources:
        assert inputs[src.name]["sha256"] == sha256_file(src.path)
        assert inputs[src.name]["path"] == src.rel_path and inputs[src.name]["abs_path"] == str(src.path)
        assert inputs[src.name]["bytes"] == src.path.stat().st_size
    assert manifest["case"] == case.to_dict() and manifest["parameters"]["min_prompts"] == 3
    assert set(manifest["artifacts"]) == {"artifacts/exchanges.parquet", "artifacts/coverage.json"}
    assert [s["step"] for s in manifest["steps"]] == ["00_case"]
    assert run.read_json("artifacts/coverage.json")["prompts_analysable"] == 10


def test_load_corpus_rebuilds_the_same_corpus(tmp_path: Path) -> None:
    case = _small_case(tmp_path)
    run = RunFolder(tmp_path / "run")
    run_step(case, run)
    corpus = load_corpus(run, case)
    assert isinstance(corpus, AlignedCorpus)
    assert corpus == join_case(case).corpus()
    keys_only = load_corpus(run, case, texts=False)  # what steps 02 and 05 read: no texts held
    assert (keys_only.prompt_keys, keys_only.sources, keys_only.groups) == (corpus.prompt_keys, corpus.sources,
                                                                            corpus.groups)
    assert len(keys_only.prompts) == len(keys_only.responses[corpus.suspect]) == len(corpus)
    with pytest.raises(ForensicsError, match="loaded without its texts"):
        keys_only.responses[corpus.suspect][0]


def test_load_corpus_can_hold_the_texts_of_a_few_prompts(tmp_path: Path) -> None:
    # notebook 05 shows one prompt's answers: it loads those texts only, not a large case's whole corpus
    from forensics.clustering import pairs_html

    case = _small_case(tmp_path)
    run = RunFolder(tmp_path / "run")
    run_step(case, run)
    corpus = load_corpus(run, case)
    wanted = [corpus.prompt_keys[5], corpus.prompt_keys[2]]
    some = load_corpus(run, case, texts=wanted)
    assert some.prompt_keys == corpus.prompt_keys and len(some.prompts) == len(corpus)
    for i in (2, 5):
        assert some.prompts[i] == corpus.prompts[i]
        assert all(some.responses[n][i] == corpus.responses[n][i] for n in corpus.sources)
    with pytest.raises(ForensicsError, match="holds the texts of 2 prompt"):
        some.responses[corpus.suspect][0]
    assert pairs_html(some, wanted[0]) == pairs_html(corpus, wanted[0])
    with pytest.raises(InputError, match="unknown prompt_key 'nope'"):
        load_corpus(run, case, texts=["nope"])
    with pytest.raises(TypeError, match="collection of prompt keys"):
        load_corpus(run, case, texts=wanted[0])


def test_rerunning_the_step_gives_identical_artifacts(tmp_path: Path) -> None:
    case = _small_case(tmp_path)
    first, second = RunFolder(tmp_path / "run1"), RunFolder(tmp_path / "run2")
    run_step(case, first)
    run_step(case, second)
    for rel in ("artifacts/exchanges.parquet", "artifacts/coverage.json"):
        assert sha256_file(first.path(rel)) == sha256_file(second.path(rel))


def test_load_corpus_refuses_changed_parameters_or_missing_step(tmp_path: Path) -> None:
    case = _small_case(tmp_path)
    run = RunFolder(tmp_path / "run")
    with pytest.raises(ForensicsError, match="run step 00_case first"):
        load_corpus(run, case)
    run_step(case, run)
    path = case.case_path
    path.write_text(path.read_text(encoding="utf-8").replace("min_prompts: 3", "min_prompts: 4"),
                    encoding="utf-8")
    with pytest.raises(VerificationError, match="parameters differ"):
        load_corpus(run, load_case(path))


def test_rejects_table_is_well_formed() -> None:
    assert len(REJECTS) >= 30
    for condition, outcome, action in REJECTS:
        assert condition and action
        assert outcome.startswith(("error: ", "warning: ", "accepted"))
