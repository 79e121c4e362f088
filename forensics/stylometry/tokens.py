"""The tokeniser every stylometric family shares: deterministic, regex only, any script."""

from __future__ import annotations

import re
import unicodedata

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\u02b9": "'"})
#: A word: letters/digits of any script, possibly joined by apostrophes ("don't", "o'clock").
WORD_PATTERN = r"[^\W_]+(?:'[^\W_]+)*"
WORD_RE = re.compile(WORD_PATTERN)
#: A token: a word, or one punctuation/symbol character (so "**" is two tokens, "?!" two).
_TOKEN_RE = re.compile(WORD_PATTERN + r"|[^\w\s]|_")


def normalise(text: str) -> str:
    """NFKC, and typographic apostrophes folded to ``'`` (models differ in which one they emit; the
    choice shows in character n-grams and formatting, not in words)."""
    return unicodedata.normalize("NFKC", text).translate(_APOSTROPHES)


def tokenize(text: str, *, punctuation: bool = False) -> list[str]:
    """Deterministic regex tokenizer: NFKC, lowercase, words kept whole with inner apostrophes.

    ``"Don't panic -- it's 42!"`` gives ``["don't", "panic", "it's", "42"]``; with ``punctuation=True``
    every non-space, non-word character is its own token: ``["don't", "panic", "-", "-", "it's", "42",
    "!"]``. Hyphenated words split ("well-known" -> "well", "-", "known"); a quote that does not join two
    word characters is punctuation. No tagger, no language model: the same text always gives the same
    tokens on every machine.
    """
    lowered = normalise(text).lower()
    return (_TOKEN_RE if punctuation else WORD_RE).findall(lowered)


def is_word(token: str) -> bool:
    """Whether a :func:`tokenize` token is a word (not punctuation): punctuation tokens are single
    non-alphanumeric characters, so this is ``token.isalnum()`` for one character and true beyond."""
    return len(token) > 1 or token.isalnum()
