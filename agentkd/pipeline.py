"""The main job in one command: collect → index → train → evaluate the teacher, the student and the cascade.

Two routes: `sft` (the default) fine-tunes the student and evaluates it alone and inside the cascade; `icd` trains
nothing and evaluates a frozen student alone, with retrieved teacher steps (ICD) and inside the cascade.
`stages` turns `PipelineSettings` into the same job objects the single commands run (CollectJob,
IndexJob, TrainJob, EvalJob); the CLI runs each with the command's own progress display.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union

from pydantic import BaseModel, Field

from agentkd.collect.job import CollectJob
from agentkd.env.loading import load_environment
from agentkd.errors import UnknownSplitError
from agentkd.evaluate.job import EvalJob, default_eval_name, eval_policy_spec
from agentkd.policies.registry import teacher_spec
from agentkd.run.layout import TRAINED, RunLayout
from agentkd.specs import EnvSpec
from agentkd.store.build import IndexJob
from agentkd.tools.sandbox import SandboxConfig
from agentkd.train.config import TrainConfig
from agentkd.train.job import TrainJob

Job = Union[CollectJob, IndexJob, TrainJob, EvalJob]
Route = Literal["sft", "icd"]
ICD_STUDENT = "gguf/qwen2.5-coder-0.5b"
"""The frozen student of the icd route: the smallest real local LLM that follows demonstrations (installed by
setup.sh); SmolLM2-135M solves nothing with them."""


class PipelineSettings(BaseModel):
    """The embedded defaults of `agentkd pipeline` (sized for a 2-core CPU in well under 15 minutes)."""

    env: str | EnvSpec = "factqa"
    teacher: str = "reference"
    route: Route = "sft"
    student: str | None = None
    """sft: the base model fine-tuned (default smollm2-135m); icd: the frozen student (default ICD_STUDENT)."""
    k: int = Field(4, ge=1)
    """icd: retrieved teacher steps per student step."""
    train_tasks: int = 50
    epochs: float = 2.0
    lr: float = 1e-3
    lora_r: int = 32
    eval_tasks: int = 10
    samples: int = 3
    temperature: float = 0.7
    agreement: str = "result"
    max_tokens: int | None = None
    """Student tokens per step; default 96 for the fine-tuned student (short replies), 256 for a frozen one."""
    concurrency: int = 2
    max_steps: int | None = None
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig)


@dataclass
class Stage:
    title: str
    job: Job | None
    """What to run; None when the stage's output already exists and is kept."""
    report: str | None = None
    """RUN/eval/<report>.json this stage writes, for the results table."""


def stages(run: Path, s: PipelineSettings) -> list[Stage]:
    """The jobs the pipeline runs, in order; each one resumes when re-run."""
    env = s.env if isinstance(s.env, EnvSpec) else EnvSpec(target=s.env, given=s.env)  # resolved by its stage
    teacher = teacher_spec(s.teacher)
    common = {"run": run, "split": "test", "n": s.eval_tasks, "concurrency": s.concurrency,
              "max_steps": s.max_steps, "sandbox": s.sandbox}
    student = TRAINED if s.route == "sft" else s.student or ICD_STUDENT
    max_tokens = s.max_tokens or (96 if s.route == "sft" else 256)
    titles = {"teacher": "evaluate the teacher",
              "student": "evaluate the fine-tuned student" if s.route == "sft" else "evaluate the student alone",
              "icd": "evaluate the student with retrieved teacher steps (ICD)",
              "cascade": "evaluate the cascade (fine-tuned student + teacher)" if s.route == "sft"
              else "evaluate the cascade (ICD student + teacher)"}

    def evaluation(choice: str) -> Stage:
        spec = eval_policy_spec(choice, teacher, student=student, samples=s.samples, temperature=s.temperature,
                                agreement=s.agreement, max_tokens=max_tokens, k=s.k)
        name = default_eval_name(choice, student)
        return Stage(titles[choice], EvalJob(policy=spec, name=name, **common), name)

    collected = [
        Stage("collect teacher trajectories", CollectJob(run=run, env=env, teacher=teacher, n=s.train_tasks,
                                                         sandbox=s.sandbox)),
        Stage("index the teacher's steps", IndexJob(run=run)),
    ]
    if s.route == "icd":
        return [*collected, *(evaluation(choice) for choice in ("teacher", "student", "icd", "cascade"))]
    layout = RunLayout(run)
    config = TrainConfig(epochs=s.epochs, lr=s.lr, lora_r=s.lora_r, **({"student": s.student} if s.student else {}))
    train = None if layout.has_trained_student() else TrainJob(run=run, config=config, resume=layout.has_checkpoint())
    return [*collected, Stage("fine-tune the student", train),
            *(evaluation(choice) for choice in ("teacher", "student", "cascade"))]


PIPELINE_SPLITS = ("train", "test")
"""The splits the pipeline uses: it collects (and trains) on train and evaluates on test."""


def check_splits(env: str | EnvSpec) -> None:
    """UnknownSplitError, before any stage runs, when the environment lacks a split the pipeline uses."""
    environment = load_environment(env)
    missing = [split for split in PIPELINE_SPLITS if split not in environment.splits]
    if missing:
        names = " and ".join(repr(split) for split in missing)
        raise UnknownSplitError(
            f"environment {environment.name!r} has no {names} split (it has {environment.splits}): `agentkd pipeline` "
            "collects and trains on 'train' and evaluates on 'test'; declare both splits, or run `agentkd collect "
            "--split ...` and `agentkd eval --split ...` yourself")


def results(run: Path, all_stages: list[Stage]) -> list[dict[str, Any]]:
    """One row per evaluated policy, read from RUN/eval/<report>.json."""
    rows = []
    layout = RunLayout(run)
    for stage in all_stages:
        if stage.report and layout.eval_report(stage.report).is_file():
            report = json.loads(layout.eval_report(stage.report).read_text())
            rows.append({"policy": stage.report, **{k: report.get(k) for k in (
                "episodes", "success_rate", "success_ci95", "mean_steps", "student_share_of_steps", "deferral_rate",
                "mean_episode_latency_s")}})
    return rows
