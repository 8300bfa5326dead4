"""`agentkd calibrate` as a library call: choose a confidence cascade's threshold on a dev slice."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel, Field

from agentkd.calibrate.episodes import EpisodeCheck, EpisodeChoice, check_name, choose_by_episodes, with_threshold
from agentkd.calibrate.probe import ConfidenceProbe
from agentkd.calibrate.settings import CalibrationReference, CalibrationSettings
from agentkd.calibrate.threshold import CalibrationPoint, ThresholdChoice, choose_threshold, threshold_curve
from agentkd.collect.job import EpisodesJob
from agentkd.env.environment import Environment
from agentkd.env.loading import load_environment
from agentkd.errors import CalibrationError
from agentkd.evaluate.job import EvalJob, without_addresses
from agentkd.evaluate.metrics import EvalReport
from agentkd.jobs import SILENT, Progress, kept_note, run_interruptibly, stopping_cleanly
from agentkd.policies.cascade import CascadePolicy
from agentkd.policies.names import PolicyNameError, policy_name
from agentkd.policies.registry import BuildContext, build_policy, validate_policy_spec
from agentkd.records import Task, Trajectory
from agentkd.run.folder import RunFolder
from agentkd.run.layout import RunLayout
from agentkd.sampling import copy_field
from agentkd.sandbox.host import PythonSandbox
from agentkd.scale import run_episodes
from agentkd.scale.local import CollectStats
from agentkd.specs import EnvSpec, PolicySpec


class Calibration(BaseModel):
    """What `agentkd calibrate` wrote to RUN/calibration/<name>.json."""

    name: str
    split: str
    target: float
    tasks: int
    steps: int
    chosen: ThresholdChoice
    curve: list[ThresholdChoice]
    policy: PolicySpec
    """The cascade with the chosen threshold: evaluate or deploy it as it is."""
    policy_name: str | None
    """Its name (None when no policy name describes it: give the spec itself)."""
    reference: CalibrationReference = "all"
    """Whose steps scored the student: the teacher's `solved` episodes, or `all` of them."""
    episodes: EpisodeChoice | None = None
    """The thresholds checked by running the cascade on the dev tasks, when asked (`check_thresholds`); when one
    qualified, `policy` holds it rather than `chosen`'s."""

    @property
    def threshold(self) -> float:
        """The threshold of the calibrated policy."""
        return float(self.policy.settings["threshold"])

    def describe(self) -> str:
        """How the threshold was chosen, in one line."""
        if self.episodes is not None and self.episodes.chosen is not None:
            found, by = self.episodes.chosen, self.episodes
            return (f"chosen on {by.episodes} episodes of {self.split}: success {found.successes}/{found.episodes} "
                    f"against the teacher's {by.teacher_successes}, student share {found.student_share:.0%}, "
                    f"${found.cost_per_episode_usd:.5f} / episode")
        return (f"calibrated on {self.split}: student share {self.chosen.student_share:.0%} at an estimated step "
                f"accuracy of {self.chosen.step_accuracy:.1%}")


class CalibrateJob(EpisodesJob):
    """Run the teacher over a dev slice with the cascade's student scoring each step beside it, then pick the
    threshold for `target` (re-running resumes the episodes; another target reuses them)."""

    policy: PolicySpec
    """A cascade (its agreement is set to confidence)."""
    split: str = "train"
    target: float = copy_field(CalibrationSettings, "target")
    reference: CalibrationReference = copy_field(CalibrationSettings, "reference")
    check_thresholds: list[float] = Field(default_factory=list)
    """Also run the cascade on the dev tasks at these thresholds and at the step-calibrated one, and choose the
    cheapest whose success stays within `margin` of the teacher's on the same tasks (`agentkd.calibrate.episodes`)."""
    margin: float = copy_field(CalibrationSettings, "margin")
    name: str | None = None
    """RUN/calibration/<name>.json; default: the confidence cascade's name without its threshold."""
    concurrency: int = Field(1, ge=1)

    def confidence_spec(self) -> PolicySpec:
        """The policy as a confidence cascade (CalibrationError for another kind)."""
        spec = validate_policy_spec(self.policy)
        if spec.kind != "cascade":
            raise CalibrationError(f"calibrate picks a cascade's confidence threshold; {spec.kind!r} is not a "
                                   "cascade (use --policy cascade-confidence, with parts such as -k2 or -sft)")
        return validate_policy_spec(PolicySpec(kind="cascade", settings={**spec.settings, "agreement": "confidence"}))

    def calibration_name(self) -> str:
        if self.name:
            return self.name
        settings = {k: v for k, v in self.confidence_spec().settings.items() if k != "threshold"}
        return _name_or_none(PolicySpec(kind="cascade", settings=settings)) or "cascade-confidence"

    def identity(self) -> dict[str, Any]:
        """What makes existing calibration episodes this job's: the policy less its threshold, the split, the step
        limit (the target and the reference only choose among the scored steps)."""
        settings = {k: v for k, v in self.confidence_spec().settings.items() if k != "threshold"}
        return {"policy": without_addresses({"kind": "cascade", "settings": settings}), "split": self.split,
                "max_steps": self.max_steps}

    def execute(self, progress: Progress = SILENT) -> Calibration:
        """Run (or resume) the dev-slice episodes, choose the threshold, write and return the calibration."""
        prepared = prepare_calibration(self)
        progress.start(f"calibrate {prepared.name}", len(prepared.tasks), "scoring the student's steps")

        def update(_traj: Trajectory, stats: CollectStats) -> None:
            progress.update(stats.skipped + stats.done, text=f"new {stats.done}")

        layout = RunLayout(self.run)
        with stopping_cleanly(progress, kept_note(layout.calibration_trajectories(prepared.name), "episodes"),
                              "finished episodes are kept. Re-run the same command to resume."):
            trajs = run_interruptibly(prepared.run(update))
        progress.update(len(prepared.tasks))
        progress.done()
        calibration = calibrate(trajs, prepared.spec, prepared.name, self.split, self.target, self.reference)
        if self.check_thresholds:
            calibration = self.check_episodes(calibration, trajs, prepared.tasks, progress)
        layout.calibration_report(prepared.name).write_text(calibration.model_dump_json(indent=2))
        return calibration

    def check_episodes(self, calibration: Calibration, trajs: list[Trajectory], tasks: list[Task],
                       progress: Progress = SILENT) -> Calibration:
        """Evaluate the cascade on `tasks` at each checked threshold (resumable evaluations in RUN/eval) and keep
        the cheapest whose success is within `margin` of the teacher's episodes `trajs`."""
        episode_options = {k: getattr(self, k) for k in EpisodesJob.model_fields}
        checks = []
        for threshold in sorted({*self.check_thresholds, calibration.chosen.threshold}):
            name = check_name(calibration.name, threshold)
            job = EvalJob(**{**episode_options, "split": self.split, "n": None, "unseen": False,
                             "task_ids": [t.id for t in tasks]},
                          policy=with_threshold(calibration.policy, threshold), name=name)
            report = job.execute(progress)
            checks.append(EpisodeCheck(threshold=threshold, episodes=report.episodes, successes=report.successes,
                                       student_share=report.student_share_of_steps,
                                       cost_per_episode_usd=report.cost_per_episode_usd, evaluation=name))
        choice = choose_by_episodes(checks, sum(t.success for t in trajs), len(trajs), self.margin)
        if choice.chosen is None:
            return calibration.model_copy(update={"episodes": choice})
        policy = with_threshold(calibration.policy, choice.chosen.threshold)
        return calibration.model_copy(update={"episodes": choice, "policy": policy,
                                              "policy_name": _name_or_none(policy)})


def calibration_points(trajs: list[Trajectory], reference: CalibrationReference = "all") -> list[CalibrationPoint]:
    """The scored steps of calibration episodes (`solved`: of the episodes the teacher solved only)."""
    return [CalibrationPoint(task_id=t.task.id, step=s.index, confidence=s.vote.confidence,
                             matches_teacher=bool(s.vote.matches_teacher))
            for t in trajs if reference == "all" or t.success
            for s in t.steps if s.vote is not None and s.vote.matches_teacher is not None]


def calibrate(trajs: list[Trajectory], spec: PolicySpec, name: str, split: str, target: float,
              reference: CalibrationReference = "all") -> Calibration:
    """The threshold for `target` chosen on the scored steps of `trajs` (those of the teacher's solved episodes, or
    all), and the cascade spec that holds it."""
    points = calibration_points(trajs, reference)
    if not points and reference == "solved":
        reference = "all"  # the teacher solved no dev task: its steps are all there is to match
        points = calibration_points(trajs, reference)
    if not points:
        raise CalibrationError(f"the calibration episodes on {split} hold no scored step (every episode failed "
                               "before its first step?): see the errors in the calibration's episodes")
    chosen = choose_threshold(points, target)
    calibrated = validate_policy_spec(PolicySpec(kind="cascade", settings={**spec.settings,
                                                                           "threshold": chosen.threshold}))
    return Calibration(name=name, split=split, target=target, tasks=len({p.task_id for p in points}),
                       steps=len(points), chosen=chosen, curve=threshold_curve(points), policy=calibrated,
                       policy_name=_name_or_none(calibrated), reference=reference)


def _name_or_none(spec: PolicySpec) -> str | None:
    try:
        return policy_name(spec)
    except PolicyNameError:
        return None


@dataclass
class PreparedCalibration:
    job: CalibrateJob
    name: str
    spec: PolicySpec
    env: Environment
    env_spec: EnvSpec
    tasks: list[Task]
    probe: ConfidenceProbe
    folder: RunFolder

    async def run(self, on_trajectory: Callable[[Trajectory, CollectStats], None] | None = None) -> list[Trajectory]:
        options = self.job.episode_options()
        options.pop("backend")  # the probe has no spec to rebuild on Ray workers: it runs here
        options.pop("rate_limit")
        await run_episodes(self.env, self.probe, self.tasks, self.folder, on_trajectory=on_trajectory, **options)
        wanted = {t.id for t in self.tasks}
        return [t for t in self.folder.iter_trajectories() if t.task.id in wanted and t.sample_index == 0]


def prepare_calibration(job: CalibrateJob) -> PreparedCalibration:
    """Check the policy, the dev slice (no task the student learnt from or retrieves), the sandbox; build."""
    spec = job.confidence_spec()
    name = job.calibration_name()
    run = RunFolder(job.run)
    env_spec = run.env_spec()  # "not a run folder" when there is none
    layout = RunLayout(job.run)
    env = load_environment(env_spec)
    tasks = job.choose_tasks(env)
    if not tasks:
        raise CalibrationError(f"the split {job.split!r} has no task to calibrate on")
    collected = {t.task.id for t in run.iter_trajectories()}
    seen = [t.id for t in tasks if t.id in collected]
    if seen:
        raise CalibrationError(
            f"{len(seen)} of the {len(tasks)} tasks of {job.split!r} (e.g. {seen[0]!r}) are in the run's collected "
            "trajectories, which the student retrieves as demonstrations or was fine-tuned on: its confidence there "
            "says nothing about new tasks. Calibrate on a slice the run has not collected (a later train[a:b]).")
    folder = RunFolder(job.run, trajectories=layout.calibration_trajectories(name),
                       config=layout.calibration_settings(name))
    folder.check(job.identity())  # another split or policy under this name: pass --name
    PythonSandbox(config=job.sandbox)
    cascade = build_policy(spec, BuildContext(run=layout))
    assert isinstance(cascade, CascadePolicy)
    folder.start(identity=job.identity(), details={"tasks": len(tasks), "policy": spec.model_dump(mode="json"),
                                                   "target": job.target})
    return PreparedCalibration(job, name, spec, env, env_spec, tasks, ConfidenceProbe(cascade.student, cascade.teacher),
                               folder)


def calibration_of(run: str | Path, name: str) -> Calibration | None:
    """The calibration RUN/calibration/<name>.json holds (None when there is none)."""
    path = RunLayout(run).calibration_report(name)
    return Calibration.model_validate_json(path.read_text()) if path.is_file() else None


def require_calibration(run: str | Path, name: str) -> Calibration:
    """The calibration RUN/calibration/<name>.json holds; CalibrationError naming the run's calibrations (or saying
    to run `agentkd calibrate` first) when there is none."""
    found = calibration_of(run, name)
    if found is None:
        folder = RunLayout(run).calibration_dir
        known = sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []
        raise CalibrationError(f"no calibration {name!r} in {folder}" + (f" (there is {', '.join(known)})" if known
                               else "; run `agentkd calibrate` first"))
    return found


class CalibratedEvalJob(BaseModel):
    """An evaluation of a confidence cascade whose threshold a calibration of the same run chose (read when it runs,
    so a plan can hold it before the calibration has run)."""

    evaluation: EvalJob
    calibration: str
    """RUN/calibration/<calibration>.json."""

    def execute(self, progress: Progress = SILENT) -> EvalReport:
        """The evaluation with the calibrated threshold (CalibrationError when the calibration has not run)."""
        found = require_calibration(self.evaluation.run, self.calibration)
        policy = self.evaluation.policy
        calibrated = with_threshold(policy, found.threshold)
        progress.note(f"the cascade defers below confidence {found.threshold:g} ({found.describe()})")
        return self.evaluation.model_copy(update={"policy": calibrated}).execute(progress)
