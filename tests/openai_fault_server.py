"""A small OpenAI-compatible chat-completions server that misbehaves on request, for collection tests.

It binds 127.0.0.1 on a free port, answers in a background thread and stops when the ``with`` block ends
(``serve_forever`` polls a shutdown flag; each handler's only wait is bounded by ``SLOW_S``). What it
does to a request is read from markers in the last user message, counted per distinct request body:

- ``[429x2]``, ``[500x2]``: that status the first two times (429 with ``Retry-After: 0``), then an answer;
- ``[timeout]``: the first time, waits ``SLOW_S`` seconds before answering (longer than the client's
  timeout in the tests), then answers at once;
- ``[drop]``: the first time, closes the connection without a response;
- ``[badjson]``: the first time, a 200 whose body is not JSON; ``[nochoices]``: a 200 without choices;
- ``[always500]``: 500 every time (the prompt must end up recorded as failed);
- ``[400]``: 400 every time (not worth retrying: recorded as failed after one attempt);
- ``[length]``: an answer with ``finish_reason: "length"``;
- ``[echo-key]``: the answer repeats the Authorization header (a hostile server leaking the key).

``always_fail`` and ``cut_off`` name whole prompts treated like ``[always500]`` and ``[length]``.
Otherwise the answer is ``answers[prompt]`` when given (replaying real model outputs), else
``"answer to: " + prompt``. ``delay_s`` slows every answer (to kill a collection mid-way).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SLOW_S = 3.0


class FaultServer:
    """``with FaultServer(...) as server:`` then ``server.url`` is the endpoint (``.../v1``)."""

    def __init__(self, answers: dict[str, str] | None = None, delay_s: float = 0.0,
                 require_key: str | None = None, always_fail: frozenset[str] = frozenset(),
                 cut_off: frozenset[str] = frozenset()) -> None:
        self.answers = answers or {}
        self.always_fail, self.cut_off = always_fail, cut_off
        self.delay_s = delay_s
        self.require_key = require_key
        self.attempts: dict[str, int] = {}
        self.requests: list[dict[str, Any]] = []  # every request body, in arrival order
        self.headers: list[dict[str, str]] = []
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> FaultServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)

    def attempt(self, key: str) -> int:
        with self.lock:
            self.attempts[key] = self.attempts.get(key, 0) + 1
            return self.attempts[key]


def _handler(server: FaultServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # keep test output clean
            pass

        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            raw = self.rfile.read(int(self.headers.get("content-length", 0)))
            body = json.loads(raw)
            with server.lock:
                server.requests.append(body)
                server.headers.append(dict(self.headers))
            if server.require_key and self.headers.get("authorization") != f"Bearer {server.require_key}":
                return self._send(401, {"error": {"message": "bad key"}})
            prompt = [m for m in body["messages"] if m["role"] == "user"][-1]["content"]
            n = server.attempt(raw.decode())
            if server.delay_s:
                time.sleep(server.delay_s)
            self._respond(prompt, n, body)

        def _respond(self, prompt: str, n: int, body: dict[str, Any]) -> None:
            if "[always500]" in prompt or prompt in server.always_fail or ("[500x2]" in prompt and n <= 2):
                return self._send(500, {"error": {"message": "internal error"}})
            if "[400]" in prompt:
                return self._send(400, {"error": {"message": "context too long"}})
            if "[429x2]" in prompt and n <= 2:
                return self._send(429, {"error": {"message": "slow down"}}, {"Retry-After": "0"})
            if "[drop]" in prompt and n == 1:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return None
            if "[timeout]" in prompt and n == 1:
                time.sleep(SLOW_S)
            if "[badjson]" in prompt and n == 1:
                return self._send_bytes(200, b'{"choices": [ {"message": ')
            if "[nochoices]" in prompt and n == 1:
                return self._send(200, {"object": "chat.completion"})
            text = server.answers.get(prompt, f"answer to: {prompt}")
            if "[echo-key]" in prompt:
                text += " | your header was " + self.headers.get("authorization", "")
            finish = "length" if "[length]" in prompt or prompt in server.cut_off else "stop"
            return self._send(200, {
                "id": "chatcmpl-test", "object": "chat.completion", "model": body.get("model"),
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                             "finish_reason": finish}],
                "usage": {"prompt_tokens": len(prompt.split()), "completion_tokens": len(text.split()),
                          "total_tokens": len(prompt.split()) + len(text.split())}})

        def _send(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
            self._send_bytes(status, json.dumps(obj).encode(), headers)

        def _send_bytes(self, status: int, data: bytes, headers: dict[str, str] | None = None) -> None:
            try:
                self.send_response(status)
                for name, value in {"content-type": "application/json", **(headers or {})}.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout test)

    return Handler
