"""Self-consistency votes over sampled candidate actions."""

from __future__ import annotations

import json
import logging
from collections import Counter
from typing import Any

from agentkd.codeact.normalize import normalize_code
from agentkd.policies.settings import AgreementMode

__all__ = ["AgreementMode", "code_keys_instead", "result_key", "tally", "trial_keys"]


def result_key(stdout: str, error: str | None, final: bool, answer: Any) -> str | None:
    """What a trial run produced, as a vote key: the final answer's value, else stdout; None if it errored."""
    if error:
        return None
    if final:
        return "final:" + json.dumps(answer, sort_keys=True, default=str)
    return "stdout:" + stdout.strip()


def tally(keys: list[str | None], needed: int) -> dict[str, Any]:
    """Group equal keys (None = unusable candidate). Accepted when the largest group has >= needed."""
    counts = Counter(k for k in keys if k is not None)
    winner, size = counts.most_common(1)[0] if counts else (None, 0)
    return {
        "group_sizes": sorted(counts.values(), reverse=True),
        "winner_count": size,
        "needed": needed,
        "accepted": size >= needed,
        "winner_index": keys.index(winner) if winner is not None else None,
        "unusable": sum(k is None for k in keys),
    }


async def trial_keys(ctx: Any, codes: list[str | None]) -> list[str | None]:
    """Run each candidate's code in a forked copy of the episode's worker, with tools bound to a branch of the
    episode's state (`env.branch_state`: nothing leaks into the episode; the branch is torn down after its trial),
    and return its `result_key` (None: unparseable or erroring).

    Raises StateNotBranchableError before running any candidate when the state cannot be branched."""
    sandbox = await ctx.sandbox
    keys: list[str | None] = []
    for code in codes:  # one at a time: a worker serves one request at a time
        if code is None:
            keys.append(None)
            continue
        branch = ctx.env.branch_state(ctx.state) if ctx.state is not None else None
        try:
            handler = ctx.env.tool_handler(branch) if ctx.state is not None else None
            r = await sandbox.atrial(code, tool_handler=handler)
        finally:
            ctx.env.end_state(branch)
        keys.append(result_key(r.stdout, r.error, r.final, r.answer))
    return keys


_FALLBACKS_LOGGED: set[str] = set()


def code_keys_instead(codes: list[str | None], ctx: Any, exc: Exception) -> tuple[list[str | None], str]:
    """Code-agreement keys for candidates whose results cannot be tried (the state cannot be branched), and the
    one-line warning to record on the vote (logged once per environment)."""
    warning = f"result agreement fell back to code agreement: {exc}"
    if ctx.env.name not in _FALLBACKS_LOGGED:
        _FALLBACKS_LOGGED.add(ctx.env.name)
        logging.getLogger("agentkd.policies").warning(warning)
    return [normalize_code(c) if c else None for c in codes], warning
