"""Read what ``forensics run`` prints: the embedding statistics line (texts, from the cache, embedded now),
which the pipeline and robustness tests check to tell a cold run from a cached one."""

from __future__ import annotations

import re

STATS = re.compile(r"^embeddings: (\d+) texts, (\d+) from the cache, (\d+) embedded now$", re.M)


def embedding_stats(stderr: str) -> tuple[int, int, int]:
    """(texts, from the cache, embedded now) from the line ``forensics run`` prints after embedding."""
    found = STATS.search(stderr)
    assert found, f"no embedding statistics line in:\n{stderr[-3000:]}"
    texts, cached, embedded = (int(g) for g in found.groups())
    return texts, cached, embedded
