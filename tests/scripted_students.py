"""A labelled stand-in for a cascade's student in tests that need a predictable vote (no model is loaded)."""

from __future__ import annotations

from collections.abc import Callable

from agentkd.records import Usage


class DisagreeingOnSecondSteps:
    """A scripted cascade student: on every step, n copies of the reference solver's action, except that on the second
    step one sample answers something else (so the vote fails and the teacher takes that step). `usage(n)` is what
    each call reports."""

    def __init__(self, env, usage: Callable[[int], Usage]):
        from agentkd.policies.reference import replay_reference

        self.replay, self.env, self.usage = replay_reference, env, usage
        self.client = type("Client", (), {"model": "scripted-student"})()
        self.store = None

    async def sample(self, ctx, n, temperature):
        from agentkd.models.client import Completion

        text = self.replay(self.env, ctx.task, [s.observation for s in ctx.steps], ctx.state)
        texts = [text] * n
        if ctx.step_index == 1:
            texts[-1] = "Thought: guess.\n```python\nfinal_answer('1900')\n```"
        return Completion(texts=texts, usage=self.usage(n), latency_s=0.01, model="scripted-student")
