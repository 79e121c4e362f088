"""Text distortion (Stamatatos 2017): topic words masked, the sentence template kept."""

from __future__ import annotations

from collections.abc import Sequence

from forensics.stylometry.tokens import is_word

#: confused with a masked word (markdown uses both).
MASK_WORD = "*"
MASK_DIGITS = "#"


def distort(tokens: Sequence[str], keep: set[str] | frozenset[str], mode: str = "single") -> list[str]:
    """Text distortion (Stamatatos 2017) of a punctuation-keeping token list (:func:`tokenize`).

    Words in ``keep`` (the case's most frequent words: function words) stay; any other word becomes
    ``*`` ("single", DV-SA) or one ``*`` per character ("multi", DV-MA); a word of digits only becomes
    ``#`` (or one per digit). Punctuation stays, because its placement is syntax. So
    ``tokenize("The cat sat on 2 mats.", punctuation=True)`` with keep={"the", "on"} distorts to
    ``["the", "*", "*", "on", "#", "*", "."]``: what remains is the sentence's template, not its topic.
    """
    out: list[str] = []
    for t in tokens:
        if t in keep:
            out.append(t)
        elif is_word(t):
            mask = MASK_DIGITS if t.isdigit() else MASK_WORD
            out.append(mask if mode == "single" else mask * len(t))
        elif t in (MASK_WORD, MASK_DIGITS):
            out.append("\\" + t)
        else:
            out.append(t)
    return out
