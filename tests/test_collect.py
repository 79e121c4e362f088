"""``forensics collect`` over real HTTP: faults, resuming after a kill, settings, the API key, case init.

The server is :mod:`tests.openai_fault_server` (a real HTTP server on 127.0.0.1 in a thread); the client
is the one users run (``forensics.cli.main`` in-process, or the command in a subprocess for the kill).
The invariant checked throughout: every prompt ends answered or recorded as failed, never duplicated or
lost.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from forensics.case import load_case
from forensics.cli import main
from forensics.collect import Settings, load_requests
from forensics.errors import CaseFileError
from forensics.exchanges import normalise_prompt, read_exchanges, text_prompt_key

sys.path.insert(0, str(Path(__file__).parent))
from openai_fault_server import FaultServer  # noqa: E402

FAULTS = ["[429x2]", "[500x2]", "[timeout]", "[drop]", "[badjson]", "[nochoices]", "[always500]", "[length]", "[400]"]
FAST = ["--backoff", "0.01", "--timeout", "1.5", "--max-attempts", "4", "--quiet"]


def write_prompts(path: Path, prompts: list[str]) -> Path:
    path.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in prompts), encoding="utf-8")
    return path


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def final_states(path: Path) -> dict[str, list[str]]:
    """prompt_id -> statuses of its records, in file order."""
    out: dict[str, list[str]] = {}
    for rec in records(path):
        out.setdefault(rec["prompt_id"], []).append(rec["collection"]["status"])
    return out


def collect(prompts: Path, out: Path, server: FaultServer, *extra: str) -> int:
    return main(["collect", str(prompts), "--endpoint", server.url, "--model", "test-model", "--out", str(out),
                 *FAST, *extra])


def test_every_fault_ends_answered_or_failed_and_a_rerun_retries_only_failures(tmp_path: Path) -> None:
    prompts = [f"question {i} {fault}" for i, fault in enumerate(FAULTS)] + [f"plain {i}" for i in range(6)]
    src = write_prompts(tmp_path / "prompts.jsonl", prompts)
    out = tmp_path / "answers.jsonl"
    with FaultServer() as server:
        assert collect(src, out, server, "--concurrency", "3", "--temperature", "0", "--seed", "7") == 0
        first_attempts = dict(server.attempts)
        states = final_states(out)
        ids = {text_prompt_key(normalise_prompt(p)): p for p in prompts}
        assert set(states) == set(ids)  # nothing lost
        for pid, statuses in states.items():
            assert len(statuses) == 1, (ids[pid], statuses)  # nothing duplicated
            failing = "[always500]" in ids[pid] or "[400]" in ids[pid]
            expected = "failed" if failing else "truncated" if "[length]" in ids[pid] else "ok"
            assert statuses[0] == expected, ids[pid]
        by_prompt = {r["prompt"]: r for r in records(out)}
        assert by_prompt["question 0 [429x2]"]["collection"]["attempts"] == 3
        assert by_prompt["question 1 [500x2]"]["collection"]["attempts"] == 3
        for fault in ("[timeout]", "[drop]", "[badjson]", "[nochoices]"):
            rec = next(r for p, r in by_prompt.items() if fault in p)
            assert rec["collection"]["attempts"] == 2 and rec["response"].startswith("answer to:"), fault
        failed = next(r for p, r in by_prompt.items() if "[always500]" in p)
        assert failed["response"] is None and failed["collection"]["attempts"] == 4
        assert "HTTP 500" in failed["collection"]["error"]
        refused = next(r for p, r in by_prompt.items() if "[400]" in p)["collection"]
        assert refused["attempts"] == 1 and refused["http_status"] == 400 and "context too long" in refused["error"]
        ok = by_prompt["plain 0"]["collection"]
        assert ok["parameters"] == {"temperature": 0.0, "top_p": None, "max_tokens": None, "seed": 7, "system": None}
        assert ok["usage"]["total_tokens"] > 0 and ok["finish_reason"] == "stop" and ok["latency_s"] >= 0
        assert len(ok["request_sha256"]) == 64 and len(ok["response_sha256"]) == 64
        assert server.requests[0]["seed"] == 7 and server.requests[0]["temperature"] == 0
        assert "top_p" not in server.requests[0]  # unset parameters are the server's default, not sent

        # A re-run asks again only for the failed prompts; they fail again and are recorded again.
        assert collect(src, out, server, "--temperature", "0", "--seed", "7") == 0
        retried = {k: v - first_attempts.get(k, 0) for k, v in server.attempts.items()}
        assert sum(retried.values()) == 4 + 1  # the always-500 prompt 4 times, the 400 one once
    states = final_states(out)
    assert [s for s in states.values() if s.count("failed") == 2] == [["failed", "failed"]] * 2
    assert all(sum(x in ("ok", "truncated") for x in s) <= 1 for s in states.values())

    read = read_exchanges(out)  # the case reader: failed excluded (counted), truncated kept (counted)
    assert read.warning_counts() == {"failed_request": 2, "length_truncated": 1}
    assert len(read.frame) == len(prompts) - 2
    assert read.collection["failed"] == 2 and read.collection["truncated"] == 1
    assert read.collection["models"] == ["test-model"] and read.collection["endpoints"] == [server.url]


def test_killed_collection_resumes_to_exactly_one_answer_per_prompt(tmp_path: Path) -> None:
    prompts = [f"prompt number {i}" for i in range(24)]
    src = write_prompts(tmp_path / "prompts.jsonl", prompts)
    out = tmp_path / "answers.jsonl"
    cmd = [sys.executable, "-m", "forensics.cli", "collect", str(src), "--endpoint", "", "--model", "m",
           "--out", str(out), "--concurrency", "2", "--quiet"]
    with FaultServer(delay_s=0.15) as server:
        cmd[cmd.index("--endpoint") + 1] = server.url
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and (not out.exists() or len(records(out)) < 5):
                time.sleep(0.05)
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.wait(timeout=30)
        done_before = len(records(out))
        assert 5 <= done_before < len(prompts), "the kill came mid-way"
        with open(out, "ab") as handle:  # and a write torn by the crash
            handle.write(b'{"prompt_id": "torn", "prom')
        server.delay_s = 0.0
        assert main(["collect", str(src), "--endpoint", server.url, "--model", "m", "--out", str(out),
                     "--quiet"]) == 0
    states = final_states(out)
    assert sorted(states) == sorted(text_prompt_key(normalise_prompt(p)) for p in prompts)
    assert all(s == ["ok"] for s in states.values())
    assert out.read_bytes().endswith(b"\n")


def test_sigint_stops_cleanly_keeping_written_answers(tmp_path: Path) -> None:
    """Ctrl-C: one line on stderr, exit 130, only complete records on disk."""
    # 200 prompts at 0.2 s each over 4 connections: about 10 s, so even a loaded machine interrupts mid-way
    src = write_prompts(tmp_path / "prompts.jsonl", [f"p {i}" for i in range(200)])
    out = tmp_path / "answers.jsonl"
    with FaultServer(delay_s=0.2) as server:
        # a shell starting the test suite in the background hands its children SIGINT ignored, and Python
        # keeps an ignored SIGINT ignored: restore the default, as a terminal's Ctrl-C would find it
        proc = subprocess.Popen([sys.executable, "-m", "forensics.cli", "collect", str(src), "--endpoint",
                                 server.url, "--model", "m", "--out", str(out), "--quiet"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (not out.exists() or len(records(out)) < 3):
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, f"exit {proc.returncode} after {len(records(out))} of 200 answers"
    assert stderr.strip().splitlines()[-1].startswith("forensics: interrupted; re-run the same command")
    assert all(r["collection"]["status"] == "ok" for r in records(out))


def test_other_settings_into_the_same_file_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = write_prompts(tmp_path / "prompts.jsonl", ["a question", "another question"])
    out = tmp_path / "answers.jsonl"
    with FaultServer() as server:
        assert collect(src, out, server, "--temperature", "0") == 0
        before = out.read_bytes()
        capsys.readouterr()
        assert collect(src, out, server, "--temperature", "1") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"forensics: error: {out}:1: this file was collected with other settings") and "\n" not in err
    assert out.read_bytes() == before


def test_api_key_is_sent_but_never_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    key = "sk-planted-0123456789abcdef"
    monkeypatch.setenv("TEST_API_KEY", key)
    src = write_prompts(tmp_path / "prompts.jsonl", ["hello [echo-key]", "plain"])
    out = tmp_path / "answers.jsonl"
    with FaultServer(require_key=key) as server:
        assert collect(src, out, server, "--api-key-env", "TEST_API_KEY") == 0
        assert {h.get("authorization") for h in server.headers} == {f"Bearer {key}"}
        monkeypatch.setenv("TEST_API_KEY", "sk-wrong")
        capsys.readouterr()
        assert collect(src, tmp_path / "other.jsonl", server, "--api-key-env", "TEST_API_KEY") == 2
    captured = capsys.readouterr()
    assert "HTTP 401" in captured.err and not (tmp_path / "other.jsonl").exists()
    text = out.read_text(encoding="utf-8")
    assert key not in text and key not in captured.out + captured.err
    assert "your header was Bearer [REDACTED]" in text
    monkeypatch.delenv("TEST_API_KEY")
    assert collect(src, out, server, "--api-key-env", "TEST_API_KEY") == 2
    assert "TEST_API_KEY" in capsys.readouterr().err


def test_conversations_are_replayed_turn_by_turn(tmp_path: Path) -> None:
    """A ShareGPT trace: each assistant turn is asked again with the trace's context; ids join exactly."""
    trace = [{"id": "conv-1", "conversations": [
        {"from": "system", "value": "Be brief."}, {"from": "human", "value": "Name a colour."},
        {"from": "gpt", "value": "Blue."}, {"from": "human", "value": "Another?"}, {"from": "gpt", "value": "Red."}]},
        {"id": "conv-2", "conversations": [{"from": "human", "value": "Say hi."}, {"from": "gpt", "value": "Hi."}]}]
    src = tmp_path / "trace.json"
    src.write_text(json.dumps(trace, indent=1), encoding="utf-8")
    out = tmp_path / "answers.jsonl"
    with FaultServer() as server:
        assert collect(src, out, server, "--system", "ignored where the trace has one") == 0
        sent = [r["messages"] for r in server.requests]
    assert [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a colour."},
            {"role": "assistant", "content": "Blue."}, {"role": "user", "content": "Another?"}] in sent
    assert [{"role": "system", "content": "ignored where the trace has one"},
            {"role": "user", "content": "Say hi."}] in sent
    teacher = read_exchanges(src).frame.set_index("prompt_id")
    suspect = read_exchanges(out).frame.set_index("prompt_id")
    assert sorted(teacher.index) == sorted(suspect.index) == ["conv-1:1", "conv-1:2", "conv-2:1"]
    assert (teacher.loc[suspect.index, "prompt"] == suspect["prompt"]).all()
    assert teacher.loc["conv-1:2", "prompt"] == "user: Name a colour.\n\nassistant: [earlier answer]\n\nuser: Another?"
    assert teacher.loc["conv-2:1", "prompt"] == "Say hi." and teacher.loc["conv-1:2", "response"] == "Red."
    # the collected answers keep their conversations, so a collected suspect is resampled by conversation too
    assert suspect["conversation_id"].to_dict() == teacher["conversation_id"].to_dict() == {
        "conv-1:1": "conv-1", "conv-1:2": "conv-1", "conv-2:1": "conv-2"}


def test_prompt_files_in_every_format_and_their_errors(tmp_path: Path) -> None:
    import pandas as pd

    (tmp_path / "p.csv").write_text("prompt_id,prompt\n1,first\n2,second\n", encoding="utf-8")
    pd.DataFrame({"prompt": ["x", "y"]}).to_parquet(tmp_path / "p.parquet")
    (tmp_path / "p.json").write_text(json.dumps([{"instruction": "alpaca style", "output": "o"}]), encoding="utf-8")
    assert [r.prompt_id for r in load_requests(tmp_path / "p.csv")] == ["1", "2"]
    assert [r.prompt for r in load_requests(tmp_path / "p.parquet")] == ["x", "y"]
    assert load_requests(tmp_path / "p.json")[0].messages == [{"role": "user", "content": "alpaca style"}]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "ok"}\n{"prompt_id": 1, "prompt": 5}\n', encoding="utf-8")
    with pytest.raises(Exception, match=r"bad.jsonl:2: no prompt text"):
        load_requests(bad)
    bad.write_text('{"prompt_id": "a", "prompt": "one"}\n{"prompt_id": "a", "prompt": "two"}\n', encoding="utf-8")
    with pytest.raises(Exception, match=r"bad.jsonl:2: prompt_id 'a' was already used"):
        load_requests(bad)
    bad.write_text('{"id": "a", "messages": [{"role": "user", "content": "Hi"}]}\n'
                   '{"id": "b", "messages": [{"role": "user", "content": "hi "}]}\n', encoding="utf-8")
    with pytest.raises(Exception, match=r"bad.jsonl:2: repeats the prompt of line 1 under a different prompt_id"):
        load_requests(bad)
    bad.write_text('{"prompt": "same"}\n{"prompt": "same"}\n', encoding="utf-8")
    assert len(load_requests(bad)) == 1  # the very same request, asked once


def test_settings_body_is_canonical() -> None:
    settings = Settings(endpoint="http://127.0.0.1:1/v1/", model="m", max_tokens=5)
    assert settings.url() == "http://127.0.0.1:1/v1/chat/completions"
    body = settings.body([{"role": "user", "content": "é"}])
    assert body == '{"max_tokens":5,"messages":[{"content":"é","role":"user"}],"model":"m"}'.encode()


def test_case_init_writes_a_case_that_loads(tmp_path: Path) -> None:
    folder = tmp_path / "case"
    folder.mkdir()
    src = write_prompts(folder / "prompts.jsonl", [f"q {i}" for i in range(3)])
    with FaultServer() as server:
        for model in ("suspect-x", "teacher-a", "ref-1", "ref-2"):
            assert main(["collect", str(src), "--endpoint", server.url, "--model", model,
                         "--out", str(folder / f"{model}.jsonl"), "--quiet"]) == 0
    case_file = folder / "case.yaml"
    # one reference is no panel: refused as `forensics run` would refuse it, and nothing is written
    assert main(["case", "init", str(case_file), "--suspect", str(folder / "suspect-x.jsonl"),
                 "--teacher", str(folder / "teacher-a.jsonl"), "--reference", str(folder / "ref-1.jsonl")]) == 2
    assert not case_file.exists()
    assert main(["case", "init", str(case_file), "--suspect", str(folder / "suspect-x.jsonl"),
                 "--teacher", str(folder / "teacher-a.jsonl"), "--reference", f"my ref={folder / 'ref-1.jsonl'}",
                 "--reference", str(folder / "ref-2.jsonl"), "--param", "seed=3"]) == 0
    data = yaml.safe_load(case_file.read_text(encoding="utf-8"))
    assert data["suspect"] == {"name": "suspect-x", "path": "suspect-x.jsonl"}
    assert data["references"] == [{"name": "my ref", "path": "ref-1.jsonl"}, {"name": "ref-2", "path": "ref-2.jsonl"}]
    assert data["case"] == "case" and data["parameters"] == {"seed": 3}
    assert load_case(case_file).teachers[0].name == "teacher-a"
    assert main(["case", "init", str(case_file), "--suspect", str(folder / "suspect-x.jsonl"),
                 "--teacher", str(folder / "teacher-a.jsonl"), "--reference", str(folder / "ref-1.jsonl")]) == 2
    outside = tmp_path / "elsewhere.jsonl"
    outside.write_bytes((folder / "ref-1.jsonl").read_bytes())
    from forensics.case_init import init_case

    with pytest.raises(CaseFileError, match="outside the case folder"):
        init_case(folder / "other.yaml", suspect=str(folder / "suspect-x.jsonl"),
                  teachers=[str(folder / "teacher-a.jsonl")], references=[str(folder / "ref-2.jsonl"), str(outside)])
    assert not (folder / "other.yaml").exists()
    assert Counter(p.suffix for p in folder.iterdir()) == Counter({".jsonl": 5, ".yaml": 1})
    assert os.listdir(folder).count("case.yaml") == 1


def test_malformed_conversation_stops_collect_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "chats.jsonl"
    src.write_text(json.dumps({"id": "a", "messages": [{"role": "user", "content": "hi"}]}) + "\n"
                   + json.dumps({"id": "b", "messages": [{"role": "user", "content": ["not", "parts"]}]}) + "\n",
                   encoding="utf-8")
    out = tmp_path / "answers.jsonl"
    assert main(["collect", str(src), "--endpoint", "http://127.0.0.1:9/v1", "--model", "m", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"forensics: error: {src}:2: message 1 of 'messages': 'content' must be text")
    assert err.count("\n") == 1 and not out.exists()


def test_rate_limit_spaces_request_starts() -> None:
    import asyncio

    from forensics.collect import RateLimiter

    async def starts(rpm: float | None) -> list[float]:
        limiter = RateLimiter(rpm)
        out = []

        async def one() -> None:
            await limiter.wait()
            out.append(time.monotonic())

        await asyncio.gather(*(one() for _ in range(4)))
        return sorted(out)

    spaced = asyncio.run(starts(600))  # one start every 0.1 s
    assert all(b - a >= 0.09 for a, b in zip(spaced, spaced[1:], strict=False))
    free = asyncio.run(starts(None))
    assert free[-1] - free[0] < 0.05
