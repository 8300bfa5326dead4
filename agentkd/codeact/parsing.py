"""Parse CodeAct model output: a `Thought:` and exactly one fenced Python block."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

_BLOCK = re.compile(r"```[ \t]*(?:python|py|python3)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)
_THOUGHT_PREFIX = re.compile(r"^\s*thought\s*:\s*", re.IGNORECASE)

CODE_FORMAT_HINT = "Reply with a short `Thought:` line and then exactly one block:\n```python\n# your code\n```"


@dataclass(frozen=True)
class ParsedAction:
    """The thought and code of one model output; `error` is a corrective message when unusable."""

    thought: str
    code: str | None
    error: str | None = None


def _bare_final_answer(text: str) -> str | None:
    """The last line of `text` when it is exactly one valid `final_answer(...)` call outside any fence."""
    if "```" in text:
        return None
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines or not lines[-1].startswith("final_answer("):
        return None
    try:
        tree = ast.parse(lines[-1])
    except SyntaxError:
        return None
    if len(tree.body) == 1 and isinstance(tree.body[0], ast.Expr) and isinstance(tree.body[0].value, ast.Call):
        return lines[-1]
    return None


def parse_action(text: str) -> ParsedAction:
    """Split model output into thought and code; never raises."""
    blocks = list(_BLOCK.finditer(text))
    if not blocks:
        bare = _bare_final_answer(text)
        if bare is not None:  # small models often end with a bare `final_answer(...)` line: take it as the code
            return ParsedAction(_THOUGHT_PREFIX.sub("", text[: text.rfind(bare)]).strip(), bare)
        thought = _THOUGHT_PREFIX.sub("", text).strip()
        if "```" in text:
            return ParsedAction(thought, None, f"Your code block was not closed with ```. {CODE_FORMAT_HINT}")
        return ParsedAction(thought, None, f"Your reply had no Python code block. {CODE_FORMAT_HINT}")
    if len(blocks) > 1:
        return ParsedAction(
            _THOUGHT_PREFIX.sub("", text[: blocks[0].start()]).strip(),
            None,
            f"Your reply had {len(blocks)} code blocks; write exactly one per step. {CODE_FORMAT_HINT}",
        )
    block = blocks[0]
    code = block.group(1).strip("\n")
    thought = _THOUGHT_PREFIX.sub("", text[: block.start()]).strip()
    if not code.strip():
        return ParsedAction(thought, None, f"Your code block was empty. {CODE_FORMAT_HINT}")
    return ParsedAction(thought, code)


CLOSING_FENCE = "\n```\n"
"""Stop sequence at the end of a reply's first code block (models that chat on after the code, or write a
second block, stop there)."""


def finish_reply(text: str) -> str:
    """A reply cut back to one step: the closing fence a stop sequence removed is put back, and anything
    after the first complete code block (chatter, a second block) is dropped."""
    if text.count("```") % 2:
        text = text + "\n```"
    first = _BLOCK.search(text)
    return text[: first.end()] if first else text


def squash(text: str) -> str:
    """`text` with runs of whitespace collapsed, for comparing replies."""
    return " ".join(text.split())


def render_action(thought: str, code: str) -> str:
    """The canonical text of a step: what teachers and students are trained to emit."""
    return f"Thought: {thought}\n```python\n{code}\n```"
