"""`agentkd eval` as a library call: an EvalJob (pure data) is checked, prepared and run (`job.execute()`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from pydantic import Field

from agentkd.collect.job import EpisodesJob
from agentkd.env.environment import Environment
from agentkd.env.loading import load_environment
from agentkd.evaluate.metrics import EvalReport, Prices
from agentkd.evaluate.prices import Price
from agentkd.evaluate.runner import eval_folder, evaluate
from agentkd.jobs import SILENT, Progress, kept_note, run_interruptibly, stopping_cleanly
from agentkd.policies.base import Policy
from agentkd.policies.names import policy_name
from agentkd.policies.registry import BuildContext, build_policy, teacher_spec, validate_policy_spec
from agentkd.records import Task, Trajectory
from agentkd.run.folder import RunFolder
from agentkd.run.layout import RunLayout
from agentkd.sandbox.host import PythonSandbox
from agentkd.scale.local import CollectStats
from agentkd.specs import EnvSpec, PolicySpec


class EvalJob(EpisodesJob):
    """Evaluate a policy on a split into RUN/eval/<name>.jsonl and RUN/eval/<name>.json (re-running resumes)."""

    policy: PolicySpec
    name: str
    split: str = "test"
    concurrency: int = Field(2, ge=1)
    """Episodes run at once (per worker with --backend ray)."""
    prices: dict[str, Price] = Field(default_factory=dict)
    """role -> its price stated by hand (`--teacher-price`, `--student-price`); a role left out is priced from
    litellm's cost map for an API model, else at the stated default pair (`agentkd.evaluate.prices`)."""

    def identity(self) -> dict[str, Any]:
        """What makes an existing evaluation of this name the same job (resuming is refused otherwise). Where a
        model is served (`api_base`) is not part of it: the same model served on another port resumes."""
        return {"policy": without_addresses(self.policy.model_dump(mode="json")), "split": self.split,
                "max_steps": self.max_steps}

    def prepare(self) -> PreparedEval:
        """The job checked, its environment, tasks and policy ready (`prepare_eval`)."""
        return prepare_eval(self)

    def execute(self, progress: Progress = SILENT) -> EvalReport:
        """Prepare and run the evaluation, reported to `progress`, then note each rate-limited model's totals; the
        report (RUN/eval/<name>.json). JobFailed (finished episodes are kept) or JobInterrupted."""
        prepared = self.prepare()
        progress.start(f"eval {self.name}", len(prepared.tasks), _progress_text(CollectStats()))
        seen: list[CollectStats] = []

        def update(_traj: Trajectory, stats: CollectStats) -> None:
            seen[:] = [stats]
            progress.update(stats.skipped + stats.done, text=_progress_text(stats))

        with stopping_cleanly(progress, kept_note(RunLayout(self.run).eval_trajectories(self.name), "episodes"),
                              "finished episodes are kept. Re-run the same command to resume."):
            report = run_interruptibly(prepared.run(update))
        progress.update(len(prepared.tasks))
        progress.done()
        for note in seen[0].rate_limit_notes(self.rate_limit is not None) if seen else []:
            progress.note(note)
        return report


def _progress_text(stats: CollectStats) -> str:
    """Success of the episodes run now (a resumed evaluation's earlier ones are in its report)."""
    return f"new {stats.done}: success {stats.success_rate:.0%}"


def without_addresses(data: Any) -> Any:
    """`data` with every `api_base` key left out, at any depth (a cascade's teacher and student have their own)."""
    if isinstance(data, dict):
        return {k: without_addresses(v) for k, v in data.items() if k != "api_base"}
    if isinstance(data, list):
        return [without_addresses(v) for v in data]
    return data


@dataclass
class PreparedEval:
    job: EvalJob
    env: Environment
    tasks: list[Task]
    policy: Policy
    env_spec: EnvSpec

    async def run(self, on_trajectory: Callable[[Trajectory, CollectStats], None] | None = None) -> EvalReport:
        job = self.job
        prices: Prices = dict(job.prices)
        return await evaluate(self.env, self.policy, self.tasks, job.run, job.name, job.split, job.identity(),
                              prices=prices, details={"policy": job.policy.model_dump(mode="json")},
                              on_trajectory=on_trajectory, env_spec=self.env_spec,
                              **job.episode_options())


def prepare_eval(job: EvalJob) -> PreparedEval:
    """Check the run, the evaluation's identity (before anything slow), the sandbox; load and build."""
    job = job.model_copy(update={"policy": validate_policy_spec(job.policy)})
    folder = RunFolder(job.run)
    env_spec = folder.env_spec()  # "not a run folder" when there is none
    evaluation = eval_folder(job.run, job.name)
    recorded = (evaluation.read_config() or {}).get("identity")
    if recorded and recorded != job.identity() and without_addresses(recorded) == job.identity():
        evaluation.amend_identity(job.identity())  # recorded by an agentkd that kept the server address in it
    evaluation.check(job.identity())
    PythonSandbox(config=job.sandbox)
    env = load_environment(env_spec)
    tasks = job.choose_tasks(env)
    policy = build_policy(job.policy, BuildContext(run=folder.layout))
    return PreparedEval(job, env, tasks, policy, env_spec)


def run_teacher_spec(run: str | Path, teacher: str | None = None, api_base: str | None = None) -> PolicySpec:
    """The teacher of an evaluation: `teacher` when given, else the one the run was collected with."""
    if teacher:
        return teacher_spec(teacher, **({"api_base": api_base} if api_base else {}))
    folder = RunFolder(run)
    recorded = folder.teacher_spec() or teacher_spec(folder.identity()["teacher"])
    if api_base and recorded.kind == "llm":
        recorded = PolicySpec(kind="llm", settings={**recorded.settings, "api_base": api_base})
    return recorded


def default_eval_name(spec: PolicySpec, run: str | Path | None = None) -> str:
    """RUN/eval/<name> when none is given: the policy's short name (`cascade`, `student-sft`, `cascade-dpo`, ...).
    An evaluation of a `trained-dpo` student that an earlier agentkd named `-sft` keeps that name, so it resumes."""
    name = policy_name(spec, detail=False)
    if run is not None and name.endswith("-dpo"):
        earlier = name.removesuffix("-dpo") + "-sft"
        recorded = ((eval_folder(run, earlier).read_config() or {}).get("identity") or {}).get("policy")
        if recorded is not None and without_addresses(recorded) == without_addresses(spec.model_dump(mode="json")):
            return earlier
    return name
