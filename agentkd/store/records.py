"""Teacher steps as retrievable demonstration records."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agentkd.codeact.parsing import render_action
from agentkd.records import Step, Trajectory

CONTEXT_CHARS = 1000
"""Longest context (the observation the teacher acted on) kept in a record."""
WINDOW_ACTION_CHARS = 300
WINDOW_OBSERVATION_CHARS = 300
"""Longest earlier code / observation shown in a demo's short history."""


class StepRecord(BaseModel):
    """One teacher step: found by its goal and context, shown to a student as `demo`."""

    model_config = ConfigDict(extra="forbid")

    id: str
    """`{task_id}:{sample_index}:{step_index}`."""
    task_id: str
    sample_index: int
    step_index: int
    goal: str
    """The task prompt."""
    context: str
    """The state the teacher acted in: the latest observation before this step ("" at step 0)."""
    thought: str
    action: str
    demo: str
    """What a student sees: up to `window` earlier (code, observation) pairs, then this step."""
    metadata: dict[str, Any] = Field(default_factory=dict)


def clip(text: str, limit: int) -> str:
    """`text` cut to `limit` characters (with a marker when cut)."""
    return text if len(text) <= limit else text[:limit].rstrip() + " ..."


def render_demo(thought: str, action: str, history: list[tuple[str, str]]) -> str:
    """The demonstration text: earlier (code, observation) pairs compactly, then `Thought: ...` + code."""
    lines = []
    for code, observation in history:
        lines.append(f"Earlier step:\n```python\n{clip(code, WINDOW_ACTION_CHARS)}\n```")
        lines.append(f"Observation: {clip(observation, WINDOW_OBSERVATION_CHARS) or '(no output)'}")
    if lines:
        lines.append("Next step:")
    lines.append(render_action(thought, action))
    return "\n".join(lines)


def render_tool_demo(action: str, history: list[tuple[str, str]]) -> str:
    """The demonstration text of a tool-call step: earlier (calls, result) pairs compactly, then this step's reply
    (its `<tool_call>` blocks, or its final text)."""
    lines = []
    for earlier, observation in history:
        lines.append(f"Earlier step:\n{clip(earlier, WINDOW_ACTION_CHARS)}")
        lines.append(f"Result: {clip(observation, WINDOW_OBSERVATION_CHARS) or '(no output)'}")
    if lines:
        lines.append("Next step:")
    lines.append(action)
    return "\n".join(lines)


def tool_action(step: Step) -> str | None:
    """A tool-call episode's step as the text a student writes: its `<tool_call>` blocks (with any text before
    them), or its plain reply; None for an empty reply."""
    from agentkd.models.tool_text import render_tool_reply

    text = render_tool_reply(step.output if step.tool_calls else "", step.tool_calls) if step.tool_calls \
        else step.output.strip()
    return text or None


def _scalar_metadata(traj: Trajectory) -> dict[str, Any]:
    """Task metadata with scalar values only (plans / answers stay out of the store), plus provenance."""
    meta: dict[str, Any] = {k: v for k, v in traj.task.metadata.items() if isinstance(v, (str, int, float, bool))}
    meta.update(policy=traj.policy, split=traj.task.split, success=traj.success, score=traj.score)
    return meta


def records_from_trajectory(traj: Trajectory, window: int = 1) -> list[StepRecord]:
    """One record per teacher step that ran code (steps whose output did not parse are skipped); for an episode
    whose actions are tool calls (`agentkd gateway`), one per teacher reply (see `tool_records`)."""
    if window < 0:
        raise ValueError(f"window must be >= 0, got {window}")
    if traj.tools is not None or any(step.tool_calls for step in traj.steps):
        return tool_records(traj, window)
    meta = _scalar_metadata(traj)
    records: list[StepRecord] = []
    for i, step in enumerate(traj.steps):
        if step.role != "teacher" or step.action is None or step.injected is not None:
            continue
        earlier = [s for s in traj.steps[:i] if s.action is not None]
        history = [(s.action or "", s.observation) for s in earlier[-window:]] if window else []
        records.append(_record(traj, i, step.thought, step.action, render_demo(step.thought, step.action, history),
                               meta))
    return records


def _record(traj: Trajectory, i: int, thought: str, action: str, demo: str, meta: dict[str, Any]) -> StepRecord:
    """The record of step `i` of `traj`: its context is the observation it answered; `meta` plus the step's model."""
    step = traj.steps[i]
    return StepRecord(
        id=f"{traj.task.id}:{traj.sample_index}:{step.index}",
        task_id=traj.task.id,
        sample_index=traj.sample_index,
        step_index=step.index,
        goal=traj.task.prompt,
        context=clip(traj.steps[i - 1].observation, CONTEXT_CHARS) if i else "",
        thought=thought,
        action=action,
        demo=demo,
        metadata={**meta, **({"model": step.model} if step.model else {})},
    )


def tool_records(traj: Trajectory, window: int = 1, steps: list[int] | None = None) -> list[StepRecord]:
    """One record per teacher reply of a tool-call episode (or of the replies at indices `steps`): its context is the
    tool results (or user turn) it answered, its action the reply as the student writes it (`tool_action`);
    `metadata["action_kind"]` is `tool_calls` or `text`."""
    meta = _scalar_metadata(traj)
    records: list[StepRecord] = []
    for i, step in enumerate(traj.steps):
        if step.role != "teacher" or (steps is not None and i not in steps):
            continue
        action = tool_action(step)
        if action is None:
            continue
        earlier = [(tool_action(s) or "", s.observation) for s in traj.steps[:i]]
        history = earlier[-window:] if window else []
        records.append(_record(traj, i, step.output if step.tool_calls else "", action,
                               render_tool_demo(action, history),
                               {**meta, "action_kind": "tool_calls" if step.tool_calls else "text"}))
    return records
