"""The main job in one command: collect → index → train → evaluate the teacher, the student and the cascade."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel

from agentkd.errors import AgentKDError


class PipelineError(AgentKDError):
    """One stage of the pipeline failed; earlier stages' outputs are kept and re-running resumes."""


class PipelineSettings(BaseModel):
    """The embedded defaults of `agentkd pipeline` (sized for a 2-core CPU in well under 15 minutes)."""

    env: str = "factqa"
    teacher: str = "reference"
    train_tasks: int = 50
    epochs: float = 2.0
    lr: float = 1e-3
    lora_r: int = 32
    eval_tasks: int = 10
    samples: int = 3
    temperature: float = 0.7
    agreement: str = "result"
    max_tokens: int = 96
    concurrency: int = 2
    max_steps: int | None = None
    sandbox: str | None = None


@dataclass
class Stage:
    title: str
    args: list[str]
    report: str | None = None
    """RUN/eval/<report>.json this stage writes, for the results table."""


def stages(run: Path, s: PipelineSettings) -> list[Stage]:
    """The commands the pipeline runs, in order; each one resumes when re-run."""
    sandbox = ["--sandbox", s.sandbox] if s.sandbox else []
    common_eval = ["--run", str(run), "--n", str(s.eval_tasks), "--concurrency", str(s.concurrency), *sandbox,
                   *(["--max-steps", str(s.max_steps)] if s.max_steps else [])]
    student_eval = [*common_eval, "--student", "trained", "--max-tokens", str(s.max_tokens)]
    train = ["train", "--run", str(run), "--epochs", str(s.epochs), "--lr", str(s.lr), "--lora-r", str(s.lora_r)]
    if (run / "student" / "merged" / "config.json").is_file():
        train = []  # already trained: keep it
    elif any((run / "student" / "checkpoints").glob("checkpoint-*")):
        train.append("--resume")
    return [
        Stage("collect teacher trajectories", ["collect", "--env", s.env, "--teacher", s.teacher, "--run", str(run),
                                               "--n", str(s.train_tasks), *sandbox]),
        Stage("index the teacher's steps", ["index", "--run", str(run)]),
        Stage("fine-tune the student", train),
        Stage("evaluate the teacher", ["eval", "--policy", "teacher", *common_eval], "teacher"),
        Stage("evaluate the fine-tuned student", ["eval", "--policy", "student", *student_eval], "student-sft"),
        Stage("evaluate the cascade (fine-tuned student + teacher)",
              ["eval", "--policy", "cascade", *student_eval, "--samples", str(s.samples), "--temperature",
               str(s.temperature), "--agreement", s.agreement], "cascade-sft"),
    ]


def run_stage(stage: Stage, number: int, total: int, echo: object = print) -> None:
    """Run one stage as `python -m agentkd.cli ...` (its own progress bars show through)."""
    echo(f"\n[{number}/{total}] {stage.title}" + ("" if stage.args else ": already done, kept"))  # type: ignore[operator]
    if not stage.args:
        return
    code = subprocess.call([sys.executable, "-m", "agentkd.cli", *stage.args])
    if code != 0:
        raise PipelineError(f"stage {number} ({stage.title}) failed with exit code {code}; its output is above. "
                            "Fix the problem and re-run the same command: finished stages resume.")


def results(run: Path, all_stages: list[Stage]) -> list[dict[str, object]]:
    """One row per evaluated policy, read from RUN/eval/<report>.json."""
    rows = []
    for stage in all_stages:
        path = run / "eval" / f"{stage.report}.json"
        if stage.report and path.is_file():
            report = json.loads(path.read_text())
            rows.append({"policy": stage.report, **{k: report.get(k) for k in (
                "episodes", "success_rate", "success_ci95", "mean_steps", "student_share_of_steps", "deferral_rate",
                "mean_episode_latency_s")}})
    return rows
