"""Formatting habits: markdown structure and discourse framing, one count per response."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from forensics.stylometry.tokens import WORD_RE, normalise, tokenize


@dataclass(frozen=True)
class FormatFeature:
    """One formatting habit.

    ``unit``: "share" (share of responses showing it), "per_1k_words" (pooled occurrences per 1,000
    words), "per_100_words", or "words_per_sentence". ``pattern`` is a regex applied, multiline, to the
    NFKC-normalised *lowercased* response, or only to a ``region`` of it: "head" (first 300 characters),
    "tail" (last 400), "last_line" (last non-empty line); ``hint`` lists literal substrings of which one
    must occur for the regex to be tried at all (speed only; never changes a result).
    """

    name: str
    unit: str
    why: str
    pattern: str | None = None
    region: str = "all"
    hint: tuple[str, ...] = ()


_OPEN = r"\A[\s#>*_\-\"'`]*"  # a response's first characters, after markup and quotes
_LAST = r"[^\n]*\Z"  # ... and the rest of the final line

#: The formatting habits measured, each with why it can carry a teacher's style. Markdown structure and
#: discourse framing (how an answer opens and closes, how it refuses) are learnt from the training data's
#: answers and are largely independent of the topic (FIELD.md, "Stylometry").
FORMATTING_FEATURES: tuple[FormatFeature, ...] = (
    FormatFeature("markdown_headers", "per_1k_words", "section headings: a layout habit of chat-tuned models",
                  r"^[ \t]{0,3}#{1,6}[ \t]+\S", hint=("#",)),
    FormatFeature("any_header", "share", "whether an answer is sectioned at all",
                  r"^[ \t]{0,3}#{1,6}[ \t]+\S", hint=("#",)),
    FormatFeature("numbered_items", "per_1k_words", "enumerations: list-heavy answering style",
                  r"^[ \t]*\d{1,3}[.)][ \t]+\S"),
    FormatFeature("bullet_dash", "per_1k_words", "'-' bullets: which bullet character is a model habit",
                  r"^[ \t]*-[ \t]+\S", hint=("-",)),
    FormatFeature("bullet_star", "per_1k_words", "'*' bullets", r"^[ \t]*\*[ \t]+\S", hint=("*",)),
    FormatFeature("bullet_plus", "per_1k_words", "'+' bullets", r"^[ \t]*\+[ \t]+\S", hint=("+",)),
    FormatFeature("bullet_unicode", "per_1k_words", "typographic bullets (\u2022 \u25cf ...)",
                  r"^[ \t]*[\u2022\u25cf\u25aa\u25e6\u2023\u2043][ \t]*\S"),
    FormatFeature("list_intro_colon", "per_1k_words", "a line ending in ':' that introduces a list",
                  r":[ \t]*\n(?=[ \t]*(?:\d{1,3}[.)]|[-*+\u2022])[ \t])", hint=(":",)),
    FormatFeature("bold", "per_1k_words", "**bold** emphasis (lead-in labels in list items)",
                  r"(?:\*\*|__)(?=\S)[^*\n]{1,200}?(?<=\S)(?:\*\*|__)", hint=("**", "__")),
    FormatFeature("italics", "per_1k_words", "*italic* emphasis",
                  r"(?<![*\w])\*(?=[^\s*])[^*\n]{1,200}?(?<=[^\s*])\*(?![*\w])"
                  r"|(?<![_\w])_(?=\S)[^_\n]{1,200}?(?<=\S)_(?![_\w])", hint=("*", "_")),
    FormatFeature("code_fences", "share", "fenced code blocks", r"^[ \t]*```", hint=("```",)),
    FormatFeature("code_fence_language", "share", "```python-style language tags", r"^[ \t]*```[ \t]*[a-z]",
                  hint=("```",)),
    FormatFeature("inline_code", "per_1k_words", "`inline code` spans", r"(?<!`)`[^`\n]{1,100}`(?!`)",
                  hint=("`",)),
    FormatFeature("tables", "share", "markdown tables (a header separator row)",
                  r"^[ \t]*\|?[ \t]*:?-{3,}:?[ \t]*(?:\|[ \t]*:?-{3,}:?[ \t]*)+\|?[ \t]*$", hint=("---",)),
    FormatFeature("emoji", "per_1k_words", "emoji and pictographs",
                  "[\U0001f300-\U0001faff\u2600-\u27bf\u2b50\u2b55]"),
    FormatFeature("exclamations", "per_1k_words", "'!': enthusiasm register", r"!(?!=)", hint=("!",)),
    FormatFeature("questions", "per_1k_words", "'?': rhetorical or clarifying questions", r"\?", hint=("?",)),
    FormatFeature("em_dashes", "per_1k_words", "\u2014 and -- as punctuation", r"\u2014|(?<=\w) ?-- ?(?=\w)",
                  hint=("\u2014", "--")),
    FormatFeature("semicolons", "per_1k_words", "';' use", r";", hint=(";",)),
    FormatFeature("parentheses", "per_1k_words", "parenthetical asides", r"\(", hint=("(",)),
    FormatFeature("curly_quotes", "per_1k_words", "typographic double quotes: an output-pipeline habit",
                  "[\u201c\u201d]"),
    FormatFeature("ellipses", "per_1k_words", "'...' or '\u2026'", r"\.\.\.|\u2026", hint=("...", "\u2026")),
    FormatFeature("line_breaks", "per_100_words", "how much an answer is broken into lines"),
    FormatFeature("paragraph_breaks", "per_100_words", "blank-line paragraphing"),
    FormatFeature("mean_sentence_length", "words_per_sentence", "sentence length: a classic style marker"),
    FormatFeature("open_sure", "share", "opens 'Sure' / 'Of course' / 'Absolutely'",
                  _OPEN + r"(?:sure|of course|absolutely)\b", "head"),
    FormatFeature("open_certainly", "share", "opens 'Certainly'", _OPEN + r"certainly\b", "head"),
    FormatFeature("open_yes_no", "share", "opens with a bare 'Yes'/'No'", _OPEN + r"(?:yes|no)\b", "head"),
    FormatFeature("open_here_is", "share", "opens 'Here is/are/'s ...'",
                  _OPEN + r"here(?:'s| is| are)\b", "head"),
    FormatFeature("open_as_ai", "share", "opens 'As an AI ...'",
                  _OPEN + r"as an? (?:ai|artificial intelligence|language model|large language model)\b",
                  "head"),
    FormatFeature("open_thanks_greeting", "share", "opens with thanks, a greeting or praise of the question",
                  _OPEN + r"(?:hi|hello|hey|thank you|thanks|great question|good question|what a)\b", "head"),
    FormatFeature("open_restates_question", "share",
                  "first sentence mostly reuses the prompt's content words (restating the question)"),
    FormatFeature("close_offer_help", "share", "ends offering more help ('Let me know if ...')",
                  r"(?:let me know|feel free to|(?:don't|do not) hesitate|happy to help|glad to help|"
                  r"if you (?:have|need) any (?:other |more |further |additional )?(?:questions|help)|"
                  r"(?:can|may) i help you with)" + _LAST, "tail"),
    FormatFeature("close_hope_helps", "share", "ends 'I hope this helps'",
                  r"\bhope (?:this|that|it|these) (?:helps|was helpful|is helpful|answers|information)"
                  + _LAST, "tail", hint=("hope",)),
    FormatFeature("close_summary", "share", "last paragraph opens 'In conclusion/Overall/In summary'",
                  r"\A[ \t#*>]*(?:in conclusion|overall|in summary|to summarize|to summarise|to sum up|"
                  r"in short|ultimately|all in all)\b", "last_line"),
    FormatFeature("close_well_wishes", "share", "ends 'Good luck' / 'Enjoy' / 'Have fun'",
                  r"\b(?:good luck|best of luck|enjoy|have fun|happy \w+)\b[^\n]{0,60}\Z", "tail"),
    FormatFeature("ends_with_question", "share", "ends on a question to the user", r"\?[\s*_\"')]*\Z", "tail",
                  hint=("?",)),
    FormatFeature("caveat_important", "share", "'it is important/worth noting' caveats",
                  r"\b(?:it is|it's) (?:important|worth|crucial|essential) "
                  r"(?:to (?:note|remember|consider)|noting)\b",
                  hint=("it is ", "it's ")),
    FormatFeature("refusal_sorry", "share", "refusal template 'I'm sorry, but I ...' / 'I apologize, but'",
                  r"\b(?:i'm|i am) (?:very |so |really )?sorry,? but\b|\bi apologi[sz]e,? but\b",
                  hint=("sorry", "apologi")),
    FormatFeature("refusal_cannot", "share", "refusal template 'I cannot/can't help|provide|...'",
                  r"\bi(?: can't| cannot| can not| am unable to|'m unable to| am not able to|'m not able to"
                  r"| won't) "
                  r"(?:help|assist|provide|fulfil|fulfill|comply|answer|do that|create|generate|write|give)",
                  hint=("i can", "i am", "i'm", "i won")),
    FormatFeature("refusal_as_ai", "share", "refusal template 'As an AI (language model), I cannot/don't'",
                  r"\bas an? (?:ai|artificial intelligence)(?: language model| assistant| model)?,? i "
                  r"(?:cannot|can't|don't|do not|am not|have no|'m not)\b", hint=("as a",)),
)

_SENT_SPLIT = re.compile(r"(?<=[.!?])\s+|\n+")
_FIRST_SENT = re.compile(r"[^.!?:\n]+")
_PARA_BREAK = re.compile(r"\n[ \t]*\n")


def _restates(low: str, prompt_words: set[str]) -> bool:
    """First sentence whose content words (>= 4 letters, a tagger-free proxy) are mostly the prompt's."""
    m = _FIRST_SENT.search(low)
    if not m:
        return False
    content = [w for w in WORD_RE.findall(m.group(0))[:40] if len(w) >= 4]
    if len(content) < 3:
        return False
    return sum(w in prompt_words for w in content) / len(content) >= 0.6


def _region(low: str, region: str) -> str:
    if region == "head":
        return low[:300]
    if region == "tail":
        return low[-400:]
    if region == "last_line":
        lines = [ln for ln in low.splitlines() if ln.strip()]
        return lines[-1].strip() if lines else ""
    return low


def formatting_matrix(responses: Sequence[str], prompts: Sequence[str],
                      features: Sequence[FormatFeature] = FORMATTING_FEATURES,
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Per-response numerators and denominators, both (n, F), for the features given.

    share: (1 if shown, 1); per_1k_words and per_100_words: (count, words); words_per_sentence: (words,
    sentences). The unit's multiplier is applied when profiles are pooled (:class:`FeatureBlock`).
    """
    compiled = [re.compile(f.pattern, re.MULTILINE) if f.pattern else None for f in features]
    num = np.zeros((len(responses), len(features)))
    den = np.zeros((len(responses), len(features)))
    for i, (text, prompt) in enumerate(zip(responses, prompts, strict=True)):
        low = normalise(text).strip().lower()
        words = len(WORD_RE.findall(low))
        for j, (feat, rx) in enumerate(zip(features, compiled, strict=True)):
            if feat.name == "line_breaks":
                num[i, j], den[i, j] = low.count("\n"), words
            elif feat.name == "paragraph_breaks":
                num[i, j], den[i, j] = len(_PARA_BREAK.findall(low)), words
            elif feat.name == "mean_sentence_length":
                sents = sum(1 for s in _SENT_SPLIT.split(low) if WORD_RE.search(s))
                num[i, j], den[i, j] = words, sents
            elif feat.name == "open_restates_question":
                num[i, j], den[i, j] = float(_restates(low, set(tokenize(prompt)))), 1.0
            elif rx is None:
                raise ValueError(f"formatting feature {feat.name!r} has no pattern and no rule")
            else:
                part = _region(low, feat.region)
                shown = not feat.hint or any(h in part for h in feat.hint)
                if feat.unit == "share":
                    num[i, j], den[i, j] = float(shown and rx.search(part) is not None), 1.0
                else:
                    num[i, j], den[i, j] = (len(rx.findall(part)) if shown else 0), words
    return num, den


def format_scale(features: Sequence[FormatFeature]) -> np.ndarray:
    unit = {"share": 1.0, "per_1k_words": 1000.0, "per_100_words": 100.0, "words_per_sentence": 1.0}
    return np.array([unit[f.unit] for f in features])
