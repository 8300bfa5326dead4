"""The text embedded for a goal or a context: proper names masked, so that retrieval matches the
kind of task and state rather than the particular entities (which an embedder knows nothing about)."""

from __future__ import annotations

import re

KEYS = ("goal", "context")
"""The two keys every record is searched by: the task goal and the step's context (latest observation)."""
DEFAULT_EMBEDDER_NAME = "all-MiniLM-L6-v2"

MASK = "X"
_WORD = r"[A-Z][a-z]+"
_RUN = re.compile(rf"\b{_WORD}(?:[ \t]+{_WORD})*\b")
_OPENER = re.compile(r"[.!?:;\n]\s*$")


def mask_names(text: str) -> str:
    """Replace proper names with X: runs of Capitalised words, except one capitalised word opening a sentence.

    "Who was born earlier, Thaeviar Tusurk or Vorend Thaehiaglound?" -> "Who was born earlier, X or X?"
    """

    def replace(match: re.Match[str]) -> str:
        run = match.group(0)
        start = match.start()
        opening = start == 0 or _OPENER.search(text[max(0, start - 8):start]) is not None
        if opening and " " not in run.strip() and "\t" not in run:
            return run
        return MASK

    return _RUN.sub(replace, text)


def key_text(text: str, masked: bool) -> str:
    """What is embedded for `text`: masked names (the default) or the text itself."""
    return mask_names(text) if masked else text
