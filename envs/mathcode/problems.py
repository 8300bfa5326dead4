"""Deterministic task generation: templates interleaved, one seeded stream per split."""

from __future__ import annotations

import random
from typing import Any, Iterable

from .templates import TEMPLATES

MIN_ANSWER = 100
"""Every answer is at least this large, so rounding to the cent stays within the grader's 1e-4 tolerance."""


def make_tasks(split: str, n: int, seed: int, exclude: Iterable[str] = ()) -> list[dict[str, Any]]:
    """`n` distinct problems for `split`, none of whose prompts is in `exclude` (another split's)."""
    rng = random.Random(f"mathcode-{seed}-{split}")
    names = list(TEMPLATES)
    tasks: list[dict[str, Any]] = []
    seen = set(exclude)
    while len(tasks) < n:
        template = TEMPLATES[names[len(tasks) % len(names)]]
        values = template.sample(rng)
        prompt = template.question(values)
        answer = template.answer(values)
        if prompt in seen or answer < MIN_ANSWER:
            continue
        seen.add(prompt)
        tasks.append({
            "id": f"{split}-{len(tasks):05d}",
            "prompt": prompt,
            "answer": float(answer),
            "split": split,
            "metadata": {"template": template.name, "values": values},
        })
    return tasks
