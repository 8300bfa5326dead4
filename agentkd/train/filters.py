"""Which collected trajectories become SFT data: success threshold, clean format, no duplicates."""

from __future__ import annotations

from typing import Iterable, Literal

from pydantic import BaseModel, ConfigDict, Field

from agentkd.codeact.normalize import normalize_code
from agentkd.records import Step, Trajectory
from agentkd.tool_calls import normalize_tool_calls


class FilterConfig(BaseModel):
    """Rules that decide which trajectories are trained on."""

    model_config = ConfigDict(extra="forbid")

    min_score: float | None = None
    """Grader score a trajectory needs; None = the environment's own success verdict."""
    drop_parse_errors: bool = True
    dedupe: bool | Literal["task", "prompt", "actions"] = True
    """Drop a trajectory whose (normalised) actions repeat an earlier one's for the same task (`task`, what True
    means), for the same prompt text (`prompt`), or for any task (`actions`); False keeps every one."""
    max_tokens: int | None = Field(None, ge=16)
    """Longest example (student prompt + conversation) in student tokens; None = the student's context length.
    A longer trajectory is trained as windows (the task, `window_context` earlier steps, then trained steps)."""
    window_context: int = Field(4, ge=0)
    """Earlier steps shown (not trained on) before a window's trained steps."""


class FilterReport(BaseModel):
    """What was kept, what was set apart as failed, and why the rest was dropped."""

    seen: int = 0
    kept: list[Trajectory] = Field(default_factory=list)
    failed: list[Trajectory] = Field(default_factory=list)
    """Finished but unsuccessful (or step-limited) episodes, kept apart for preference training."""
    dropped: dict[str, int] = Field(default_factory=dict)
    """Reason → count (failed episodes are counted here too, under their reason)."""
    windowed: int = 0
    """Kept trajectories too long for one example, trained as several windows."""
    conversations: int | None = None
    """Set when the data is an `agentkd export --what sft` dataset: conversations kept (filtered before export)."""

    def drop(self, reason: str, count: int = 1) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + count

    def summary(self) -> str:
        """One line that adds up: seen = kept + set apart as failed + dropped, each with its reasons."""
        def listed(items: list[tuple[str, int]]) -> str:
            return f" ({', '.join(f'{n} {why}' for why, n in items)})" if items else ""

        reasons = sorted(self.dropped.items(), key=lambda kv: -kv[1])
        failed = [(why.replace(" (set apart as failed)", ""), n) for why, n in reasons if "set apart" in why]
        other = [(why, n) for why, n in reasons if "set apart" not in why]
        windows = f", {self.windowed} of them as windows" if self.windowed else ""
        if self.conversations is not None:
            return (f"{self.seen} conversations (an sft export, filtered before export) = kept {self.conversations}"
                    f"{windows} + dropped {sum(self.dropped.values())}{listed(reasons)}")
        return (f"{self.seen} trajectories = kept {len(self.kept)}{windows} + set apart {len(self.failed)} failed"
                f"{listed(failed)} + dropped {sum(n for _, n in other)}{listed(other)}")


def _succeeded(traj: Trajectory, min_score: float | None) -> bool:
    return traj.success if min_score is None else traj.score >= min_score


def _dedupe_key(traj: Trajectory, mode: str) -> tuple[str, ...]:
    task = {"task": traj.task.id, "prompt": " ".join(traj.task.prompt.lower().split()), "actions": ""}[mode]
    return (task, *(_action_key(s) for s in traj.steps))


def _action_key(step: Step) -> str:
    """A step's action in canonical form: normalised tool calls or normalised code ("" for neither)."""
    if step.tool_calls:
        return "tools:" + repr(normalize_tool_calls(step.tool_calls))
    return normalize_code(step.action) if step.action else ""


def filter_trajectories(trajectories: Iterable[Trajectory], config: FilterConfig | None = None) -> FilterReport:
    """Apply the quality rules (the token-length cap is applied when examples are tokenised)."""
    config = config or FilterConfig()
    report = FilterReport()
    seen_keys: set[tuple[str, ...]] = set()
    for traj in trajectories:
        report.seen += 1
        if traj.status == "error":
            report.drop("episode errors")
        elif not traj.graded:
            report.drop("ungraded (no outcome yet: send feedback for them)")
        elif traj.status == "step_limit":
            report.drop("step-limit hits (set apart as failed)")
            report.failed.append(traj)
        elif not _succeeded(traj, config.min_score):
            report.drop("below the success threshold (set apart as failed)")
            report.failed.append(traj)
        elif config.drop_parse_errors and traj.parse_errors:
            report.drop("parse failures")
        elif not traj.steps or not traj.messages:
            report.drop("no steps")
        elif config.dedupe and (key := _dedupe_key(traj, "task" if config.dedupe is True else config.dedupe)) in seen_keys:
            report.drop("duplicates")
        else:
            if config.dedupe:
                seen_keys.add(key)
            report.kept.append(traj)
    return report
