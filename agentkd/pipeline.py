"""The main job in one command: collect → index → train → evaluate the teacher, the student and the cascade.

Two routes: `sft` (the default) fine-tunes the student and evaluates it alone and inside the cascade; `icd` trains
nothing and evaluates a frozen student alone, with retrieved teacher steps (ICD) and inside the cascade.
`stages` turns `PipelineSettings` into the same job objects the single commands run (CollectJob,
IndexJob, TrainJob, EvalJob); each runs itself (`job.execute(progress)`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agentkd.calibrate.job import CalibratedEvalJob, CalibrateJob
from agentkd.calibrate.settings import CalibrationSettings
from agentkd.collect.job import CollectJob
from agentkd.env.loading import load_environment
from agentkd.errors import UnknownSplitError
from agentkd.evaluate.job import EvalJob, default_eval_name
from agentkd.evaluate.prices import Price
from agentkd.jobs import Stage
from agentkd.policies.names import parse_policy_name
from agentkd.policies.registry import teacher_spec
from agentkd.policies.settings import ICD_STUDENT, AgreementMode, CascadeOptions, ICDSettings
from agentkd.run.layout import TRAINED, RunLayout
from agentkd.sampling import SFT_STUDENT_MAX_TOKENS, STUDENT_MAX_TOKENS, copy_field
from agentkd.sandbox.host import SandboxConfig
from agentkd.specs import EnvSpec
from agentkd.store.build import IndexJob
from agentkd.train.config import TrainConfig
from agentkd.train.job import TrainJob

Route = Literal["sft", "icd"]
CALIBRATION = "cascade"
"""RUN/calibration/<name> of the main job's confidence cascade."""


class PipelineSettings(BaseModel):
    """The embedded defaults of `agentkd pipeline` (sized for a 2-core CPU in well under 15 minutes)."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    env: str | EnvSpec = "factqa"
    teacher: str = "reference"
    """Teacher: reference or a litellm model string."""
    route: Route = "sft"
    student: str | None = None
    """sft: the base model fine-tuned (default: TrainConfig's); icd: the frozen student (default ICD_STUDENT)."""
    k: int = copy_field(ICDSettings, "k")
    """icd: retrieved teacher steps per student step."""
    train_tasks: int = Field(100, ge=1)
    """Teacher episodes collected and trained on."""
    epochs: float = copy_field(TrainConfig, "epochs")
    batch_size: int = copy_field(TrainConfig, "batch_size", default=4)
    """Conversations per optimizer step. Smaller than TrainConfig's: from ~100 trajectories the student learns more
    from more, smaller steps in the same training time (factqa dev slice train[220:250]: 87% alone after 2 epochs
    of 100 in batches of 4; docs/results/2026-12-06-fine-tuned-students.md)."""
    lr: float = copy_field(TrainConfig, "lr")
    lora_r: int = copy_field(TrainConfig, "lora_r")
    eval_tasks: int = Field(10, ge=1)
    """Held-out test tasks per evaluated policy."""
    samples: int = copy_field(CascadeOptions, "samples")
    temperature: float = copy_field(CascadeOptions, "temperature")
    agreement: AgreementMode = copy_field(CascadeOptions, "agreement", default="confidence")
    """The cascade's deferral: confidence (the default here: its threshold is calibrated on `calibrate_tasks` dev
    tasks for `target`, so the cascade keeps an estimated step accuracy; both students of the main job run through
    llama.cpp, which gives log-probabilities) or a sample agreement (result, code, majority)."""
    threshold: float = copy_field(CascadeOptions, "threshold")
    calibrate_tasks: int = Field(20, ge=0)
    """Confidence cascade: train tasks after the collected ones on which its threshold is chosen for `target`
    (`agentkd calibrate`); 0: `threshold` as it is. With 10 (26 steps) one confident wrong step moved the main
    job's threshold from 0.99 to 0.9985, where the student took 4% of the steps."""
    target: float = copy_field(CalibrationSettings, "target")
    max_tokens: int | None = Field(None, ge=1)
    """Student tokens per step; default SFT_STUDENT_MAX_TOKENS for the fine-tuned student (short replies),
    STUDENT_MAX_TOKENS for a frozen one."""
    teacher_price: Price | None = None
    """The teacher's price, $ per 1M prompt and completion tokens, then optionally cached reads and cache writes;
    unset: litellm's cost map for an API teacher, else the stated default (StatedPrices: the in-context distillation
    paper's teacher pair; the reference teacher's tokens are counted as a model teacher would spend them)."""
    student_price: Price | None = None
    """The student's price, likewise (default: the paper's student pair for a local student)."""
    concurrency: int = copy_field(EvalJob, "concurrency", default=1)
    """Evaluation episodes at once. 1: the in-process llama.cpp student (one copy of the model) keeps each episode's
    prompt in its KV cache from step to step; with 2 episodes at once they evict each other (the main job's
    confidence cascade: 60% of the student's prompt tokens read from the cache against 35%)."""
    max_steps: int | None = copy_field(EvalJob, "max_steps")
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig)

    @property
    def cascade(self) -> CascadeOptions:
        """The cascade's settings."""
        return CascadeOptions(samples=self.samples, temperature=self.temperature, agreement=self.agreement,
                              threshold=self.threshold)

    @property
    def calibrates(self) -> bool:
        """Whether the cascade's threshold is chosen on a dev slice before it is evaluated."""
        return self.agreement == "confidence" and self.calibrate_tasks > 0

    @property
    def calibration_split(self) -> str:
        """The dev slice: the train tasks after the collected ones."""
        return f"train[{self.train_tasks}:{self.train_tasks + self.calibrate_tasks}]"


def stages(run: Path, s: PipelineSettings) -> list[Stage]:
    """The jobs the pipeline runs, in order; each one resumes when re-run."""
    env = s.env if isinstance(s.env, EnvSpec) else EnvSpec(target=s.env, given=s.env)  # resolved by its stage
    teacher = teacher_spec(s.teacher)
    prices = {role: price for role, price in (("teacher", s.teacher_price), ("student", s.student_price)) if price}
    common = {"run": run, "split": "test", "n": s.eval_tasks, "concurrency": s.concurrency,
              "max_steps": s.max_steps, "sandbox": s.sandbox, "prices": prices}
    student = TRAINED if s.route == "sft" else s.student or ICD_STUDENT
    max_tokens = s.max_tokens or (SFT_STUDENT_MAX_TOKENS if s.route == "sft" else STUDENT_MAX_TOKENS)
    titles = {"teacher": "evaluate the teacher",
              "student": "evaluate the fine-tuned student" if s.route == "sft" else "evaluate the student alone",
              "icd": "evaluate the student with retrieved teacher steps (ICD)",
              "cascade": "evaluate the cascade (fine-tuned student + teacher)" if s.route == "sft"
              else "evaluate the cascade (ICD student + teacher)"}

    def evaluation(choice: str) -> Stage:
        spec = parse_policy_name(choice, teacher, student, **s.cascade.model_dump(), max_tokens=max_tokens, k=s.k)
        name = default_eval_name(spec, run)
        job = EvalJob(policy=spec, name=name, **common)
        if choice == "cascade" and s.calibrates:
            return Stage(titles[choice], CalibratedEvalJob(evaluation=job, calibration=CALIBRATION), name)
        return Stage(titles[choice], job, name)

    def calibration() -> list[Stage]:
        if not s.calibrates:
            return []
        spec = parse_policy_name("cascade", teacher, student, **s.cascade.model_dump(), max_tokens=max_tokens, k=s.k)
        job = CalibrateJob(run=run, policy=spec, split=s.calibration_split, target=s.target, name=CALIBRATION,
                           max_steps=s.max_steps, sandbox=s.sandbox)
        return [Stage(f"calibrate the cascade's deferral on {s.calibration_split}", job)]

    collected = [
        Stage("collect teacher trajectories", CollectJob(run=run, env=env, teacher=teacher, n=s.train_tasks,
                                                         sandbox=s.sandbox)),
        Stage("index the teacher's steps", IndexJob(run=run)),
    ]
    if s.route == "icd":
        return [*collected, *calibration(),
                *(evaluation(choice) for choice in ("teacher", "student", "icd", "cascade"))]
    layout = RunLayout(run)
    config = TrainConfig(epochs=s.epochs, lr=s.lr, lora_r=s.lora_r, batch_size=s.batch_size,
                         **({"student": s.student} if s.student else {}))
    train = None if layout.has_trained_student() else TrainJob(run=run, config=config, resume=layout.has_checkpoint())
    return [*collected, Stage("fine-tune the student", train), *calibration(),
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
                "mean_episode_latency_s", "cost_per_episode_usd", "list_cost_per_episode_usd", "versus_teacher",
                "break_even", "prices", "counted_by")}})
    return rows


def price_notes(rows: list[dict[str, Any]]) -> list[str]:
    """One line per role saying what its $ are priced at (from the reports' recorded prices), and which tokenizer
    counted the tokens of a role no server reported them for (the reference teacher)."""
    notes: dict[str, str] = {}
    for row in rows:
        for role, price in (row.get("prices") or {}).items():
            if role not in notes:
                text = Price.model_validate(price).describe()
                counted = (row.get("counted_by") or {}).get(role)
                if counted:
                    text += f"; tokens counted with {counted}, as a model {role} would read and write them"
                notes[role] = f"{role}: {text}"
    return [notes[role] for role in sorted(notes, key=lambda r: (r != "teacher", r))]
