"""Error-recovery augmentation: a teacher episode with one slipped step, followed by the teacher's recovery.

Students distilled from clean teacher trajectories never see a step go wrong and have to recover. With
`agentkd collect --recovery RATE`, a RATE share of the episodes (chosen by task, reproducibly) gets one injected
slip at one of its first steps: the teacher's own step with one string argument misspelt (a command the world
does not know, a search for a name that does not exist). The slip runs like any step, so its observation is the
failure; the teacher then acts on it and recovers. The step is recorded with `Step.injected` (the teacher's
original code) so that training shows it but never trains on it, the demonstration store skips it, and a
scripted reference solver is replayed without it (its failed command changed nothing).
"""

from __future__ import annotations

import random
import re

from agentkd.codeact.parsing import parse_action, render_action
from agentkd.policies.base import Policy, PolicyContext, PolicyOutput
from agentkd.records import Injection

STRING_LITERAL = re.compile(r"""(?P<quote>["'])(?P<body>[^"'\\\n]{3,})(?P=quote)""")
WORD = re.compile(r"[A-Za-z]{4,}")
FIRST_STEPS = 3
"""The slip goes into one of the episode's first this many steps (the first one that has a string to misspell)."""


def slip(code: str) -> str | None:
    """`code` with the longest word of its first string literal misspelt (a middle letter dropped), or None when
    the step cannot slip: it answers (`final_answer`), or has no string literal with a word of 4+ letters."""
    if "final_answer" in code:
        return None
    for literal in STRING_LITERAL.finditer(code):
        words = list(WORD.finditer(literal["body"]))
        if not words:
            continue
        word = max(words, key=lambda w: len(w.group()))
        cut = literal.start("body") + word.start() + len(word.group()) // 2
        return code[:cut] + code[cut + 1:]
    return None


def slip_step(task_id: str, rate: float, seed: int = 0) -> int | None:
    """The step index at or after which an episode of the task slips once, or None for a clean episode. The same
    (task, rate, seed) always gives the same answer, so a resumed collection injects alike."""
    rng = random.Random(f"{seed}:{task_id}")
    chosen = rng.random() < rate
    first = rng.randrange(FIRST_STEPS)
    return first if chosen else None


class RecoveryInjector:
    """Wraps a teacher: in the chosen episodes, one step is the teacher's step with a misspelt string argument
    (recorded as injected); every other step is the teacher's own."""

    def __init__(self, teacher: Policy, rate: float, seed: int = 0) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"the recovery rate is a share of episodes between 0 and 1, got {rate}")
        self.teacher, self.rate, self.seed = teacher, rate, seed
        self.name = teacher.name
        self.spec = getattr(teacher, "spec", None)

    async def act(self, ctx: PolicyContext) -> PolicyOutput:
        out = await self.teacher.act(ctx)
        at = slip_step(ctx.task.id, self.rate, self.seed)
        if at is None or ctx.step_index < at or any(s.injected is not None for s in ctx.steps):
            return out
        parsed = parse_action(out.text)
        slipped = slip(parsed.code) if parsed.code is not None else None
        if slipped is None:
            return out  # nothing to misspell here: try the next step
        out.text = render_action(parsed.thought, slipped)
        out.injected = Injection(original=parsed.code, kind="misspelt argument")
        return out
