"""The flywheel comparison from finished run folders: one SFT round on uniformly sampled tasks, the same student
with a preference (DPO) stage, and rounds of targeted collection (`agentkd improve`), on the same test tasks.

    python benchmarks/flywheel_table.py --uniform runs/A --rounds runs/C [--out table.json]

--uniform RUN: a run of uniformly sampled teacher episodes with `student-sft` / `cascade-sft` evaluations (arm a)
and, when trained, `student-dpo` / `cascade-dpo` after `agentkd train --stage dpo` (arm b).
--rounds RUN: a run improved with `agentkd improve` (arm c: round 0 and every finished round).
Prints one markdown table (success with its 95% interval, the student's success by task kind, the cascade's teacher
share of steps, teacher episodes and teacher steps spent on labelling, training seconds) and writes it as JSON.
Reads files only: nothing is evaluated or trained here.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from agentkd import RunFolder, RunLayout, round_rows
from agentkd.evaluate.runner import eval_folder
from agentkd.run.layout import STUDENT_MARKER, read_json

FIELDS = ("arm", "teacher_episodes", "labelling_teacher_steps", "student_success", "student_ci95", "student_by_kind",
          "cascade_success", "cascade_ci95", "cascade_teacher_share", "train_seconds", "run")


def by_kind(run: Path, name: str) -> dict[str, list[int]]:
    """kind (task metadata; its template where tasks have no kind) -> [solved, episodes] of one evaluation."""
    out: dict[str, list[int]] = {}
    for traj in eval_folder(run, name).iter_trajectories():
        meta = traj.task.metadata
        cell = out.setdefault(str(meta.get("kind") or meta.get("template") or "-"), [0, 0])
        cell[0] += int(traj.success)
        cell[1] += 1
    return dict(sorted(out.items()))


def train_seconds(log: Path) -> float | None:
    """The train_seconds of a student's train_log.jsonl (its last line)."""
    if not log.is_file():
        return None
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    return json.loads(lines[-1]).get("train_seconds") if lines else None


def teacher_steps(run: Path, names: list[str]) -> int:
    """Teacher steps taken in evaluations on train tasks (the labels of deferral pairs; not teacher episodes)."""
    layout = RunLayout(run)
    total = 0
    for name in names:
        if layout.eval_report(name).is_file():
            total += sum(s.role == "teacher" for t in eval_folder(run, name).iter_trajectories() for s in t.steps)
    return total


def arm_row(arm: str, run: Path, suffix: str, train_log: Path, labelling: int = 0) -> dict[str, Any] | None:
    layout = RunLayout(run)
    student = read_json(layout.eval_report(f"student-{suffix}"))
    cascade = read_json(layout.eval_report(f"cascade-{suffix}"))
    if student is None and cascade is None:
        return None
    share = (cascade or {}).get("student_share_of_steps")
    return {
        "arm": arm, "run": str(run), "teacher_episodes": sum(1 for _ in RunFolder(run).iter_trajectories()),
        "labelling_teacher_steps": labelling,
        "student_success": (student or {}).get("success_rate"), "student_ci95": (student or {}).get("success_ci95"),
        "student_by_kind": by_kind(run, f"student-{suffix}") if student else {},
        "cascade_success": (cascade or {}).get("success_rate"), "cascade_ci95": (cascade or {}).get("success_ci95"),
        "cascade_teacher_share": None if share is None else 1.0 - float(share),
        "train_seconds": train_seconds(train_log),
    }


def uniform_rows(run: Path) -> list[dict[str, Any]]:
    """Arm (a) and, when its preference stage was evaluated, arm (b)."""
    layout = RunLayout(run)
    rows = [arm_row("(a) SFT, uniform tasks", run, "sft", layout.train_log)]
    train_evals = [n for n in layout.eval_reports() if (read_json(layout.eval_report(n)) or {}).get("split") == "train"]
    pairs = read_json(layout.dpo_merged / STUDENT_MARKER) if layout.dpo_merged.is_dir() else None
    label = "(b) SFT + DPO on the run's pairs" + (f" ({pairs['pairs']} pairs)" if pairs and "pairs" in pairs else "")
    rows.append(arm_row(label, run, "dpo", layout.dpo_train_log, teacher_steps(run, train_evals)))
    return [r for r in rows if r is not None]


def round_table_rows(run: Path) -> list[dict[str, Any]]:
    """Arm (c): round 0 (the base run) and every finished round of `agentkd improve`."""
    base = RunLayout(run)
    rows = []
    for summary in round_rows(run):
        number = summary["round"]
        layout = base if number == 0 else base.round_layout(number)
        suffix = str(summary.get("student") or "student-sft").removeprefix("student-")
        log = layout.dpo_train_log if suffix == "dpo" else layout.train_log
        targets = summary.get("targets") or {}
        arm = "(c) round 0: SFT, uniform tasks" if number == 0 else (
            f"(c) round {number}: + targeted ({', '.join(f'{n} {k}' for k, n in targets.items())}; probe success "
            f"{_pct(summary.get('probe_success'))})")
        row = arm_row(arm, layout.root, suffix, log, teacher_steps(layout.root, ["probe"]))
        if row is not None:
            rows.append(row)
    return rows


def _pct(value: Any) -> str:
    return "-" if value is None else f"{float(value):.0%}"


def _ci(value: Any, ci: Any) -> str:
    return "-" if value is None else f"{_pct(value)} ({_pct(ci[0])}–{_pct(ci[1])})" if ci else _pct(value)


def markdown(rows: list[dict[str, Any]]) -> str:
    head = ("arm", "teacher episodes", "teacher steps labelling train evals", "student success (95% CI)",
            "student by kind", "cascade success (95% CI)", "cascade teacher share", "training s")
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in rows:
        kinds = ", ".join(f"{k} {s}/{n}" for k, (s, n) in r["student_by_kind"].items()) or "-"
        seconds = "-" if r["train_seconds"] is None else f"{r['train_seconds']:.0f}"
        lines.append(f"| {r['arm']} | {r['teacher_episodes']} | {r['labelling_teacher_steps']} | "
                     f"{_ci(r['student_success'], r['student_ci95'])} | {kinds} | "
                     f"{_ci(r['cascade_success'], r['cascade_ci95'])} | {_pct(r['cascade_teacher_share'])} | {seconds} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--uniform", type=Path, help="run of arm (a), with arm (b) when its DPO stage was evaluated")
    parser.add_argument("--rounds", type=Path, help="run improved with `agentkd improve` (arm c)")
    parser.add_argument("--out", type=Path, help="write the rows as JSON here")
    args = parser.parse_args()
    if args.uniform is None and args.rounds is None:
        parser.error("give --uniform RUN and/or --rounds RUN")
    rows: list[dict[str, Any]] = []
    for run, build in ((args.uniform, uniform_rows), (args.rounds, round_table_rows)):
        if run is not None:
            if not (run / "run.json").is_file():
                parser.error(f"{run} is not a run folder (no run.json)")
            rows += build(run)
    print(markdown(rows))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"rows": rows}, indent=2))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
