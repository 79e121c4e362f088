"""Conversation layouts read into the expected exchanges: one per assistant turn, stable ids, exact joins."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from forensics.errors import InputError
from forensics.exchanges import read_exchanges

CHAT = [{"role": "system", "content": "You are terse."},
        {"role": "user", "content": [{"type": "text", "text": "What is "}, {"type": "text", "text": "2+2?"}]},
        {"role": "assistant", "content": "4."},
        {"role": "user", "content": "And 3+3?"},
        {"role": "assistant", "content": "6."}]


def test_openai_messages_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "chats.jsonl"
    other = [{"role": "user", "content": "Say hi."}, {"role": "assistant", "content": "Hi."}]
    path.write_text(json.dumps({"id": 17, "messages": CHAT}) + "\n\n"
                    + json.dumps({"messages": other}) + "\n", encoding="utf-8")
    read = read_exchanges(path)
    frame = read.frame
    assert read.format == "jsonl-messages" and read.warning_counts() == {}
    assert list(frame["prompt_id"][:2]) == ["17:1", "17:2"] and list(frame["turn"]) == [1, 2, 1]
    assert list(frame["prompt"]) == ["What is 2+2?", "user: What is 2+2?\n\nassistant: [earlier answer]\n\n"
                                     "user: And 3+3?",
                                     "Say hi."]
    assert list(frame["response"]) == ["4.", "6.", "Hi."]
    assert list(frame["system"][:2]) == ["You are terse.", "You are terse."] and frame["system"].isna()[2]
    assert list(frame["line"]) == [1, 1, 3]
    # a conversation without an id gets one from its content: the same wherever it sits in the file
    anonymous = frame["prompt_id"][2]
    assert anonymous.startswith("c") and anonymous.endswith(":1")
    moved = tmp_path / "moved.jsonl"
    moved.write_text("\n\n\n" + json.dumps({"messages": other}) + "\n", encoding="utf-8")
    assert read_exchanges(moved).frame["prompt_id"][0] == anonymous


def test_two_conversations_opening_alike_are_one_prompt_twice(tmp_path: Path) -> None:
    """As in any exchange file, one prompt has one answer per model: a repeated opening is refused."""
    path = tmp_path / "chats.jsonl"
    path.write_text(json.dumps({"id": "a", "messages": CHAT[1:3]}) + "\n"
                    + json.dumps({"id": "b", "messages": [CHAT[1], {"role": "assistant", "content": "Four."}]})
                    + "\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"chats.jsonl:2: repeats the prompt of line 1 with a different response"):
        read_exchanges(path)


def test_sharegpt_json_list_joins_with_a_plain_prompt_file(tmp_path: Path) -> None:
    """A one-turn conversation's prompt is the bare user message, so it joins a plain file on the text."""
    sharegpt = tmp_path / "trace.json"
    sharegpt.write_text(json.dumps([{"id": "t1", "conversations": [
        {"from": "human", "value": "Name a river."}, {"from": "gpt", "value": "The Nile."}]}]), encoding="utf-8")
    plain = tmp_path / "plain.jsonl"
    plain.write_text(json.dumps({"prompt": "Name a river.", "response": "The Amazon."}) + "\n", encoding="utf-8")
    trace = read_exchanges(sharegpt).frame
    assert read_exchanges(sharegpt).format == "json-sharegpt"
    assert trace["prompt_norm"][0] == read_exchanges(plain).frame["prompt_norm"][0]
    assert (trace["prompt_id"][0], trace["response"][0]) == ("t1:1", "The Nile.")


def _chat_log(path: Path, model: str, layout: str, ids: str) -> None:
    """Three two-turn conversations as one model logged them: its own answers in the history."""
    lines = []
    for n in range(3):
        said = [f"Tell me about river {n}.", "Shorter, please."]
        answers = [f"{model} on river {n}: it is long.", f"{model}: long river."]
        if layout == "messages":
            turns = [{"role": r, "content": c} for pair in zip(said, answers, strict=True)
                     for r, c in zip(("user", "assistant"), pair, strict=True)]
            obj: dict = {"messages": [{"role": "system", "content": f"You are {model}."}, *turns]}
        else:
            turns = [{"from": r, "value": c} for pair in zip(said, answers, strict=True)
                     for r, c in zip(("human", "gpt"), pair, strict=True)]
            obj = {"conversations": turns}
        if ids != "none":
            obj["id"] = f"conv-{n}" if ids == "shared" else f"{model}-log-{n}"
        lines.append(json.dumps(obj))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.mark.parametrize("layout", ["messages", "sharegpt"])
@pytest.mark.parametrize("ids", ["shared", "none", "own"])
def test_chat_logs_with_each_models_own_history_join_turn_by_turn(tmp_path: Path, layout: str, ids: str) -> None:
    """Each model's log of a conversation carries its own earlier answers (and its own system prompt): the
    turns still join exactly, each with that model's answer: on the conversation ids when the logs share
    them (given, or hashed from the user's messages), else on the prompt text (each log's own ids)."""
    from forensics import exchanges
    from forensics.case import load_case
    from forensics.custody import RunFolder
    from forensics.exchanges import join_case

    models = ["suspect", "teacher", "ref-a", "ref-b"]
    for model in models:
        _chat_log(tmp_path / f"{model}.jsonl", model, layout, ids)
    (tmp_path / "case.yaml").write_text(
        "case: chats\nsuspect: {name: suspect, path: suspect.jsonl}\nteachers:\n  - {name: teacher, path: "
        "teacher.jsonl}\nreferences:\n  - {name: ref-a, path: ref-a.jsonl}\n  - {name: ref-b, path: "
        "ref-b.jsonl}\nparameters: {min_prompts: 6}\n", encoding="utf-8")
    case = load_case(tmp_path / "case.yaml")
    joined = join_case(case)
    assert joined.join_on == ("prompt_text" if ids == "own" else "prompt_id")
    assert joined.coverage["prompts_analysable"] == 6
    corpus = joined.corpus()
    second = [i for i, p in enumerate(corpus.prompts) if p.startswith("user: ")]
    assert len(second) == 3 and all(p.endswith("assistant: [earlier answer]\n\nuser: Shorter, please.")
                                    for p in (corpus.prompts[i] for i in second))
    for model in models:
        assert all(corpus.responses[model][i] == f"{model}: long river." for i in second)
        assert not any("river" in p and model in p for p in corpus.prompts)  # no model's history in a prompt
    # the suspect's conversations group the turns (resampled together), through the run folder too
    assert corpus.groups is not None and len(set(corpus.groups)) == 3
    assert all(corpus.groups[i] == corpus.groups[j] for i in second for j in range(len(corpus))
               if corpus.prompts[j] == corpus.prompts[i].split("user: ")[1].split("\n\n")[0])
    run = RunFolder(tmp_path / "run")
    exchanges.run_step(case, run)
    assert exchanges.load_corpus(run, case).groups == corpus.groups
