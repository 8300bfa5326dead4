"""The in-context distillation experiment, end to end on one run folder (`agentkd bench icd`).

Stages (each resumes when re-run, like the commands): collect `train` teacher episodes on the train split, index
their successful steps, optionally fine-tune the student on them (`sft`), then evaluate every policy of `policies`
on the same `n` tasks of `split` (RUN/eval/<policy>@<split>.json). The table compares them against the teacher:
success with its 95% interval, teacher share of steps, tokens by role, model calls per step, $ per episode under
the price pair, FLOPs = 2*params*tokens, the cost ratio against the teacher (and for a cascade the ratio it would
reach with no step deferred), break-even episodes = collection $ / $ saved per episode, wall s per episode; it is
written to RUN/eval/tables/icd@<split>.json. Choose settings on a dev slice of train, never on test.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentkd.bench.settings import IcdBenchSettings
from agentkd.collect.job import CollectJob
from agentkd.evaluate.costs import CostTable, PriceSettings, cost_table
from agentkd.evaluate.job import EvalJob
from agentkd.evaluate.runner import eval_folder
from agentkd.jobs import Stage
from agentkd.models.hf.materialize import TRAINABLE, trainable
from agentkd.policies.names import parse_policy_name
from agentkd.policies.registry import teacher_spec
from agentkd.records import Trajectory
from agentkd.run.folder import RunFolder
from agentkd.run.layout import RunLayout
from agentkd.specs import EnvSpec, PolicySpec
from agentkd.store.build import IndexJob
from agentkd.train.config import TrainConfig, TrainConfigError
from agentkd.train.job import TrainJob

PARAMS = {"qwen2.5-coder-1.5b": 1.54e9, "qwen2.5-coder-0.5b": 0.49e9, "smollm2-135m": 0.135e9, "reference": 0.0}
"""Parameters by model alias (for FLOPs); a trained student has its base model's."""
TABLE_ORDER = ("teacher", "student", "icd", "sft")
"""The rows that come first; the other evaluations follow by name."""


def eval_name(policy: str, split: str) -> str:
    """RUN/eval/<policy>@<split> (a slice `train[a:b]` becomes `train_a-b`)."""
    return f"{policy}@{split}".replace("[", "_").replace(":", "-").replace("]", "")


def model_alias(model: str) -> str:
    """`gguf/qwen2.5-coder-0.5b` -> `qwen2.5-coder-0.5b`: the key of PARAMS."""
    return model.split("/", 1)[-1]


def sft_base(student: str) -> str:
    """The trainable alias `--sft` fine-tunes for the frozen student `student` (`gguf/qwen2.5-coder-0.5b` ->
    `qwen2.5-coder-0.5b`), so the sft rows train the model the icd rows run."""
    model = trainable(model_alias(student))
    if model is None:
        raise TrainConfigError(f"--sft fine-tunes the frozen student, and {student!r} is not one agentkd can train: "
                               f"use --student gguf/ALIAS with ALIAS one of {', '.join(TRAINABLE)}")
    return model.alias


@dataclass
class IcdTable:
    """The experiment's table and the file it was written to."""

    table: CostTable
    path: Path


@dataclass
class IcdBench:
    """The experiment on the run folder `run`: its stages (the jobs `agentkd pipeline` runs), then its table."""

    run: Path
    settings: IcdBenchSettings = field(default_factory=IcdBenchSettings)

    @property
    def layout(self) -> RunLayout:
        return RunLayout(self.run)

    def teacher(self) -> PolicySpec:
        s = self.settings
        return teacher_spec(s.teacher, **({"api_base": s.teacher_api_base} if s.teacher_api_base else {}))

    def policy(self, name: str) -> PolicySpec:
        """The spec a policy name of `policies` means (`agentkd.policies.names`); PolicyNameError says what is
        allowed."""
        s = self.settings
        return parse_policy_name(name, self.teacher(), s.student, k=s.k, max_tokens=s.max_tokens)

    def stages(self) -> list[Stage]:
        """Collect, index, (fine-tune), then one evaluation per policy; every name is checked before any runs."""
        s, teacher = self.settings, self.teacher()
        policies = {name: self.policy(name) for name in s.policy_names()}
        planned = [
            Stage("collect teacher trajectories",
                  CollectJob(run=self.run, env=EnvSpec(target=s.env, given=s.env), teacher=teacher, n=s.train,
                             concurrency=s.concurrency, max_steps=s.max_steps)),
            Stage("index the teacher's steps", IndexJob(run=self.run)),
        ]
        if s.sft:
            trained = self.layout.has_trained_student()
            planned.append(Stage("fine-tune the student", None if trained else TrainJob(
                run=self.run, config=TrainConfig(student=sft_base(s.student), epochs=s.epochs),
                resume=self.layout.has_checkpoint())))
        for name, spec in policies.items():
            report = eval_name(name, s.split)
            planned.append(Stage(f"evaluate {name} on {s.split}", EvalJob(
                run=self.run, policy=spec, name=report, split=s.split, n=s.n, concurrency=s.concurrency,
                max_steps=s.max_steps), report))
        return planned

    def evaluations(self) -> dict[str, list[Trajectory]]:
        """Every finished evaluation of `split` (several processes may each run some policies), by policy name in
        table order: those with all `n` tasks, or with `partial`, each cut to the tasks all of them finished."""
        suffix = eval_name("", self.settings.split)
        finished = {path.stem.removesuffix(suffix): list(eval_folder(self.run, path.stem).iter_trajectories())
                    for path in self.layout.eval_dir.glob(f"*{suffix}.jsonl")}
        order = [*TABLE_ORDER, *sorted(finished)]
        found = {name: finished[name] for name in dict.fromkeys(order) if finished.get(name)}
        if self.settings.partial and found:
            common = set.intersection(*({t.task.id for t in trajs} for trajs in found.values()))
            return {name: [t for t in trajs if t.task.id in common] for name, trajs in found.items()}
        return {name: trajs for name, trajs in found.items() if len(trajs) == self.settings.n}

    def prices(self) -> PriceSettings:
        s = self.settings
        return PriceSettings(prices={"teacher": s.teacher_price, "student": s.student_price},
                             params={"teacher": PARAMS.get(model_alias(s.teacher), 0.0),
                                     "student": PARAMS.get(model_alias(s.student), 0.0)})

    def table(self, command: str = "", wall_s: float = 0.0) -> IcdTable | None:
        """The table of the finished evaluations, written to RUN/eval/tables/icd@<split>.json with the command and
        its wall time; None when the teacher's evaluation of `split` is not among them."""
        s = self.settings
        evaluations = self.evaluations()
        if "teacher" not in evaluations:
            return None
        collected = list(RunFolder(self.run).iter_trajectories())
        table = cost_table(s.env, s.split, evaluations, collected, self.prices())
        path = self.layout.eval_table(eval_name("icd", s.split))
        path.parent.mkdir(parents=True, exist_ok=True)
        record: dict[str, Any] = {**table.model_dump(mode="json"), "teacher": s.teacher, "student": s.student,
                                  "command": command, "load_avg": os.getloadavg(), "wall_s": wall_s}
        path.write_text(json.dumps(record, indent=2) + "\n")
        return IcdTable(table, path)
