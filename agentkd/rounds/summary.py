"""Per-round results: each round's round.json, and one row per round (round 0 = the run itself) for tables and plots.

Reads only the files rounds write (eval reports, targets, plan); imports nothing heavy, so the report can use it.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from agentkd.run.layout import RunLayout, read_json

ROW_KEYS = ("round", "teacher_episodes", "new_teacher_episodes", "student", "student_success", "student_ci95",
            "cascade_success", "cascade_ci95", "cascade_teacher_share", "probe_episodes", "probe_success", "targets")


def _lines(path: Path) -> int:
    if not path.is_file():
        return 0
    with open(path, "rb") as handle:
        return sum(1 for line in handle if line.strip())


def _results(layout: RunLayout, suffix: str) -> dict[str, Any]:
    out: dict[str, Any] = {"student": f"student-{suffix}"}
    student = read_json(layout.eval_report(f"student-{suffix}")) or {}
    cascade = read_json(layout.eval_report(f"cascade-{suffix}")) or {}
    out["student_success"] = student.get("success_rate")
    out["student_ci95"] = student.get("success_ci95")
    out["cascade_success"] = cascade.get("success_rate")
    out["cascade_ci95"] = cascade.get("success_ci95")
    share = cascade.get("student_share_of_steps")
    out["cascade_teacher_share"] = None if share is None else round(1.0 - float(share), 4)
    out["test_episodes"] = student.get("episodes")
    return out


def write_round_summary(run: str | Path, number: int, suffix: str) -> dict[str, Any]:
    """RUN/rounds/<k>/round.json: what the round collected and how its student did (written last)."""
    base = RunLayout(run)
    layout = base.round_layout(number)
    plan = read_json(layout.round_plan) or {}
    targets = read_json(layout.targets("probe")) or {}
    probe = read_json(layout.eval_report("probe")) or {}
    total = _lines(layout.trajectories)
    counts: dict[str, int] = {}
    for choice in targets.get("chosen", []):
        counts[choice["reason"]] = counts.get(choice["reason"], 0) + 1
    summary = {
        "round": number,
        "teacher_episodes": total,
        "new_teacher_episodes": total - int(plan.get("inherited_trajectories", 0)),
        "probe_episodes": probe.get("episodes"),
        "probe_success": probe.get("success_rate"),
        "probe_student": plan.get("student"),
        "targets": counts,
        "group_weights": targets.get("group_weights", {}),
        **_results(layout, suffix),
        "started_at": plan.get("started_at"),
        "finished_at": datetime.now(timezone.utc).isoformat(),
    }
    _write_json(layout.round_summary, summary)
    return summary


def round_rows(run: str | Path) -> list[dict[str, Any]]:
    """Round 0 (the run's own student-sft / cascade-sft evaluations) and every finished round, in order."""
    base = RunLayout(run)
    rows: list[dict[str, Any]] = []
    zero = _results(base, "sft")
    if zero["student_success"] is not None or zero["cascade_success"] is not None:
        episodes = _lines(base.trajectories)
        rows.append({"round": 0, "teacher_episodes": episodes, "new_teacher_episodes": episodes,
                     "probe_episodes": None, "probe_success": None, "targets": {}, **zero})
    for number in base.round_numbers():
        summary = read_json(base.round_layout(number).round_summary)
        if summary is not None:
            rows.append(summary)
    return rows


def write_rounds_summary(run: str | Path) -> Path:
    """RUN/rounds/summary.json: every row of `round_rows` (rewritten whenever a round finishes)."""
    layout = RunLayout(run)
    _write_json(layout.rounds_summary, {"rounds": round_rows(run)})
    return layout.rounds_summary


def _write_json(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, indent=2))
    os.replace(tmp, path)
