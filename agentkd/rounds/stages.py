"""The stage machine of `agentkd improve`: the first unfinished stage of the first unfinished round.

Round 0 is the run itself: its student (trained if missing) evaluated on the test split. Round k >= 1 lives in
RUN/rounds/<k>/, a run folder of its own:

1. prepare  plan.json (settings, probe tasks, the student probed); trajectories.jsonl and run.json inherited from
            round k-1 (the run itself for k = 1), so its training sees the base run and every earlier round;
2. probe    eval/probe: round k-1's student on `probe_tasks` train tasks nobody collected or probed before;
3. collect  targets/probe.json: the teacher on the probe's failures and nearby tasks, `budget` episodes;
4. train    student/: SFT on everything inherited plus the new episodes (from the base model);
5. dpo      student-dpo/: with `dpo`, preference pairs from the probe and the new teacher episodes;
6. evaluate eval/student-*, eval/cascade-*: the round's student alone and in the cascade, test split;
7. summary  round.json, written last: a finished round is never touched again.

Each stage is done when its output exists, so a re-run continues at the stage where the last one stopped.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Union

from agentkd.collect.job import CollectJob
from agentkd.collect.targets import load_plan
from agentkd.env.loading import load_environment
from agentkd.evaluate.job import EvalJob
from agentkd.policies.names import parse_policy_name, policy_name
from agentkd.policies.registry import teacher_spec
from agentkd.rounds.settings import ImproveSettings, RoundsError
from agentkd.rounds.summary import write_round_summary, write_rounds_summary
from agentkd.run.folder import RunFolder
from agentkd.run.layout import TRAINED, TRAINED_DPO, RunLayout
from agentkd.specs import PolicySpec
from agentkd.train.job import TrainJob

PROBE = "probe"
Action = Union[CollectJob, EvalJob, TrainJob, Callable[[], None]]


@dataclass
class RoundStage:
    """One stage: what to run (a job, which runs itself, or a function) and where."""

    round: int
    name: str
    title: str
    action: Action

    @property
    def key(self) -> tuple[int, str]:
        return (self.round, self.name)


def next_stage(run: str | Path, settings: ImproveSettings) -> RoundStage | None:
    """The first stage whose output is missing, over round 0 then rounds 1..settings.rounds; None when all are done."""
    run = Path(run)
    base = RunLayout(run)
    folder = RunFolder(run)
    folder.identity()  # "not a run folder" when there is none
    if not base.trajectories.is_file() or base.trajectories.stat().st_size == 0:
        raise RoundsError(f"{run} has no teacher trajectories; collect some first (`agentkd collect --run {run} ...` "
                          f"or `agentkd pipeline --run {run}`)")
    teacher = folder.teacher_spec() or teacher_spec(folder.identity()["teacher"])
    stage = _round_zero(run, base, teacher, settings)
    if stage is not None:
        return stage
    for number in range(1, settings.rounds + 1):
        layout = base.round_layout(number)
        if layout.round_summary.is_file():
            continue  # finished: never touched again
        return _round_stage(run, number, layout, teacher, settings)
    return None


def _round_zero(run: Path, base: RunLayout, teacher: PolicySpec, s: ImproveSettings) -> RoundStage | None:
    if not base.has_trained_student():
        return RoundStage(0, "train", "round 0: fine-tune the student on the run's trajectories",
                          _train_job(run, base, s))
    for choice in ("student", "cascade"):
        job = _test_eval(run, choice, TRAINED, teacher, s)
        if not base.eval_report(job.name).is_file():
            return RoundStage(0, f"eval-{choice}", f"round 0: evaluate the {_what(choice)} on the test split", job)
    return None


def _round_stage(run: Path, number: int, layout: RunLayout, teacher: PolicySpec, s: ImproveSettings) -> RoundStage:
    here = f"round {number}"
    if not layout.round_plan.is_file():
        return RoundStage(number, "prepare", f"{here}: prepare {layout.root} (inherit the trajectories, choose "
                                             f"{s.probe_tasks} probe tasks)", lambda: prepare_round(run, number, s))
    plan = read_round_plan(layout)
    if plan["settings"] != s.identity():
        changed = sorted(k for k in set(plan["settings"]) | set(s.identity())
                         if plan["settings"].get(k) != s.identity().get(k))
        raise RoundsError(f"{here} was started with other settings ({', '.join(changed)} differ; see "
                          f"{layout.round_plan}); re-run with its settings to finish it")
    if not layout.eval_report(PROBE).is_file():
        return RoundStage(number, "probe", f"{here}: probe round {number - 1}'s student on {len(plan['probe'])} "
                                           "unseen train tasks", _probe_job(layout, plan, teacher, s))
    targets = load_plan(layout.targets(PROBE))
    collected = {t.task.id for t in RunFolder(layout.root).iter_trajectories()}
    if targets is None or not set(targets.task_ids) <= collected:
        return RoundStage(number, "collect", f"{here}: collect {s.budget} teacher episodes on the probe's failures "
                                             "and nearby tasks", CollectJob(
            run=layout.root, env=RunFolder(run).env_spec(), teacher=teacher, on_failures=PROBE, budget=s.budget,
            group_by=s.group_by, concurrency=s.concurrency, max_steps=s.max_steps, sandbox=s.sandbox))
    if not layout.has_trained_student():
        return RoundStage(number, "train", f"{here}: fine-tune the student on the base run and rounds 1-{number}",
                          _train_job(layout.root, layout, s))
    student = TRAINED
    if s.dpo:
        if not (layout.dpo_merged / "config.json").is_file() and _has_pairs(layout, s):
            return RoundStage(number, "dpo", f"{here}: preference (DPO) stage on the round's pairs", TrainJob(
                run=layout.root, stage="dpo", config=s.train, overwrite=True))
        if (layout.dpo_merged / "config.json").is_file():
            student = TRAINED_DPO
    suffix = "dpo" if student == TRAINED_DPO else "sft"
    for choice in ("student", "cascade"):
        job = _test_eval(layout.root, choice, student, teacher, s)
        if not layout.eval_report(job.name).is_file():
            return RoundStage(number, f"eval-{choice}", f"{here}: evaluate the {_what(choice)} on the test split", job)
    return RoundStage(number, "summary", f"{here}: write {layout.round_summary}",
                      lambda: _finish(run, number, suffix, s))


def _what(choice: str) -> str:
    return "fine-tuned student" if choice == "student" else "cascade (fine-tuned student + teacher)"


def _train_job(run: Path, layout: RunLayout, s: ImproveSettings) -> TrainJob:
    resume = layout.has_checkpoint()
    # A student folder without merged weights or a checkpoint is a stage that died early: start it again.
    return TrainJob(run=run, config=s.train, resume=resume, overwrite=not resume)


def _test_eval(run: Path, choice: str, student: str, teacher: PolicySpec, s: ImproveSettings) -> EvalJob:
    """RUN/eval/<choice>-sft (or -dpo): `student` alone or in the cascade, on the test split."""
    spec = parse_policy_name(choice, teacher, student, **s.cascade.model_dump(), max_tokens=s.max_tokens)
    return EvalJob(run=run, policy=spec, name=policy_name(spec, detail=False), split="test", n=s.eval_tasks,
                   concurrency=s.concurrency, max_steps=s.max_steps, sandbox=s.sandbox)


def _probe_job(layout: RunLayout, plan: dict[str, Any], teacher: PolicySpec, s: ImproveSettings) -> EvalJob:
    model = plan["student"]
    spec = parse_policy_name(s.probe, teacher, model, **s.cascade.model_dump(), max_tokens=s.max_tokens)
    return EvalJob(run=layout.root, policy=spec, name=PROBE, split="train", task_ids=plan["probe"],
                   concurrency=s.concurrency, max_steps=s.max_steps, sandbox=s.sandbox)


def _has_pairs(layout: RunLayout, s: ImproveSettings) -> bool:
    from agentkd.train.preferences import build_preferences

    pairs, _ = build_preferences(layout.root, include_test=s.train.dpo.include_test)
    return bool(pairs)


def student_model(layout: RunLayout) -> str:
    """The model string of a run folder's final student: the DPO stage's when there is one, else the SFT student;
    each as its GGUF export (llama.cpp) when present, else its merged weights."""
    if (layout.dpo_merged / "config.json").is_file():
        if layout.dpo_gguf.is_file():
            return f"gguf/{layout.dpo_gguf.resolve()}"
        return f"hf/{layout.dpo_merged.resolve()}"
    if layout.student_gguf.is_file():
        return f"gguf/{layout.student_gguf.resolve()}"
    return f"hf/{layout.trained_student().resolve()}"


def read_round_plan(layout: RunLayout) -> dict[str, Any]:
    try:
        return json.loads(layout.round_plan.read_text())
    except ValueError as exc:
        raise RoundsError(f"{layout.round_plan} is not valid JSON ({exc}); delete {layout.root} (an unfinished "
                          "round) to start that round again") from exc


def prepare_round(run: Path, number: int, s: ImproveSettings) -> None:
    """Create RUN/rounds/<k>: inherit the previous round's trajectories and run.json, choose the probe tasks, and
    write plan.json last (its presence means the round is prepared)."""
    base = RunLayout(run)
    layout = base.round_layout(number)
    previous = base if number == 1 else base.round_layout(number - 1)
    if number > 1 and not previous.round_summary.is_file():
        raise RoundsError(f"round {number - 1} is not finished ({previous.round_summary} is missing)")
    if layout.round_plan.is_file():
        raise RoundsError(f"{layout.root} is prepared already; it is never prepared twice")
    layout.root.mkdir(parents=True, exist_ok=True)
    _copy(previous.trajectories, layout.trajectories)
    _copy(previous.config, layout.config)
    env = load_environment(RunFolder(run).env_spec())
    collected = {t.task.id for t in RunFolder(layout.root).iter_trajectories()}
    probed: set[str] = set()
    for earlier in range(1, number):
        probed.update(read_round_plan(base.round_layout(earlier)).get("probe", []))
    fresh = [t.id for t in env.tasks("train") if t.id not in collected and t.id not in probed]
    if not fresh:
        raise RoundsError(f"every train task of {env.name!r} is collected or probed already; nothing is left to probe")
    plan = {"round": number, "settings": s.identity(), "probe": fresh[: s.probe_tasks],
            "student": student_model(previous), "inherited_from": str(previous.root),
            "inherited_trajectories": len(collected), "started_at": datetime.now(timezone.utc).isoformat()}
    _write_json(layout.round_plan, plan)


def _finish(run: Path, number: int, suffix: str, s: ImproveSettings) -> None:
    write_round_summary(run, number, suffix)
    write_rounds_summary(run)


def _copy(src: Path, dst: Path) -> None:
    tmp = dst.with_name(dst.name + ".tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def _write_json(path: Path, value: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, indent=2))
    os.replace(tmp, path)
