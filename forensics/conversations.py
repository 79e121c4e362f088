"""Multi-turn conversations: the OpenAI ``messages`` layout and the ShareGPT ``conversations`` layout.

Chat logs and distillation sets circulate as whole conversations, not prompt/response pairs. The suite
compares answers to the *same* request, so each assistant turn becomes one exchange whose prompt is what
the user said up to it, with a stable ``prompt_id`` (conversation id + ``:`` + the turn's number). The
same expansion is used to read a trace as a case source (the teacher's answers in it used as they are)
and to replay its requests against another model (``forensics collect``), so the two sides carry the
same ids and join exactly.

- OpenAI: ``{"id": ..., "messages": [{"role": "system"|"user"|"assistant", "content": "..."}]}``;
  ``content`` may be a list of ``{"type": "text", "text": ...}`` parts (other parts are refused: the
  suite compares text).
- ShareGPT: ``{"id": ..., "conversations": [{"from": "human"|"gpt"|"system", "value": "..."}]}``.

The prompt text of a turn is the user's message when the context holds a single user message, so a
one-turn conversation joins with a plain prompt file; otherwise it is the transcript of the context
(``user: ...`` / ``assistant: ...`` paragraphs) in which every earlier assistant message reads
:data:`EARLIER_ANSWER`. The request a turn answers is what the *user* said so far: in a chat log each
model's later turns follow its own earlier answers, so the histories of a suspect's and a teacher's logs of
the same conversation differ, and a prompt that quoted them would be a different prompt in every file and
join nothing. (A log replayed with ``forensics collect`` sends the trace's own history; its prompt text
is the same.) System messages are not part of the prompt text either (they are kept in the ``system``
column) because collectors add their own. A conversation without an id gets one from the hash of its
user messages, so the id does not depend on where it sits in the file, nor on whose answers it holds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from forensics.custody import sha256_text
from forensics.errors import InputError

LAYOUT_KEYS = {"messages": "messages", "conversations": "sharegpt"}
_ROLES = {"user": "user", "human": "user", "assistant": "assistant", "gpt": "assistant", "chatgpt": "assistant",
          "bard": "assistant", "bing": "assistant", "model": "assistant", "system": "system"}
_ID_KEYS = ("id", "conversation_id", "prompt_id")
#: What an earlier assistant message reads in a turn's prompt text (module docstring: why not its text).
EARLIER_ANSWER = "[earlier answer]"


@dataclass(frozen=True)
class Turn:
    """One assistant turn (or a final unanswered user turn): the request that produced it and the answer."""

    prompt_id: str
    conversation_id: str
    turn: int
    prompt: str
    messages: list[dict[str, str]]  # the context sent to a model: system, user, assistant... up to here
    response: str | None            # the answer in the trace; None for a final unanswered user turn

    def as_record(self) -> dict[str, Any]:
        """The exchange the case reader sees (the context itself is represented by ``prompt``)."""
        system = "\n\n".join(m["content"] for m in self.messages if m["role"] == "system")
        return {"prompt_id": self.prompt_id, "prompt": self.prompt, "response": self.response,
                "conversation_id": self.conversation_id, "turn": self.turn, "system": system or None}


def layout_of(obj: dict[str, Any]) -> str | None:
    """``"messages"``, ``"sharegpt"`` or None (a flat exchange): sniffed from the object's keys."""
    if "prompt" in obj or "instruction" in obj:
        return None
    for key, layout in LAYOUT_KEYS.items():
        if key in obj:
            return layout
    return None


def turns(path: Path, line: int, obj: dict[str, Any]) -> list[Turn]:
    """Every assistant turn of one conversation object, plus a final user turn left unanswered."""
    layout = layout_of(obj)
    key = "messages" if layout == "messages" else "conversations"
    messages = _messages(path, line, obj.get(key), key, layout)
    cid = _conversation_id(path, line, obj, messages)
    out: list[Turn] = []
    for index, message in enumerate(messages):
        context = messages[:index]
        if message["role"] == "assistant":
            out.append(_turn(path, line, cid, len(out) + 1, context, message["content"]))
    if messages[-1]["role"] == "user":
        out.append(_turn(path, line, cid, len(out) + 1, messages, None))
    return out


def prompt_text(context: list[dict[str, str]]) -> str:
    """The context as one prompt: the bare user message for a single turn, else a role-tagged transcript of
    what the user said, each earlier answer standing as :data:`EARLIER_ANSWER` (module docstring)."""
    spoken = [m for m in context if m["role"] != "system"]
    if len(spoken) == 1:
        return spoken[0]["content"]
    return "\n\n".join(f"user: {m['content']}" if m["role"] == "user" else f"assistant: {EARLIER_ANSWER}"
                       for m in spoken)


def _turn(path: Path, line: int, cid: str, number: int, context: list[dict[str, str]],
          response: str | None) -> Turn:
    if not any(m["role"] == "user" for m in context):
        raise InputError(f"assistant turn {number} comes before any user message", path=path, line=line,
                         fix="start the conversation with a user message (after an optional system one)")
    return Turn(prompt_id=f"{cid}:{number}", conversation_id=cid, turn=number, prompt=prompt_text(context),
                messages=[dict(m) for m in context], response=response)


def _messages(path: Path, line: int, value: Any, key: str, layout: str | None) -> list[dict[str, str]]:
    role_key, text_key = ("role", "content") if layout == "messages" else ("from", "value")
    if not isinstance(value, list) or not value:
        raise InputError(f"'{key}' must be a non-empty list of messages, got {_kind(value)}", path=path,
                         line=line, fix=f"write '{key}' as a list of {{\"{role_key}\": ..., \"{text_key}\": ...}}")
    out = []
    for number, item in enumerate(value, start=1):
        where = f"message {number} of '{key}'"
        if not isinstance(item, dict):
            raise InputError(f"{where} is {_kind(item)}, not an object", path=path, line=line,
                             fix=f"write each message as {{\"{role_key}\": ..., \"{text_key}\": ...}}")
        raw_role = item.get(role_key)
        role = _ROLES.get(raw_role.strip().lower()) if isinstance(raw_role, str) else None
        if role is None:
            raise InputError(f"{where} has {role_key} {raw_role!r}", path=path, line=line,
                             fix=f"use one of: {', '.join(sorted(set(_ROLES)))}")
        out.append({"role": role, "content": _content(path, line, where, item.get(text_key), text_key)})
    return out


def _content(path: Path, line: int, where: str, value: Any, text_key: str) -> str:
    """Message text; the OpenAI list-of-parts form is joined when every part is text."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and all(
            isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str) for p in value):
        return "".join(p["text"] for p in value)
    raise InputError(f"{where}: '{text_key}' must be text (or a list of text parts), got {_kind(value)}",
                     path=path, line=line, fix="keep text messages only; the suite compares text")


def _conversation_id(path: Path, line: int, obj: dict[str, Any], messages: list[dict[str, str]]) -> str:
    for key in _ID_KEYS:
        value = obj.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).strip():
            raise InputError(f"conversation '{key}' must be non-empty text or an integer, got {_kind(value)}",
                             path=path, line=line, fix="write the conversation id as a string")
        return str(value).strip()
    said = [m["content"] for m in messages if m["role"] == "user"]
    canonical = json.dumps(said, ensure_ascii=False, separators=(",", ":"))
    return "c" + sha256_text(canonical)[:15]


def _kind(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__
