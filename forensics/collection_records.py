"""The records ``forensics collect`` writes, read back: resume state, screening and the custody summary.

One JSON object per exchange, appended as the answer arrives::

    {"prompt_id": "...", "prompt": "...", "response": "..." | null,
     "collection": {"status": "ok" | "truncated" | "failed", "endpoint": "...", "model": "...",
                    "parameters": {...}, "requested": "...", "answered": "...", "latency_s": 0.0,
                    "attempts": 1, "finish_reason": "stop", "usage": {...}, "served_model": "...",
                    "request_sha256": "...", "response_sha256": "...", "http_status": 200, "error": null}}

A prompt may have several records when an earlier run failed on it and a later run answered it: the
answer then supersedes the failures. This module is shared by the collector (what is already done) and
the case reader (what enters the analysis, and what the report says about how the answers were
obtained), so both read the file the same way.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

RECORD_KEY = "collection"
ANSWERED = ("ok", "truncated")
STATUSES = (*ANSWERED, "failed")


@dataclass
class Screened:
    """A collected file's records as the analysis should see them."""

    kept: list[tuple[int, dict[str, Any]]]   # answered records, in file order
    failed: list[tuple[int, str]]            # (line, prompt_id) of prompts that never got an answer
    cut_off: list[tuple[int, str]]           # (line, prompt_id) of answers stopped at max_tokens
    summary: dict[str, Any]


def collected(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The ``collection`` block of a record written by ``forensics collect``, or None."""
    block = obj.get(RECORD_KEY)
    return block if isinstance(block, dict) and block.get("status") in STATUSES else None


def record_key(obj: dict[str, Any]) -> str:
    """What identifies the prompt of a record: its prompt_id (always written by the collector)."""
    return str(obj.get("prompt_id") if obj.get("prompt_id") is not None else obj.get("prompt"))


def screen(records: list[tuple[int, dict[str, Any]]]) -> Screened | None:
    """Drop failed records (superseded or not), flag truncated ones; None if no record is a collected one."""
    if not any(collected(obj) for _, obj in records):
        return None
    answered = {record_key(obj) for _, obj in records if (collected(obj) or {}).get("status") in ANSWERED}
    kept, failed, cut_off = [], {}, []
    for line, obj in records:
        block = collected(obj)
        status = block.get("status") if block else "ok"  # a hand-added plain row counts as an answer
        if status == "failed":
            if record_key(obj) not in answered:
                failed[record_key(obj)] = (line, record_key(obj))  # the last failure of the prompt
            continue
        if status == "truncated":
            cut_off.append((line, record_key(obj)))
        kept.append((line, obj))
    summary = {**summarise(obj for _, obj in records), "failed": len(failed)}
    return Screened(kept=kept, failed=sorted(failed.values()), cut_off=cut_off, summary=summary)


def summarise(records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Who answered, with which settings, when, and how many prompts failed or were cut off."""
    blocks = [b for b in (collected(obj) for obj in records) if b]
    statuses = [b["status"] for b in blocks]
    times = sorted(t for b in blocks for t in (b.get("requested"), b.get("answered")) if isinstance(t, str))
    usage = [b.get("usage") or {} for b in blocks]
    return {
        "records": len(blocks),
        "answered": sum(s in ANSWERED for s in statuses),
        "truncated": statuses.count("truncated"),
        "failed_attempts": statuses.count("failed"),
        "endpoints": _distinct(b.get("endpoint") for b in blocks),
        "models": _distinct(b.get("model") for b in blocks),
        "served_models": _distinct(b.get("served_model") for b in blocks),
        "parameters": _distinct_dicts(b.get("parameters") for b in blocks),
        "first": times[0] if times else None,
        "last": times[-1] if times else None,
        "prompt_tokens": sum(_int(u.get("prompt_tokens")) for u in usage if isinstance(u, dict)),
        "completion_tokens": sum(_int(u.get("completion_tokens")) for u in usage if isinstance(u, dict)),
    }


def _distinct(values: Iterable[Any]) -> list[str]:
    return sorted({str(v) for v in values if v is not None})


def _distinct_dicts(values: Iterable[Any]) -> list[dict[str, Any]]:
    seen = {json.dumps(v, sort_keys=True, ensure_ascii=False): v for v in values if isinstance(v, dict)}
    return [seen[k] for k in sorted(seen)]


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
