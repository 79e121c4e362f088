"""``forensics collect``: ask a model behind an OpenAI-compatible chat-completions API to answer prompts.

Every serving stack an investigator meets (vLLM, SGLang, llama.cpp server, Ollama, TGI, ``transformers
serve``, the commercial APIs) speaks ``POST {endpoint}/chat/completions``, so one client collects the
suspect's, the teachers' and the panel's answers. What makes it fit for evidence rather than a script:

- **Custody**: each exchange is appended to a JSON Lines file the moment it arrives, with a record of the
  request (endpoint, model, sampling parameters, timestamps, attempts, finish_reason, token usage,
  latency, sha256 of the request body and of the raw response); see :mod:`forensics.collection_records`.
- **Resumable**: a re-run of the same command skips every prompt already answered (failed ones are
  tried again); a crash or Ctrl-C loses at most the requests in flight. The file must have been written
  with the same endpoint, model and parameters, or the run stops: one file, one set of settings.
- **Nothing lost or duplicated**: 429, 5xx, timeouts, dropped connections and malformed JSON are retried
  with exponential backoff (``Retry-After`` honoured, bounded); a prompt that keeps failing is written as
  a ``failed`` record, not dropped; an answer cut at max_tokens is written with status ``truncated``.
  401/403/404 stop the run at once: every further request would fail the same way.
- **The API key** is read from the environment variable named on the command line, sent only in the
  Authorization header, and scrubbed from anything written (a hostile server could echo it back).
- **Deterministic requests**: the body is canonical JSON, so its sha256 identifies what was asked.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from forensics import collection_records, conversations
from forensics.custody import sha256_bytes
from forensics.errors import SURROGATE, ForensicsError, InputError
from forensics.exchanges import normalise_prompt, read_prompt_records, text_prompt_key

FATAL_STATUS = (401, 403, 404)
RETRY_STATUS = (408, 409, 425, 429)  # and every 5xx
MAX_RETRY_AFTER_S = 60.0
REDACTED = "[REDACTED]"


@dataclass(frozen=True)
class Request:
    """One chat request to make: the exchange's prompt text and the messages actually sent."""

    prompt_id: str
    prompt: str
    messages: list[dict[str, str]]
    line: int
    #: the conversation a turn belongs to (None for a single prompt): written with the answer, so a case
    #: resamples a collected suspect's turns by whole conversations, as it does its traces'
    conversation_id: str | None = None


@dataclass(frozen=True)
class Settings:
    """Where to ask, what to ask for, and how hard to push the server."""

    endpoint: str
    model: str
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    seed: int | None = None
    system: str | None = None
    concurrency: int = 4
    rpm: float | None = None
    timeout_s: float = 120.0
    max_attempts: int = 5
    backoff_s: float = 1.0
    max_backoff_s: float = 60.0

    def parameters(self) -> dict[str, Any]:
        """What shapes the answers (recorded with each one); None means the server's default."""
        return {"temperature": self.temperature, "top_p": self.top_p, "max_tokens": self.max_tokens,
                "seed": self.seed, "system": self.system}

    def url(self) -> str:
        base = self.endpoint.rstrip("/")
        return base if base.endswith("/chat/completions") else base + "/chat/completions"

    def body(self, messages: list[dict[str, str]]) -> bytes:
        """The request body as canonical JSON; sampling parameters only when given."""
        if self.system is not None and not any(m["role"] == "system" for m in messages):
            messages = [{"role": "system", "content": self.system}, *messages]
        sampling = {k: v for k, v in self.parameters().items() if k != "system" and v is not None}
        body = {"model": self.model, "messages": messages, **sampling}
        return json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")


@dataclass
class Tally:
    """What one run did (the file holds the full story)."""

    total: int = 0
    skipped: int = 0
    answered: int = 0
    truncated: int = 0
    failed: int = 0
    tokens: int = 0
    failed_ids: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (f"{self.total} prompts: {self.skipped} already done, {self.answered} answered now "
                f"({self.truncated} cut at max_tokens), {self.failed} failed; {self.tokens} tokens")


def now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="milliseconds")


# --------------------------------------------------------------------------------------------------
# Prompts in
# --------------------------------------------------------------------------------------------------

def load_requests(path: str | Path) -> list[Request]:
    """Prompts (any format the case reader takes; ``response`` optional) or conversations, one request
    per prompt or per assistant turn; ids are the file's, or the hash of the normalised prompt."""
    path = Path(path)
    _, records = read_prompt_records(path)
    out: dict[str, Request] = {}
    by_text: dict[str, Request] = {}
    for line, obj in records:
        if conversations.layout_of(obj):
            found = [Request(t.prompt_id, t.prompt, t.messages, line, t.conversation_id)
                     for t in conversations.turns(path, line, obj)]
        else:
            found = [_plain_request(path, line, obj)]
        for request in found:
            first = out.setdefault(request.prompt_id, request)
            if first.prompt != request.prompt:
                raise InputError(f"prompt_id {request.prompt_id!r} was already used for a different prompt on "
                                 f"line {first.line}", path=path, line=line, fix="give every prompt its own id")
            same = by_text.setdefault(normalise_prompt(request.prompt), request)
            if same.prompt_id != request.prompt_id:  # the case reader would refuse the answers: refuse now
                raise InputError(f"repeats the prompt of line {same.line} under a different prompt_id "
                                 f"({same.prompt_id!r} vs {request.prompt_id!r})", path=path, line=line,
                                 fix="keep one of them: a model gives one answer per prompt in a case")
    return list(out.values())


def _plain_request(path: Path, line: int, obj: dict[str, Any]) -> Request:
    prompt = obj.get("prompt", obj.get("instruction"))
    if not isinstance(prompt, str) or not normalise_prompt(prompt):
        raise InputError(f"no prompt text in this record (got {type(prompt).__name__})", path=path, line=line,
                         fix="give every record a non-empty 'prompt' (or 'instruction', or 'messages')")
    if SURROGATE.search(prompt) or "\x00" in prompt:
        raise InputError("the prompt contains a NUL character or an unpaired surrogate", path=path, line=line,
                         fix="clean the text; it is not valid Unicode text")
    pid = obj.get("prompt_id")
    if pid is not None and (isinstance(pid, bool) or not isinstance(pid, int | str) or not str(pid).strip()):
        raise InputError(f"'prompt_id' must be text or an integer, got {type(pid).__name__}", path=path,
                         line=line, fix="write ids as strings or whole numbers")
    pid = str(pid).strip() if pid is not None else text_prompt_key(normalise_prompt(prompt))
    return Request(pid, prompt, [{"role": "user", "content": prompt}], line)


# --------------------------------------------------------------------------------------------------
# The file out: what is done, and appending
# --------------------------------------------------------------------------------------------------

def answered_ids(out: Path, settings: Settings) -> set[str]:
    """Prompt ids already answered in ``out``; refuses a file written with other settings.

    A last line without its newline is the trace of a crash in mid-write: it is cut off (the request is
    simply made again), since the rest of the file must stay one complete record per line.
    """
    if not out.exists():
        return set()
    raw = out.read_bytes()
    if raw and not raw.endswith(b"\n"):
        keep = raw.rfind(b"\n") + 1
        with open(out, "r+b") as handle:
            handle.truncate(keep)
        print(f"forensics: {out}: removed an incomplete last line (an interrupted write)", file=sys.stderr)
        raw = raw[:keep]
    done = set()
    expected = (settings.endpoint, settings.model, settings.parameters())
    for number, text in enumerate(raw.decode("utf-8", "replace").split("\n"), start=1):
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except ValueError:
            obj = None
        block = collection_records.collected(obj) if isinstance(obj, dict) else None
        if block is None:
            raise InputError("not a record written by forensics collect", path=out, line=number,
                             fix="collect into a new --out file")
        if (block.get("endpoint"), block.get("model"), block.get("parameters")) != expected:
            raise InputError("this file was collected with other settings (endpoint, model or parameters)",
                             path=out, line=number,
                             fix="collect into a new --out file, or repeat the settings recorded there")
        if block["status"] in collection_records.ANSWERED:
            done.add(collection_records.record_key(obj))
    return done


class _Appender:
    """Appends one record per line and syncs it, so a record on disk is a complete one."""

    def __init__(self, path: Path, secret: str | None) -> None:
        self.path = path
        self.fd: int | None = None  # opened on the first record: a run that answers nothing creates nothing
        self.secrets = [s for s in {secret, json.dumps(secret)[1:-1] if secret else None} if s]

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n"
        for secret in self.secrets:
            line = line.replace(secret, REDACTED)
        if self.fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.write(self.fd, line.encode("utf-8"))
        os.fsync(self.fd)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)


# --------------------------------------------------------------------------------------------------
# Talking to the server
# --------------------------------------------------------------------------------------------------

class RateLimiter:
    """Spaces request starts ``60 / rpm`` seconds apart (every attempt counts, retries included)."""

    def __init__(self, rpm: float | None) -> None:
        self.interval = 60.0 / rpm if rpm else 0.0
        self.next = 0.0
        self.lock = asyncio.Lock()

    async def wait(self) -> None:
        if not self.interval:
            return
        async with self.lock:
            start = max(time.monotonic(), self.next)
            self.next = start + self.interval
        await asyncio.sleep(max(0.0, start - time.monotonic()))


class _Malformed(ValueError):
    """The server answered 200 with something that is not a chat completion."""


def parse_completion(content: bytes) -> dict[str, Any]:
    """Text, finish_reason, usage and model of a chat-completion body; :class:`_Malformed` otherwise."""
    try:
        data = json.loads(content)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _Malformed(f"not JSON ({exc})") from None
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise _Malformed("no 'choices' in the response")
    message = choices[0].get("message")
    text = message.get("content") if isinstance(message, dict) else None
    if not isinstance(text, str):
        raise _Malformed("choices[0].message.content is not text")
    finish = choices[0].get("finish_reason")
    usage = data.get("usage")
    return {"response": SURROGATE.sub("\ufffd", text), "finish_reason": finish if isinstance(finish, str) else None,
            "usage": usage if isinstance(usage, dict) else None,
            "served_model": data.get("model") if isinstance(data.get("model"), str) else None}


def _backoff(settings: Settings, attempt: int, retry_after: str | None) -> float:
    delay = min(settings.backoff_s * 2 ** (attempt - 1), settings.max_backoff_s)
    try:
        asked = float(retry_after) if retry_after is not None else None
    except ValueError:
        asked = None
    return min(max(delay, asked), MAX_RETRY_AFTER_S) if asked is not None and asked >= 0 else delay


@dataclass
class _Attempt:
    """What one POST gave: an answer, or an error saying whether trying again can help."""

    answer: dict[str, Any] | None = None
    error: str = ""
    http_status: int | None = None
    retry: bool = True
    retry_after: str | None = None


async def _exchange(client: httpx.AsyncClient, request: Request, settings: Settings,
                    limiter: RateLimiter) -> dict[str, Any]:
    """One prompt to a final record: answered, truncated or failed after every retry."""
    body = settings.body(request.messages)
    block: dict[str, Any] = {"endpoint": settings.endpoint, "model": settings.model,
                             "parameters": settings.parameters(), "requested": now(),
                             "request_sha256": sha256_bytes(body), "source_line": request.line}
    result = _Attempt(error="no attempt made")
    for attempt in range(1, settings.max_attempts + 1):
        await limiter.wait()
        started = time.monotonic()
        result = await _post(client, settings, body)
        if result.answer is not None:
            answer = result.answer
            block.update(status="truncated" if answer["finish_reason"] == "length" else "ok", answered=now(),
                         latency_s=round(time.monotonic() - started, 3), attempts=attempt, http_status=200,
                         error=None, response_sha256=answer["sha256"], finish_reason=answer["finish_reason"],
                         usage=answer["usage"], served_model=answer["served_model"])
            return _record(request, answer["response"], block)
        if not result.retry:
            return _failed(request, block, attempt, result)
        if attempt < settings.max_attempts:
            await asyncio.sleep(_backoff(settings, attempt, result.retry_after))
    return _failed(request, block, settings.max_attempts, result)


async def _post(client: httpx.AsyncClient, settings: Settings, body: bytes) -> _Attempt:
    """One POST, classified: 429/5xx/timeouts/dropped connections/malformed JSON are worth retrying,
    other 4xx are not, and 401/403/404 stop the whole run (every further request would fail alike)."""
    try:
        reply = await client.post(settings.url(), content=body, headers={"content-type": "application/json"})
    except httpx.TimeoutException:
        return _Attempt(error=f"timeout after {settings.timeout_s:g} s")
    except httpx.TransportError as exc:
        return _Attempt(error=f"connection error ({type(exc).__name__})")
    status = reply.status_code
    if status == 200:
        try:
            return _Attempt(answer={**parse_completion(reply.content), "sha256": sha256_bytes(reply.content)},
                            http_status=200)
        except _Malformed as exc:
            return _Attempt(error=f"malformed response: {exc}", http_status=200)
    if status in FATAL_STATUS:
        raise ForensicsError(f"the server refused the request: HTTP {status} {reply.reason_phrase}",
                             path=settings.url(), fix="check --endpoint, --model and the API key variable")
    return _Attempt(error=f"HTTP {status} {reply.reason_phrase}: {reply.text[:200]}", http_status=status,
                    retry=status >= 500 or status in RETRY_STATUS, retry_after=reply.headers.get("retry-after"))


def _record(request: Request, response: str | None, block: dict[str, Any]) -> dict[str, Any]:
    conversation = {} if request.conversation_id is None else {"conversation_id": request.conversation_id}
    return {"prompt_id": request.prompt_id, "prompt": request.prompt, "response": response, **conversation,
            collection_records.RECORD_KEY: block}


def _failed(request: Request, block: dict[str, Any], attempts: int, result: _Attempt) -> dict[str, Any]:
    block.update(status="failed", answered=now(), attempts=attempts, http_status=result.http_status,
                 error=" ".join(result.error.split()), finish_reason=None, usage=None, latency_s=None,
                 response_sha256=None, served_model=None)
    return _record(request, None, block)


# --------------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------------

def collect(prompts: str | Path, out: str | Path, settings: Settings, *, api_key_env: str | None = None,
            quiet: bool = False) -> Tally:
    """Answer every prompt of ``prompts`` not yet answered in ``out``; returns what this run did."""
    prompts, out = Path(prompts), Path(out)
    key = _api_key(api_key_env)
    _check_settings(settings)
    if out.exists() and prompts.exists() and out.resolve() == prompts.resolve():
        raise ForensicsError("--out is the prompts file itself", path=out,
                             fix="write the answers to a new file; input files are never modified")
    requests = load_requests(prompts)
    done = answered_ids(out, settings)
    todo = [r for r in requests if r.prompt_id not in done]
    tally = Tally(total=len(requests), skipped=len(requests) - len(todo))
    if todo:
        asyncio.run(_run(todo, out, settings, key, tally, quiet))
    return tally


def _api_key(name: str | None) -> str | None:
    if name is None:
        return None
    key = os.environ.get(name)
    if not key:
        raise ForensicsError(f"the environment variable {name} named by --api-key-env is not set or empty",
                             fix=f"export {name}=... before running (the key is never written anywhere)")
    return key


def _check_settings(settings: Settings) -> None:
    if not settings.endpoint.startswith(("http://", "https://")):
        raise ForensicsError(f"--endpoint must be an http(s) URL, got {settings.endpoint!r}",
                             fix="e.g. --endpoint http://127.0.0.1:8000/v1")
    if settings.concurrency < 1 or settings.max_attempts < 1 or settings.timeout_s <= 0 or \
            (settings.rpm is not None and settings.rpm <= 0):
        raise ForensicsError("--concurrency, --max-attempts, --timeout and --rpm must be positive",
                             fix="give positive values")


async def _run(todo: list[Request], out: Path, settings: Settings, key: str | None, tally: Tally,
               quiet: bool) -> None:
    from tqdm import tqdm

    queue: asyncio.Queue[Request] = asyncio.Queue()
    for request in todo:
        queue.put_nowait(request)
    limiter = RateLimiter(settings.rpm)
    appender = _Appender(out, key)
    headers = {"authorization": f"Bearer {key}"} if key else {}
    limits = httpx.Limits(max_connections=settings.concurrency, max_keepalive_connections=settings.concurrency)
    bar = tqdm(total=len(todo), unit="req", disable=quiet, file=sys.stderr, dynamic_ncols=True)
    try:
        async with httpx.AsyncClient(timeout=settings.timeout_s, headers=headers, limits=limits) as client:
            async def worker() -> None:
                while not queue.empty():
                    record = await _exchange(client, queue.get_nowait(), settings, limiter)
                    appender.write(record)
                    _count(tally, record)
                    bar.set_postfix(tokens=tally.tokens, failed=tally.failed, cut=tally.truncated, refresh=False)
                    bar.update(1)

            async with asyncio.TaskGroup() as group:
                for _ in range(min(settings.concurrency, len(todo))):
                    group.create_task(worker())
    except BaseExceptionGroup as group_error:  # a fatal HTTP status in one worker: report that, not the group
        raise group_error.exceptions[0] from None
    finally:
        bar.close()
        appender.close()


def _count(tally: Tally, record: dict[str, Any]) -> None:
    block = record[collection_records.RECORD_KEY]
    if block["status"] == "failed":
        tally.failed += 1
        tally.failed_ids.append(record["prompt_id"])
        return
    tally.answered += 1
    tally.truncated += block["status"] == "truncated"
    usage = block.get("usage") or {}
    tally.tokens += usage.get("total_tokens", 0) if isinstance(usage.get("total_tokens"), int) else 0
