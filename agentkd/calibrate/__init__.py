"""Calibrated deferral: choose a confidence cascade's threshold on a dev slice (`agentkd calibrate`)."""

from agentkd.calibrate.job import CalibrateJob, Calibration, calibrate, calibration_of, calibration_points
from agentkd.calibrate.probe import ConfidenceProbe, same_result
from agentkd.calibrate.threshold import CalibrationPoint, ThresholdChoice, choose_threshold, threshold_curve

__all__ = ["CalibrateJob", "Calibration", "CalibrationPoint", "ConfidenceProbe", "ThresholdChoice", "calibrate",
           "calibration_of", "calibration_points", "choose_threshold", "same_result", "threshold_curve"]
