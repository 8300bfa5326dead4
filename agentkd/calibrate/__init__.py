"""Calibrated deferral: choose a confidence cascade's threshold on a dev slice (`agentkd calibrate`).

Names are imported on first use, so that `agentkd.calibrate.settings` loads without the agent stack that running a
calibration needs."""

from __future__ import annotations

import importlib
from typing import Any

_MODULE_OF = {
    "CalibrateJob": "job", "CalibratedEvalJob": "job", "Calibration": "job", "calibrate": "job", "calibration_of": "job",
    "require_calibration": "job", "calibration_points": "job", "ConfidenceProbe": "probe", "same_result": "probe",
    "CalibrationPoint": "threshold", "ThresholdChoice": "threshold", "choose_threshold": "threshold",
    "threshold_curve": "threshold", "CalibrationSettings": "settings", "EpisodeCheck": "episodes",
    "EpisodeChoice": "episodes", "choose_by_episodes": "episodes",
}
__all__ = list(_MODULE_OF)


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'agentkd.calibrate' has no attribute {name!r}")
    return getattr(importlib.import_module(f"agentkd.calibrate.{_MODULE_OF[name]}"), name)
