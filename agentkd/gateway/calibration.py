"""The cascade gateway's threshold chosen from its graded traffic (`agentkd calibrate --run RUN --traffic`).

Every step the cascade gateway answered records the student's confidence. A step the teacher answered also records
the student's reply, which would have been right when it makes the teacher's calls (or, with no call, says the
teacher's text). A step the student answered is counted right when its episode was graded a success and wrong when
it was graded a failure: a failed episode's student steps are all suspect, so the estimate errs towards the teacher.
Ungraded episodes are left out. The threshold is then chosen as `agentkd calibrate` chooses it on a dev slice: the
largest student share whose estimated step accuracy stays at or above the target.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from pydantic import BaseModel

from agentkd.calibrate.threshold import CalibrationPoint, ThresholdChoice, choose_threshold, threshold_curve
from agentkd.errors import CalibrationError
from agentkd.evaluate.runner import eval_folder
from agentkd.gateway.settings import CASCADE_EVAL
from agentkd.models.tool_text import same_reply
from agentkd.records import Step, Trajectory
from agentkd.run.layout import RunLayout


class TrafficCalibration(BaseModel):
    """What `agentkd calibrate --traffic` wrote to RUN/calibration/gateway/traffic.json."""

    target: float
    episodes: int
    """Graded episodes whose steps were scored."""
    ungraded: int
    """Episodes left out because no feedback graded them."""
    steps: int
    thresholds_in_use: list[float]
    """The thresholds the scored traffic was answered under."""
    chosen: ThresholdChoice
    curve: list[ThresholdChoice]


def traffic_points(trajectories: Iterable[Trajectory]) -> tuple[list[CalibrationPoint], int]:
    """The scored steps of graded cascade episodes, and how many episodes were left out ungraded."""
    points: list[CalibrationPoint] = []
    ungraded = 0
    for traj in trajectories:
        if not traj.graded:
            ungraded += 1
            continue
        for step in traj.steps:
            if step.vote is None or step.vote.mode != "confidence":
                continue
            points.append(CalibrationPoint(task_id=traj.task.id, step=step.index, confidence=step.vote.confidence,
                                           matches_teacher=_right(step, traj.success)))
    return points, ungraded


def _right(step: Step, episode_success: bool) -> bool:
    if step.role == "student":
        return episode_success
    candidates = step.candidates or []
    return bool(candidates) and step.vote is not None and step.vote.confidence is not None and same_reply(
        candidates[0], step.output, step.tool_calls)


def calibrate_traffic(run: str | Path, target: float) -> TrafficCalibration:
    """Choose the cascade gateway's threshold for `target` from RUN's graded traffic and write
    RUN/calibration/gateway/traffic.json. CalibrationError when there is nothing graded to choose from."""
    layout = RunLayout(run)
    path = layout.eval_trajectories(CASCADE_EVAL)
    if not path.is_file():
        raise CalibrationError(f"{run} has no cascade gateway traffic ({path} is missing): serve with "
                               f"`agentkd gateway --cascade {run} --student MODEL` and grade episodes through "
                               "POST /v1/feedback first")
    trajectories = list(eval_folder(run, CASCADE_EVAL).iter_trajectories())
    points, ungraded = traffic_points(trajectories)
    if not points:
        raise CalibrationError(
            f"none of the {len(trajectories)} cascade episodes of {run} is graded ({ungraded} ungraded): grade them "
            "through POST /v1/feedback ({\"episode_id\": ..., \"score\": ...}) before calibrating on them")
    in_use = sorted({float(s.vote.threshold) for t in trajectories if t.graded for s in t.steps
                     if s.vote is not None and s.vote.threshold is not None})
    calibration = TrafficCalibration(target=target, episodes=len({p.task_id for p in points}), ungraded=ungraded,
                                     steps=len(points), thresholds_in_use=in_use,
                                     chosen=choose_threshold(points, target), curve=threshold_curve(points))
    out = layout.traffic_calibration
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(calibration.model_dump_json(indent=2) + "\n")
    return calibration


def traffic_threshold(run: str | Path) -> float:
    """The threshold `agentkd calibrate --run RUN --traffic` chose (CalibrationError when it has not run)."""
    path = RunLayout(run).traffic_calibration
    if not path.is_file():
        raise CalibrationError(f"{run} has no traffic calibration ({path} is missing): run "
                               f"`agentkd calibrate --run {run} --traffic` first")
    return TrafficCalibration.model_validate_json(path.read_text()).chosen.threshold
