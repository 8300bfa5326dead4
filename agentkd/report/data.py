"""Everything the report shows, read from a run folder in one pass (nothing is written, nothing heavy imported).

Trajectories are read once, streaming: each becomes a compact list row (what the viewer filters on),
a detail record (what it shows when the row is opened) and counts for the plots. Eval reports are read
as the JSON `agentkd eval` wrote, so reports of older agentkd versions still render.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from agentkd.errors import RunFolderError
from agentkd.evaluate.prices import Price
from agentkd.records import Step, Trajectory, Usage
from agentkd.rounds.summary import round_rows
from agentkd.run.folder import RunFolder
from agentkd.run.layout import RunLayout, read_json

COLLECTION = "collection"
"""Source name of the run's own (teacher) trajectories; every other source is an evaluation name."""

ROW_COLUMNS = ("source", "policy", "task", "kind", "success", "status", "steps", "teacher_steps", "student_steps",
               "deferred", "cost_usd", "tokens", "score", "seconds", "prompt")
"""The columns of one viewer row (rows are lists, in this order, to keep the page small)."""

MAX_TEXT = 20_000
"""Longest text kept for one field of a step (a pathological observation must not bloat the page)."""
PROMPT_IN_ROW = 160


@dataclass
class SourceStats:
    """Counts over the trajectories of one source (the collection or one evaluation)."""

    episodes: int = 0
    successes: int = 0
    steps: int = 0
    parse_errors: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    cost_usd: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    by_kind: dict[str, list[int]] = field(default_factory=dict)
    """kind -> [successes, episodes]"""
    roles_by_step: dict[int, dict[str, int]] = field(default_factory=dict)
    """step index -> role -> steps taken"""
    voted_steps: int = 0
    deferred_steps: int = 0
    by_role: dict[str, Usage] = field(default_factory=dict)
    """role -> usage summed over the trajectories (to price them)."""

    def add(self, traj: Trajectory) -> None:
        self.episodes += 1
        for role, usage in traj.usage_by_role().items():
            self.by_role[role] = self.by_role.get(role, Usage()) + usage
        self.successes += bool(traj.success)
        self.steps += len(traj.steps)
        self.parse_errors += traj.parse_errors
        self.statuses[traj.status] = self.statuses.get(traj.status, 0) + 1
        self.cost_usd += traj.usage.cost_usd
        self.prompt_tokens += traj.usage.prompt_tokens
        self.completion_tokens += traj.usage.completion_tokens
        self.seconds += traj.duration_s
        kind = task_kind(traj)
        if kind is not None:
            counts = self.by_kind.setdefault(kind, [0, 0])
            counts[0] += bool(traj.success)
            counts[1] += 1
        for step in traj.steps:
            roles = self.roles_by_step.setdefault(step.index, {})
            roles[step.role] = roles.get(step.role, 0) + 1
            if step.cascaded:
                self.voted_steps += 1
                self.deferred_steps += step.deferred

    @property
    def success_rate(self) -> float:
        return self.successes / self.episodes if self.episodes else 0.0


@dataclass
class Evaluation:
    """One `agentkd eval` result: its report (None while it has not finished), settings and trajectory counts."""

    name: str
    report: dict[str, Any] | None
    settings: dict[str, Any] | None
    stats: SourceStats

    @property
    def is_cascade(self) -> bool:
        if self.report is not None and self.report.get("deferral_rate") is not None:
            return True
        return self.stats.voted_steps > 0 and self.policy_kind() == "cascade"

    def policy_kind(self) -> str | None:
        spec = (self.report or {}).get("details", {}).get("policy_spec") or \
            ((self.settings or {}).get("identity", {}).get("policy"))
        return spec.get("kind") if isinstance(spec, dict) else None


@dataclass
class ReportData:
    """What `agentkd report` renders."""

    run: Path
    config: dict[str, Any]
    collection: SourceStats
    evaluations: list[Evaluation]
    rows: list[list[Any]]
    details: list[dict[str, Any]]
    student_config: dict[str, Any] | None = None
    student_data: dict[str, Any] | None = None
    train_log: list[dict[str, Any]] = field(default_factory=list)
    failed_episodes: int = 0
    preference_pairs: int = 0
    dpo_log: list[dict[str, Any]] = field(default_factory=list)
    """RUN/student-dpo/train_log.jsonl (`agentkd train --stage dpo`)."""
    has_index: bool = False
    has_student: bool = False
    rounds: list[dict[str, Any]] = field(default_factory=list)
    """One row per improvement round (`agentkd improve`; round 0 = this run), see agentkd.rounds.round_rows."""

    @property
    def prices(self) -> dict[str, Price]:
        """role -> the price the evaluations recorded for it (the teacher's evaluation first), so that the collection
        is priced the same way; empty when no evaluation recorded prices."""
        out: dict[str, Price] = {}
        for e in self.evaluations:
            for role, price in ((e.report or {}).get("prices") or {}).items():
                if role not in out:
                    try:
                        out[role] = Price.model_validate(price)
                    except ValueError:
                        continue
        return out

    @property
    def counted_by(self) -> dict[str, str]:
        """role -> the tokenizer that counted its tokens (reference teacher), as the evaluations recorded it."""
        out: dict[str, str] = {}
        for e in self.evaluations:
            for role, label in ((e.report or {}).get("counted_by") or {}).items():
                out.setdefault(role, str(label))
        return out

    @property
    def train_summary(self) -> dict[str, Any]:
        """The last line of train_log.jsonl that agentkd adds (tokens, seconds, tokens/s), merged with the
        Trainer's own final summary (runtime, mean loss)."""
        out: dict[str, Any] = {}
        for entry in self.train_log:
            if "loss" not in entry:
                out.update(entry)
        return out

    @property
    def train_points(self) -> list[dict[str, Any]]:
        """The Trainer's periodic log entries (step, loss, learning rate, ...)."""
        return [e for e in self.train_log if "loss" in e and "step" in e]

    @property
    def dpo_points(self) -> list[dict[str, Any]]:
        """The preference stage's periodic log entries (step, loss, rewards/...)."""
        return [e for e in self.dpo_log if "loss" in e and "step" in e]


def gather(run: str | Path) -> ReportData:
    """Read a run folder: run.json, the collection, the student's files and every evaluation."""
    layout = RunLayout(run)
    folder = RunFolder(run)
    config = folder.read_config()
    if config is None:
        raise RunFolderError(f"{run} is not a run folder (no {layout.config.name}); run `agentkd collect` first")
    rows: list[list[Any]] = []
    details: list[dict[str, Any]] = []
    collection = SourceStats()
    for traj in folder.iter_trajectories():
        _add(COLLECTION, traj, collection, rows, details)
    evaluations = []
    for name in eval_names(layout):
        stats = SourceStats()
        for traj in _eval_trajectories(layout, name):
            _add(name, traj, stats, rows, details)
        evaluations.append(Evaluation(name, read_json(layout.eval_report(name)), layout.eval_settings_record(name), stats))
    student_config = None
    if layout.student_config.is_file():
        import yaml

        student_config = yaml.safe_load(layout.student_config.read_text()) or {}
    return ReportData(
        run=Path(run), config=config, collection=collection, evaluations=evaluations, rows=rows, details=details,
        student_config=student_config, student_data=read_json(layout.student_data),
        train_log=list(_read_jsonl(layout.train_log)), failed_episodes=sum(1 for _ in _lines(layout.failed_episodes)),
        preference_pairs=sum(1 for _ in _lines(layout.preferences)), dpo_log=list(_read_jsonl(layout.dpo_train_log)),
        has_index=layout.index_dir.is_dir(), has_student=layout.has_trained_student(),
        rounds=round_rows(run) if layout.round_numbers() else [],
    )


def eval_names(layout: RunLayout) -> list[str]:
    """Every evaluation of the run: finished ones (a report) and unfinished ones (only trajectories)."""
    names = set(layout.eval_reports())
    if layout.eval_dir.is_dir():
        names |= {p.stem for p in layout.eval_dir.glob("*.jsonl")}
    return sorted(names, key=lambda n: (n != "teacher", n))


def _eval_trajectories(layout: RunLayout, name: str) -> Iterator[Trajectory]:
    # Not agentkd.evaluate.eval_folder: that imports the whole evaluation stack and may move legacy files;
    # a report only reads.
    return RunFolder(layout.root, trajectories=layout.eval_trajectories(name),
                     config=layout.eval_settings(name)).iter_trajectories()


def task_kind(traj: Trajectory) -> str | None:
    kind = traj.task.metadata.get("kind")
    return None if kind is None else str(kind)


def _add(source: str, traj: Trajectory, stats: SourceStats, rows: list[list[Any]], details: list[dict[str, Any]]) -> None:
    stats.add(traj)
    roles = [s.role for s in traj.steps]
    prompt = traj.task.prompt
    rows.append([
        source, traj.policy, traj.task.id if not traj.sample_index else f"{traj.task.id}#{traj.sample_index}",
        task_kind(traj), bool(traj.success), traj.status, len(traj.steps),
        sum(r in ("teacher", "reference") for r in roles), roles.count("student"), sum(s.deferred for s in traj.steps),
        round(traj.usage.cost_usd, 8), traj.usage.total_tokens, round(traj.score, 4), round(traj.duration_s, 3),
        prompt if len(prompt) <= PROMPT_IN_ROW else prompt[:PROMPT_IN_ROW] + "…",
    ])
    details.append(detail(traj))


def detail(traj: Trajectory) -> dict[str, Any]:
    """What the viewer shows for one trajectory (the conversation in `messages` is left out: it repeats the
    system prompt and every step)."""
    out: dict[str, Any] = {
        "task": {"id": traj.task.id, "prompt": _clip(traj.task.prompt), "answer": _jsonable(traj.task.answer),
                 "split": traj.task.split, "kind": task_kind(traj)},
        "sample": traj.sample_index, "policy": traj.policy,
        "spec": traj.policy_spec.model_dump(mode="json") if traj.policy_spec else None,
        "final": _jsonable(traj.final_answer), "score": traj.score, "success": traj.success, "status": traj.status,
        "error": traj.error, "parse_errors": traj.parse_errors, "usage": _usage(traj.usage),
        "seconds": round(traj.duration_s, 3), "started": traj.started_at,
        "steps": [_step(s) for s in traj.steps],
    }
    return {k: v for k, v in out.items() if v is not None}


def _step(step: Step) -> dict[str, Any]:
    out: dict[str, Any] = {
        "i": step.index, "role": step.role, "model": step.model, "thought": _clip(step.thought),
        "code": _clip(step.action) if step.action is not None else None,
        "observation": _clip(step.observation), "usage": _usage(step.usage),
        "latency": round(step.latency_s, 3), "exec": round(step.execution_s, 3),
    }
    if step.tool_calls:
        out["tool_calls"] = [{"name": call.name, "arguments": _clip(call.arguments)} for call in step.tool_calls]
    elif step.action is None:
        out["output"] = _clip(step.output)  # nothing could be parsed (or a plain reply): show what the model wrote
    if step.parse_error:
        out["parse_error"] = _clip(step.parse_error)
    if step.execution_error:
        out["execution_error"] = _clip(step.execution_error)
    if step.candidates is not None:
        out["candidates"] = [_clip(c) for c in step.candidates]
    if step.vote is not None:
        out["vote"] = step.vote.model_dump(mode="json")
        out["deferred"] = step.deferred
    if step.resampled is not None:
        out["resampled"] = step.resampled.model_dump(mode="json")
    if step.role_usage:
        out["role_usage"] = {role: _usage(u) for role, u in step.role_usage.items()}
    return {k: v for k, v in out.items() if v is not None and v != ""}


def _usage(usage: Any) -> dict[str, Any]:
    return {"prompt": usage.prompt_tokens, "completion": usage.completion_tokens, "cost": round(usage.cost_usd, 8),
            "calls": usage.calls}


def _clip(text: str | None) -> str | None:
    if text is None or len(text) <= MAX_TEXT:
        return text
    return f"{text[:MAX_TEXT]}… ({len(text) - MAX_TEXT} more characters cut by the report)"


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return repr(value)


def _lines(path: Path) -> Iterator[str]:
    if not path.is_file():
        return
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip() and line.endswith("\n"):
                yield line


def _read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    for line in _lines(path):
        try:
            yield json.loads(line)
        except ValueError:
            continue
