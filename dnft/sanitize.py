"""Make untrusted on-chain strings safe for prompts, file names and HTML.

Trait keys and values arrive from ``TraitSet(tokenId, key, value)`` events: anyone who can call
the contract chooses them. Each function here is total (never raises on any ``str``) and cuts
its input before any per-character work (a megabyte trait costs no more than a short one).
``for_prompt`` and ``for_filename`` are idempotent; ``for_html`` escapes, so
``html.unescape(for_html(x))`` is the cleaned text. Pure functions; nothing blocks.
"""

from __future__ import annotations

import html
import re
import string
import unicodedata
from collections.abc import Iterable

PROMPT_MAX_CHARS = 200
FILENAME_MAX_CHARS = 64
HTML_MAX_CHARS = 500
# Input is cut to this many times the output cap before normalising: NFKD may expand text, but
# a longer tail can only be cut off again.
_PRE_CAP_FACTOR = 4

# Letters, digits and plain punctuation. Left out on purpose: brackets, braces, ':', '|' and
# '<>' (prompt-weighting syntax such as "(word:1.5)", templates, "<|endoftext|>"-style tokens),
# quotes other than the apostrophe, backslashes and newlines.
PROMPT_PUNCTUATION = " ,.'-!?&/#%+"
PROMPT_ALPHABET = frozenset(string.ascii_letters + string.digits + PROMPT_PUNCTUATION)
FILENAME_ALPHABET = frozenset(string.ascii_letters + string.digits + "._-")
_PROMPT_EDGE = " ,-/&+#%'"

# Phrasings that address a language model instead of describing a picture. Diffusion text
# encoders do not follow instructions, but prompts may later pass through an LLM (captions,
# descriptions) and end up in places people read: they are dropped wherever they appear.
_INSTRUCTION_WORDS = r"(?:instructions?|prompts?|rules?|context|guidelines|directions|messages?)"
INJECTION_PATTERNS: tuple[re.Pattern[str], ...] = tuple(
    re.compile(p, re.IGNORECASE)
    for p in (
        r"\b(?:ignore|disregard|forget|override|bypass|skip)\b(?:\W+\w+){0,4}?\W+"
        + _INSTRUCTION_WORDS
        + r"\b",
        r"\b(?:system|developer|assistant|hidden)\W*(?:prompts?|messages?|mode|instructions?)\b",
        r"\bnew\W+instructions?\b",
        r"\bnegative\W+prompts?\b",
        r"\byou\W+are\W+(?:now|no\W+longer)\b",
        r"\b(?:act|behave)\W+as\b",
        r"\bpretend\W+(?:to\W+be|you)\b",
        r"\bjail\W*break\w*",
        r"\bdo\W+anything\W+now\b",
    )
)
_WHITESPACE = re.compile(r"\s+")
_FILENAME_RUNS = re.compile(r"_{2,}|\.{2,}")
# Room for the "_" prefix of a device name plus its longest stem ("_COM1"), with an extension.
FILENAME_MIN_CHARS = 8
# Device names Windows will not open as files, with or without an extension.
_RESERVED_FILENAMES = frozenset(
    ["CON", "PRN", "AUX", "NUL"]
    + [f"COM{i}" for i in range(1, 10)]
    + [f"LPT{i}" for i in range(1, 10)]
)


def _fold(text: str) -> str:
    """Compatibility-decompose and drop combining marks and invisible format characters.

    "é" becomes "e", full-width letters become ASCII; zero-width spaces, joiners and bidi controls
    (category Cf) vanish outright, so "ig\\u200bnore" cannot hide "ignore" from the filters.
    """
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if unicodedata.category(ch) not in ("Mn", "Cf"))


def _collapse(text: str) -> str:
    return _WHITESPACE.sub(" ", text).strip()


def _cap_words(text: str, max_chars: int) -> str:
    """Cut to ``max_chars``, at the last space in the final quarter when there is one."""
    if len(text) <= max_chars:
        return text
    cut = text[:max_chars]
    if text[max_chars] != " ":
        space = cut.rfind(" ")
        if space >= max_chars * 3 // 4:
            cut = cut[:space]
    return cut.rstrip()


def _strip_phrases(text: str, deny: tuple[re.Pattern[str], ...]) -> str:
    """Remove every injection pattern and denied word until none is left (removal can join
    two fragments into a new match, hence the loop; each pass shrinks the text)."""
    while True:
        cleaned = text
        for pattern in INJECTION_PATTERNS + deny:
            cleaned = pattern.sub(" ", cleaned)
        cleaned = _collapse(cleaned).strip(_PROMPT_EDGE)
        if cleaned == text:
            return cleaned
        text = cleaned


def for_prompt(text: str, max_chars: int = PROMPT_MAX_CHARS, deny: Iterable[str] = ()) -> str:
    """``text`` as a prompt fragment: ASCII letters, digits and ``PROMPT_PUNCTUATION`` only.

    Accents are folded ("café" -> "cafe"); every other character becomes a space; whitespace
    collapses; the result is capped at ``max_chars`` (on a word boundary when one is near) and
    stripped of instruction-like phrases ("ignore previous instructions", "system prompt",
    "you are now"...) and of the whole words in ``deny`` (case-insensitive). May return "".
    Raises ValueError only for ``max_chars < 1``.
    """
    if max_chars < 1:
        raise ValueError("max_chars must be >= 1")
    folded = _fold(text[: max_chars * _PRE_CAP_FACTOR])
    allowed = "".join(ch if ch in PROMPT_ALPHABET else " " for ch in folded)
    capped = _cap_words(_collapse(allowed), max_chars)
    denied = tuple(
        re.compile(r"\b" + re.escape(word) + r"\b", re.IGNORECASE)
        for word in (_collapse(_fold(w)) for w in deny)
        if word
    )
    return _strip_phrases(capped, denied)


def _filename_chars(text: str, max_chars: int) -> str:
    folded = _fold(text[: max_chars * _PRE_CAP_FACTOR])
    name = "".join(ch if ch in FILENAME_ALPHABET else "_" for ch in folded)
    name = _FILENAME_RUNS.sub(lambda run: run.group()[0], name).strip("._-")
    return name[:max_chars].rstrip("._-")


def for_filename(text: str, max_chars: int = FILENAME_MAX_CHARS, fallback: str = "file") -> str:
    """``text`` as one safe path component: ``[A-Za-z0-9._-]``, 1 to ``max_chars`` characters.

    Accents are folded, other characters become ``_``, runs of ``_`` or ``.`` become one, and
    '.', '-', '_' are stripped from both ends: no hidden files, no option-looking names, no
    '..'. A Windows device name (``CON``, ``nul.txt``...) gets a ``_`` prefix, the only case of
    a leading ``_``. An empty result becomes ``fallback`` (sanitised the same way), or ``file``.
    Raises ValueError only for ``max_chars < FILENAME_MIN_CHARS``.
    """
    if max_chars < FILENAME_MIN_CHARS:
        raise ValueError(f"max_chars must be >= {FILENAME_MIN_CHARS}")
    name = _filename_chars(text, max_chars) or _filename_chars(fallback, max_chars) or "file"
    if name.split(".", 1)[0].upper() in _RESERVED_FILENAMES:
        name = ("_" + name)[:max_chars].rstrip("._-")
    return name[:max_chars]


def for_html(text: str, max_chars: int = HTML_MAX_CHARS) -> str:
    """``text`` escaped for HTML text and quoted attribute values.

    Control, format (bidi overrides, zero-width), surrogate, private-use and unassigned
    characters are removed or, for whitespace controls, turned into spaces; the text is capped
    at ``max_chars`` characters before escaping (so no entity is ever cut), then ``& < > " '``
    are escaped. Other scripts and emoji are kept: people read this. Raises ValueError only for
    ``max_chars < 1``.
    """
    if max_chars < 1:
        raise ValueError("max_chars must be >= 1")
    kept = []
    for ch in text[: max_chars * _PRE_CAP_FACTOR]:
        category = unicodedata.category(ch)
        if category == "Cc" or ch.isspace():
            kept.append(" ")
        elif category not in ("Cf", "Cs", "Co", "Cn"):
            kept.append(ch)
    return html.escape(_collapse("".join(kept))[:max_chars].rstrip(), quote=True)
