"""``forensics collect`` against a real OpenAI-compatible server process: ``transformers serve``.

The model is a tiny randomly initialised Llama (one layer, a character-level tokenizer with a chat
template) saved by the test, so nothing is downloaded; the server runs as its own process on 127.0.0.1
with ``HF_HUB_OFFLINE=1`` and is stopped when the module's tests end (startup: about 20 s on 2 cores).
Its answers are gibberish; what is tested is the protocol, the records and determinism at temperature 0.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from forensics.cli import main
from forensics.exchanges import read_exchanges

STARTUP_TIMEOUT_S = 120
pytestmark = pytest.mark.slow


def make_tiny_model(folder: Path) -> Path:
    """A 1-layer Llama with a character-level tokenizer and a chat template; seeded, so always the same."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<unk>", "<s>", "</s>", "<pad>"]
    vocab = {token: i for i, token in enumerate(specials + [chr(c) for c in range(32, 127)])}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    tokenizer.decoder = decoders.Fuse()
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>",
                                   unk_token="<unk>", pad_token="<pad>")
    fast.chat_template = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                          "{% if add_generation_prompt %}assistant: {% endif %}")
    fast.save_pretrained(folder)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512,
                         bos_token_id=1, eos_token_id=2, pad_token_id=3)
    LlamaForCausalLM(config).save_pretrained(folder)
    GenerationConfig(bos_token_id=1, eos_token_id=2, pad_token_id=3, do_sample=False).save_pretrained(folder)
    return folder


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(endpoint, model name) of a running ``transformers serve`` process."""
    folder = tmp_path_factory.mktemp("serve")
    model = make_tiny_model(folder / "tiny-llama")
    port = _free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    log = open(folder / "serve.log", "wb")  # noqa: SIM115 (closed below, after the process)
    proc = subprocess.Popen([str(Path(sys.executable).parent / "transformers"), "serve", str(model),
                             "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"],
                            stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"transformers serve exited: {(folder / 'serve.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("transformers serve did not come up in time")
            time.sleep(0.5)
        yield f"http://127.0.0.1:{port}/v1", str(model)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=20)
        log.close()


def test_collect_from_transformers_serve(served: tuple[str, str], tmp_path: Path) -> None:
    endpoint, model = served
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt_id": f"p{i}", "prompt": f"Tell me about {topic}."}) + "\n"
                               for i, topic in enumerate(["rivers", "owls", "tea"])), encoding="utf-8")
    chats = tmp_path / "chats.jsonl"
    chats.write_text(json.dumps({"id": "chat", "messages": [
        {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "Bye"}, {"role": "assistant", "content": "Goodbye"}]}) + "\n", encoding="utf-8")
    args = ["--endpoint", endpoint, "--model", model, "--max-tokens", "8", "--temperature", "0", "--seed", "1",
            "--concurrency", "2", "--quiet"]
    for source, out in ((prompts, "a.jsonl"), (prompts, "b.jsonl"), (chats, "chat.jsonl")):
        assert main(["collect", str(source), "--out", str(tmp_path / out), *args]) == 0
    rows = {name: {r["prompt_id"]: r for r in map(json.loads, (tmp_path / name).read_text().splitlines())}
            for name in ("a.jsonl", "b.jsonl", "chat.jsonl")}
    assert sorted(rows["a.jsonl"]) == ["p0", "p1", "p2"] and sorted(rows["chat.jsonl"]) == ["chat:1", "chat:2"]
    for record in [*rows["a.jsonl"].values(), *rows["chat.jsonl"].values()]:
        block = record["collection"]
        assert block["status"] == ("truncated" if block["finish_reason"] == "length" else "ok")
        assert block["finish_reason"] in ("stop", "length") and block["served_model"] == model
        assert 0 < block["usage"]["completion_tokens"] <= 8 and isinstance(record["response"], str)
    # temperature 0 on a real model: the same request gives the same answer
    assert {k: r["response"] for k, r in rows["a.jsonl"].items()} == \
        {k: r["response"] for k, r in rows["b.jsonl"].items()}
    read = read_exchanges(tmp_path / "chat.jsonl")
    assert read.collection["served_models"] == [model] and len(read.frame) == 2
