"""Properties over arbitrary text: every format round-trips it, and the join never pairs different prompts.

Text is any Unicode except surrogates (not encodable as UTF-8) and NUL (refused by design: see REJECTS).
Examples are capped so that the whole file runs in seconds.
"""

from __future__ import annotations

import csv
import json
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from forensics.case import load_case
from forensics.errors import InputError
from forensics.exchanges import is_empty_response, join_case, normalise_prompt, read_exchanges

# database=None: no .hypothesis/ folder in the shared checkout; failures print their reproducing example.
SETTINGS = settings(max_examples=50, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])
TEXT = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=40)
PROMPT = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), min_size=1,
                 max_size=40).filter(lambda t: normalise_prompt(t) != "")
EXCHANGES = st.lists(st.tuples(PROMPT, TEXT), min_size=1, max_size=6,
                     unique_by=lambda pr: normalise_prompt(pr[0]))


def write(path: Path, prompts: list[str], responses: list[str], ids: list[str] | None = None) -> Path:
    """Write as users' tools would: pandas for JSON Lines, CSV and Parquet; json for the JSON layouts."""
    frame = pd.DataFrame({"prompt": prompts, "response": responses})
    if ids is not None:
        frame.insert(0, "prompt_id", ids)
    if path.suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True, force_ascii=False)
    elif path.suffix == ".csv":
        # QUOTE_ALL: pandas' default leaves a lone carriage return unquoted, which no CSV reader
        # can tell from a line break (the reader then reports a field-count error, never guesses).
        frame.to_csv(path, index=False, quoting=csv.QUOTE_ALL)
    elif path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    elif path.name.endswith(".alpaca.json"):
        items = [{"instruction": p, "output": r} for p, r in zip(prompts, responses, strict=True)]
        path.write_text(json.dumps(items, ensure_ascii=False, indent=1), encoding="utf-8")
    else:
        path.write_text(frame.to_json(orient="records", force_ascii=False), encoding="utf-8")
    return path


@pytest.mark.parametrize("name", ["x.jsonl", "x.csv", "x.parquet", "x.alpaca.json", "x.json"])
@SETTINGS
@given(rows=EXCHANGES, with_ids=st.booleans())
def test_text_round_trips_through_every_format(name: str, rows: list[tuple[str, str]],
                                               with_ids: bool) -> None:
    prompts, responses = [p for p, _ in rows], [r for _, r in rows]
    ids = [f"id {i}, \"q\"" for i in range(len(rows))] if with_ids and "alpaca" not in name else None
    with tempfile.TemporaryDirectory() as tmp:
        frame = read_exchanges(write(Path(tmp) / name, prompts, responses, ids),
                               max_response_chars=10_000).frame
    assert frame["prompt"].tolist() == prompts
    assert frame["response"].tolist() == responses
    assert frame["empty"].tolist() == [is_empty_response(r) for r in responses]
    if ids is not None:
        assert frame["prompt_id"].tolist() == ids


# A pool of distinct prompts; each source answers a subset, in its own order and spelling.
POOL = st.lists(PROMPT, min_size=1, max_size=8, unique_by=normalise_prompt)
SPELLINGS = st.sampled_from(["same", "padded", "zero-width", "double-spaced"])


def respell(prompt: str, how: str) -> str:
    """Spellings that keep the normalised prompt: the join must treat them as the same prompt."""
    return {"same": prompt, "padded": f"  {prompt}\n", "zero-width": f"\u200b{prompt}",
            "double-spaced": prompt.replace(" ", "  ")}[how]


@st.composite
def sources(draw: st.DrawFn) -> tuple[list[str], list[list[tuple[int, str]]], bool]:
    pool = draw(POOL)
    # which of the three sources answer each prompt (bit s = source s); "all three" is drawn often
    masks = [draw(st.one_of(st.just(0b111), st.integers(0, 0b111))) for _ in pool]
    views = []
    for s in range(3):
        chosen = draw(st.permutations([i for i, mask in enumerate(masks) if mask >> s & 1]))
        views.append([(i, respell(pool[i], draw(SPELLINGS))) for i in chosen])
    return pool, views, draw(st.booleans())


@SETTINGS
@given(case=sources(), suffixes=st.lists(st.sampled_from([".jsonl", ".csv", ".json"]), min_size=3,
                                         max_size=3))
def test_the_join_never_pairs_different_prompts(case: tuple[list[str], list[list[tuple[int, str]]], bool],
                                                 suffixes: list[str]) -> None:
    pool, views, by_id = case
    names = ["sus", "tea", "ref"]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "ex").mkdir()
        for name, view, suffix in zip(names, views, suffixes, strict=True):
            ids = [f"p{i}" for i, _ in view] if by_id else None
            # the response says which pool prompt it answers, so a wrong pairing is visible
            answers = [f"{name}#{i}" for i, _ in view]
            write(root / "ex" / f"{name}{suffix}", [p for _, p in view], answers, ids)
        (root / "case.yaml").write_text(
            f"case: prop\nsuspect: {{name: sus, path: ex/sus{suffixes[0]}}}\n"
            f"teachers: [{{name: tea, path: ex/tea{suffixes[1]}}}]\n"
            f"references: [{{name: ref, path: ex/ref{suffixes[2]}}}]\nparameters: {{min_prompts: 1}}\n",
            encoding="utf-8")
        shared = set.intersection(*({i for i, _ in view} for view in views))
        event("no prompt shared by all three" if not shared else "some prompts shared")
        if not shared:
            with pytest.raises(InputError):
                join_case(load_case(root / "case.yaml"))
            return
        joined = join_case(load_case(root / "case.yaml"))
    ex = joined.exchanges
    assert len(ex) == sum(len(v) for v in views)  # every answer present, once
    for _, group in ex.groupby("prompt_key"):
        answered = {r.split("#")[1] for r in group["response"]}
        assert len(answered) == 1  # one pool prompt per key
        assert group["prompt"].map(normalise_prompt).nunique() == 1
        assert group["source"].is_unique
    corpus = joined.corpus()
    assert len(corpus) == len(shared)
    for i in range(len(corpus)):
        answered = {corpus.responses[n][i].split("#")[1] for n in names}
        assert len(answered) == 1 and int(answered.pop()) in shared
