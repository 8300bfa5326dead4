"""Teacher steps as retrievable demonstration records."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from agentkd.agent.parsing import render_action
from agentkd.records import Trajectory

CONTEXT_CHARS = 1000
WINDOW_OBSERVATION_CHARS = 300


class StepRecord(BaseModel):
    """One teacher step: searched by its goal and context, shown to students as `demo`."""

    id: str
    task_id: str
    sample_index: int
    step_index: int
    goal: str
    context: str
    """The state the teacher acted in: the latest observation before this step ("" at step 0)."""
    thought: str
    action: str
    demo: str
    """What a student sees: up to `window` earlier (code, observation) pairs, then this step."""
    metadata: dict[str, Any] = Field(default_factory=dict)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def records_from_trajectory(traj: Trajectory, window: int = 1) -> list[StepRecord]:
    """One record per teacher step that ran code (parse failures are skipped)."""
    records = []
    for i, step in enumerate(traj.steps):
        if step.role != "teacher" or step.action is None:
            continue
        earlier = traj.steps[max(0, i - window):i]
        lines = [f"```python\n{s.action}\n```\nObservation: {_clip(s.observation, WINDOW_OBSERVATION_CHARS)}"
                 for s in earlier if s.action]
        demo = "\n".join([*lines, render_action(step.thought, step.action)])
        records.append(StepRecord(
            id=f"{traj.task.id}:{traj.sample_index}:{step.index}",
            task_id=traj.task.id,
            sample_index=traj.sample_index,
            step_index=step.index,
            goal=traj.task.prompt,
            context=_clip(traj.steps[i - 1].observation, CONTEXT_CHARS) if i else "",
            thought=step.thought,
            action=step.action,
            demo=demo,
            metadata={k: v for k, v in traj.task.metadata.items() if isinstance(v, (str, int, float, bool))},
        ))
    return records
