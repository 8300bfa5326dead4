"""Preference pairs from a run: what the student did against what the teacher did in the same state.

Two sources, each pair with its provenance:
- **deferrals**: at a cascade step where the student's samples disagreed, the teacher's step is chosen and
  every student candidate whose code differs from it is rejected;
- **divergences**: in a failed student episode of a task the teacher solved, the first step where the
  student's code left the teacher's path: the teacher's step is chosen, the student's rejected.
Pairs from tasks of the `test` split are left out unless asked for (training on them would tune on test).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Iterable, Literal

from pydantic import BaseModel, Field

from agentkd.codeact.normalize import normalize_code
from agentkd.codeact.parsing import parse_action, squash
from agentkd.records import Trajectory
from agentkd.run.folder import RunFolder
from agentkd.run.layout import RunLayout


class PreferencePair(BaseModel):
    """One (prompt, chosen, rejected) step pair."""

    id: str
    task_id: str
    split: str
    step_index: int
    prompt: list[dict[str, Any]]
    """The conversation before the step, as the acting policy saw it (system prompt, task, earlier steps)."""
    chosen: str
    rejected: str
    source: Literal["deferral", "divergence"]
    provenance: dict[str, Any] = Field(default_factory=dict)


def _code_key(text: str) -> str | None:
    code = parse_action(text).code
    return normalize_code(code) if code else None


def _pair(traj: Trajectory, index: int, chosen: str, rejected: str, source: str, provenance: dict[str, Any]) -> PreferencePair:
    prompt = [{"role": m["role"], "content": str(m.get("content") or "")} for m in traj.messages[: 2 + 2 * index]]
    digest = hashlib.sha1(json.dumps([traj.task.id, squash(prompt[-1]["content"]), _code_key(chosen) or chosen,
                                      _code_key(rejected) or squash(rejected)]).encode()).hexdigest()[:16]
    return PreferencePair(id=digest, task_id=traj.task.id, split=traj.task.split, step_index=index, prompt=prompt,
                          chosen=chosen, rejected=rejected, source=source, provenance=provenance)  # type: ignore[arg-type]


def deferral_pairs(trajectories: Iterable[Trajectory], origin: str) -> list[PreferencePair]:
    """Pairs at every deferred cascade step: the teacher's step against each disagreeing student candidate (tool-call
    episodes of the cascade gateway too, see `tool_deferral_pairs`)."""
    out = []
    for traj in trajectories:
        if traj.tools is not None or any(step.tool_calls for step in traj.steps):
            out += tool_deferral_pairs(traj, origin)
            continue
        for step in traj.steps:
            if not step.deferred or not step.candidates or step.action is None:
                continue
            teacher = normalize_code(step.action)
            for number, candidate in enumerate(step.candidates):
                if _code_key(candidate) != teacher:
                    out.append(_pair(traj, step.index, step.output, candidate, "deferral", {
                        "eval": origin, "sample_index": traj.sample_index, "candidate": number,
                        "vote": step.vote.model_dump(mode="json") if step.vote else None}))
    return out


def tool_deferral_pairs(traj: Trajectory, origin: str) -> list[PreferencePair]:
    """Pairs at the deferred steps of a tool-call episode (`agentkd gateway --cascade`): the prompt is the
    conversation the step answered (tools in `provenance["tools"]`), the chosen reply the teacher's and the rejected
    one the student's, both written as the student writes replies (`<tool_call>` blocks, or the text)."""
    from agentkd.models.tool_text import render_tool_reply, same_reply

    positions = [int(p) for p in traj.task.metadata.get("reply_positions", [])]
    out = []
    for step in traj.steps:
        if not step.deferred or not step.candidates or step.index >= len(positions) or positions[step.index] < 0:
            continue
        chosen = render_tool_reply(step.output, step.tool_calls)
        prompt = [dict(m) for m in traj.messages[: positions[step.index]]]
        for number, candidate in enumerate(step.candidates):
            if same_reply(candidate, step.output, step.tool_calls):
                continue
            digest = hashlib.sha1(json.dumps([traj.task.id, step.index, chosen, candidate]).encode()).hexdigest()[:16]
            out.append(PreferencePair(
                id=digest, task_id=traj.task.id, split=traj.task.split, step_index=step.index, prompt=prompt,
                chosen=chosen, rejected=candidate, source="deferral",
                provenance={"eval": origin, "sample_index": traj.sample_index, "candidate": number,
                            "vote": step.vote.model_dump(mode="json") if step.vote else None,
                            "tools": traj.tools}))
    return out


def divergence_pairs(failed: Iterable[Trajectory], solved: dict[str, Trajectory], origin: str) -> list[PreferencePair]:
    """Pairs at the first step where a failed student episode left a successful teacher trajectory of its task."""
    out = []
    for traj in failed:
        reference = solved.get(traj.task.id)
        if reference is None or traj.success:
            continue
        for index, (mine, theirs) in enumerate(zip(traj.steps, reference.steps)):
            if mine.role == "teacher":
                break  # a cascade step the teacher took: the student did not act here
            if _code_key(mine.output) != _code_key(theirs.output):
                out.append(_pair(traj, index, theirs.output, mine.output, "divergence", {
                    "eval": origin, "sample_index": traj.sample_index, "teacher_trajectory": reference.policy}))
                break
    return out


def _teacher_solved(trajectories: Iterable[Trajectory]) -> dict[str, Trajectory]:
    return {t.task.id: t for t in trajectories
            if t.success and t.steps and all(s.role == "teacher" and s.injected is None for s in t.steps)}


def build_preferences(run: str | Path, include_test: bool = False) -> tuple[list[PreferencePair], dict[str, int]]:
    """Every deduplicated pair the run's trajectories and evaluations give, and counts by what happened."""
    from agentkd.evaluate.runner import eval_folder

    layout = RunLayout(run)
    names = set(layout.eval_reports())
    if layout.eval_dir.is_dir():  # an evaluation still being recorded (the cascade gateway's) has no report
        names |= {p.stem for p in layout.eval_dir.glob("*.jsonl")}
    evals = {name: list(eval_folder(run, name).iter_trajectories()) for name in sorted(names)}
    solved = _teacher_solved(RunFolder(run).iter_trajectories())
    for trajectories in evals.values():
        solved.update(_teacher_solved(trajectories))
    pairs: list[PreferencePair] = []
    for name, trajectories in evals.items():
        pairs += deferral_pairs(trajectories, name)
        student_runs = [t for t in trajectories if t.steps and any(s.role == "student" for s in t.steps)]
        pairs += divergence_pairs(student_runs, solved, name)
    counts = {"found": len(pairs)}
    unique: dict[str, PreferencePair] = {}
    for pair in pairs:
        unique.setdefault(pair.id, pair)
    counts["duplicates"] = len(pairs) - len(unique)
    kept = [p for p in unique.values() if include_test or p.split != "test"]
    counts["test split left out"] = len(unique) - len(kept)
    counts["kept"] = len(kept)
    return kept, counts


def write_preferences(path: Path, pairs: list[PreferencePair]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        for pair in pairs:
            handle.write(pair.model_dump_json() + "\n")
    tmp.replace(path)
