"""Canonical form of a CodeAct code block, for deduplication and code agreement."""

from __future__ import annotations

import ast


def normalize_code(code: str) -> str:
    """Canonical form of a code block: comments, blank lines, spacing and quote style removed."""
    try:
        return ast.unparse(ast.parse(code))
    except SyntaxError:
        return " ".join(code.split())
