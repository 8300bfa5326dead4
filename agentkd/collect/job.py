"""`agentkd collect` as a library call: a CollectJob (pure data) is checked, prepared and run (`job.execute()`)."""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict, Field

from agentkd.collect.recovery import RecoveryInjector
from agentkd.collect.targets import GroupBy, TargetingError, TargetPlan, targeted_tasks
from agentkd.env.environment import Environment
from agentkd.env.loading import load_environment, resolve_env_spec
from agentkd.env.tasks import base_split
from agentkd.errors import AgentKDError, EnvironmentDefinitionError
from agentkd.jobs import SILENT, Progress, kept_note, run_interruptibly, stopping_cleanly
from agentkd.models.rate_limit import RateLimit
from agentkd.policies.base import Policy
from agentkd.policies.registry import BuildContext, build_policy, validate_policy_spec
from agentkd.records import Task, Trajectory
from agentkd.run.folder import RunFolder
from agentkd.sandbox.host import PythonSandbox, SandboxConfig
from agentkd.scale import Backend, run_episodes
from agentkd.scale.local import CollectStats
from agentkd.specs import EnvSpec, PolicySpec
from agentkd.version import __version__


class EpisodesJob(BaseModel):
    """What every job that runs episodes into a run folder has: where, which tasks, how many at once, limits."""

    model_config = ConfigDict(extra="forbid")

    run: Path
    split: str = "train"
    n: int | None = Field(None, ge=1, description="number of tasks (default: the whole split)")
    task_ids: list[str] | None = None
    """Exactly these tasks of the split, in this order (`n` then caps them)."""
    unseen: bool = False
    """Only tasks of the split the run has not collected (a probe of the student on train-side tasks)."""
    concurrency: int = Field(8, ge=1)
    max_steps: int | None = Field(None, ge=1, description="override the environment's step limit")
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig)
    backend: Backend = Field(default_factory=Backend)
    """Where episodes run (this process, or Ray workers); a run resumes on any backend."""
    rate_limit: RateLimit | None = None
    """A budget per API model the policy calls, shared by every episode (and every Ray worker) of the job."""

    def episode_options(self) -> dict[str, Any]:
        """The keyword arguments of `agentkd.scale.run_episodes` that come from the job."""
        return {"concurrency": self.concurrency, "backend": self.backend, "rate_limit": self.rate_limit,
                "agent_kwargs": {"max_steps": self.max_steps, "sandbox": self.sandbox}}

    def choose_tasks(self, env: Environment) -> list[Task]:
        """The tasks this job runs: `task_ids` (checked) or the split, without the run's collected tasks when
        `unseen`, capped at `n`."""
        tasks = env.tasks(self.split)
        if self.task_ids is not None:
            by_id = {t.id: t for t in tasks}
            missing = [tid for tid in self.task_ids if tid not in by_id]
            if missing:
                raise EnvironmentDefinitionError(f"the {self.split!r} split of {env.name!r} has no task {missing[0]!r} "
                                                 f"({len(missing)} of the {len(self.task_ids)} ids asked for are unknown)")
            tasks = [by_id[tid] for tid in self.task_ids]
        if self.unseen:
            collected = {t.task.id for t in RunFolder(self.run).iter_trajectories()}
            tasks = [t for t in tasks if t.id not in collected]
        return tasks[: self.n] if self.n is not None else tasks


class CollectJob(EpisodesJob):
    """Run a teacher over a split into RUN/trajectories.jsonl (re-running the same job resumes it).

    With `on_failures`, the tasks are chosen by targeted collection (agentkd.collect.targets) from that
    evaluation of the run: where the student failed or deferred, and nearby tasks, `budget` episodes at most."""

    env: EnvSpec
    teacher: PolicySpec
    samples_per_task: int = Field(1, ge=1)
    on_failures: str | None = None
    """Name of a train-side evaluation of the run (RUN/eval/<name>.jsonl) whose failures choose the tasks."""
    budget: int = Field(10, ge=1)
    """Teacher episodes of a targeted collection."""
    group_by: GroupBy = "template"
    """What "nearby" means in a targeted collection: same task template (else kind), same kind, or none."""
    recovery: float | None = Field(None, gt=0.0, le=1.0)
    """Error-recovery augmentation: this share of the episodes gets one slipped step before the teacher's
    recovery (agentkd.collect.recovery); None: clean teacher episodes."""

    def identity(self) -> dict[str, Any]:
        """What makes a run folder this job's (compared before the environment is loaded). A slice of a split is
        the same job as the split: `--split 'train[170:320]'` adds those tasks to a run collected on `train`."""
        return {"command": "collect", **self.env.identity(), "teacher": teacher_label(self.teacher),
                "split": base_split(self.split), "recovery": self.recovery}

    def prepare(self) -> PreparedCollect:
        """The job checked, its environment, tasks and teacher ready, run.json written (`prepare_collect`)."""
        return prepare_collect(self)

    def execute(self, progress: Progress = SILENT) -> CollectStats:
        """Prepare and run the collection, reported to `progress`; the totals of the episodes run now (a resumed
        collection's earlier ones are in the file). JobFailed (what is written is kept) or JobInterrupted."""
        prepared = self.prepare()
        if prepared.targets is not None:
            progress.note(prepared.targets.summary(prepared.folder.layout.targets(prepared.targets.eval)))
        progress.start("collect", prepared.total, _progress_text(CollectStats()))

        def update(_traj: Trajectory, stats: CollectStats) -> None:
            progress.update(stats.skipped + stats.done, text=_progress_text(stats))

        with stopping_cleanly(progress, kept_note(prepared.folder.trajectories_path, "trajectories"),
                              "finished trajectories are kept. Re-run the same command to resume."):
            stats = run_interruptibly(prepared.run(update))
        progress.update(prepared.total)
        progress.done()
        return stats


def _progress_text(stats: CollectStats) -> str:
    """Success, $ and errors of the episodes run now."""
    return f"new {stats.done}: success {stats.success_rate:.0%}  ${stats.cost_usd:.4f}  errors {stats.errors}"


@dataclass
class PreparedCollect:
    """A checked job with its environment, tasks, teacher and run folder (the folder record is written)."""

    job: CollectJob
    env: Environment
    tasks: list[Task]
    policy: Policy
    folder: RunFolder
    targets: TargetPlan | None = None
    """The targeted collection's choice (with `on_failures`)."""

    @property
    def total(self) -> int:
        return len(self.tasks) * self.job.samples_per_task

    async def run(self, on_trajectory: Callable[[Trajectory, CollectStats], None] | None = None) -> CollectStats:
        return await run_episodes(self.env, self.policy, self.tasks, self.folder, env_spec=self.job.env,
                                  samples_per_task=self.job.samples_per_task, on_trajectory=on_trajectory,
                                  **self.job.episode_options())


def teacher_label(spec: PolicySpec) -> str:
    """The teacher as run.json's identity names it: `reference` or its model string."""
    return str(spec.settings.get("model", spec.kind))


def prepare_collect(job: CollectJob) -> PreparedCollect:
    """Check everything a collection needs, cheapest first, and record the job in run.json.

    The run folder's identity is checked before the environment is loaded; an unavailable sandbox,
    a teacher that cannot run or an unknown split raise a clear AgentKDError before any episode."""
    job = job.model_copy(update={"env": resolve_env_spec(job.env), "teacher": validate_policy_spec(job.teacher)})
    folder = RunFolder(job.run)
    _upgrade_legacy_identity(folder, job.env)
    _upgrade_sliced_identity(folder, job.split)
    folder.check(job.identity())
    PythonSandbox(config=job.sandbox)  # refuses now when no sandbox can run
    env = load_environment(job.env)
    targets = None
    if job.on_failures is not None:
        if job.n is not None or job.task_ids is not None:
            raise TargetingError("a targeted collection chooses its own tasks: give --budget, not --n")
        tasks, targets = targeted_tasks(folder, env.tasks(job.split), job.split, job.on_failures, job.budget,
                                        job.group_by)
    else:
        tasks = job.choose_tasks(env)
    if job.teacher.kind == "reference" and env.reference_solver is None:
        raise EnvironmentDefinitionError(f"environment {env.name!r} has no reference solver; pass a model as --teacher")
    policy = build_policy(job.teacher, BuildContext(run=folder.layout))
    if job.recovery is not None:
        if job.backend.kind == "ray":
            raise AgentKDError("--recovery runs on the local backend only (Ray workers rebuild the teacher from its "
                               "spec, without the injected slips); drop --backend ray for this collection")
        policy = RecoveryInjector(policy, job.recovery)
    folder.start(
        identity={**job.identity(), "env_version": env.version},
        details={**job.model_dump(mode="json", exclude={"run", "env", "teacher", "sandbox", "backend"}),
                 "sandbox": job.sandbox.isolation, "exec_timeout": job.sandbox.timeout_s,
                 "backend": job.backend.kind,
                 "env": env.describe(), "versions": versions()},
        specs={"env": job.env, "teacher": job.teacher},
    )
    return PreparedCollect(job, env, tasks, policy, folder, targets)


def _upgrade_sliced_identity(folder: RunFolder, split: str) -> None:
    """An older run record names the slice it collected (`train[0:6]`); a run belongs to the split,
    so that other slices of it can be added: record a slice of this job's split as that split."""
    recorded = (folder.read_config() or {}).get("identity", {}).get("split")
    if isinstance(recorded, str) and recorded != base_split(recorded) == base_split(split):
        folder.amend_identity({"split": base_split(split)})


def _upgrade_legacy_identity(folder: RunFolder, env: EnvSpec) -> None:
    """agentkd 0.1 recorded `env` as typed and no `env_kwargs`: when it names the same environment, record it
    in today's form so that resuming works from any directory."""
    recorded = folder.read_config()
    if recorded is None or "env_kwargs" in recorded.get("identity", {}):
        return
    try:
        same = resolve_env_spec(recorded["identity"]["env"]).target == env.target
    except (AgentKDError, KeyError):
        same = False
    if same:
        folder.amend_identity(env.identity())


def versions() -> dict[str, str]:
    """Versions recorded with a run."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"agentkd": __version__, "python": platform.python_version()}
    for pkg in ("litellm", "langgraph", "transformers", "torch", "pydantic"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out
