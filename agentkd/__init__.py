"""agentkd: distil expensive LLM agents into cheap ones through their trajectories.

The public API is re-exported here and imported lazily on first use, so that `import agentkd`
(and `agentkd --help`) stays fast: litellm, LangGraph, FAISS and torch load only when needed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from agentkd.version import __version__

_EXPORTS: dict[str, tuple[str, ...]] = {
    "agentkd.agent.cascaded": ("CascadedAgent",),
    "agentkd.agent.loop": ("CodeActAgent",),
    "agentkd.store": ("DemoStore", "StepRecord", "StoreError", "StoreMismatchError"),
    "agentkd.codeact": ("ParsedAction", "parse_action", "normalize_code"),
    "agentkd.env": ("Environment", "Grade", "exact_match", "f1_score", "load_environment", "normalize_text",
                    "normalized_match", "numeric_match", "resolve_env_spec"),
    "agentkd.errors": ("AgentKDError", "CalibrationError", "EnvironmentDefinitionError", "EnvironmentLoadError",
                       "GatewayError", "GraderError", "JobFailed", "JobInterrupted", "ModelError", "RunFolderError",
                       "SandboxError", "SandboxStartError", "SandboxUnavailableError",
                       "ToolDefinitionError",
                       "TransientModelError", "UnknownSplitError", "StateNotBranchableError"),
    "agentkd.gateway": ("EpisodeBook", "Gateway", "GatewaySettings", "TrafficCalibration", "calibrate_traffic"),
    "agentkd.models.client": ("ChatReply", "Completion", "ModelClient"),
    "agentkd.models.rate_limit": ("LocalRateLimiter", "RateLimit", "rate_limited"),
    "agentkd.scale": ("Backend", "BackendError", "run_episodes"),
    "agentkd.evaluate": ("EvalReport", "evaluate"),
    "agentkd.calibrate": ("CalibrateJob", "Calibration", "CalibrationPoint", "ThresholdChoice", "choose_threshold"),
    "agentkd.policies": ("Policy", "PolicyContext", "PolicyOutput", "BuildContext", "UnknownPolicyError",
                         "build_policy", "make_policy", "policy_kinds", "register_policy", "student_spec",
                         "teacher_spec", "validate_policy_spec"),
    "agentkd.policies.llm": ("LLMPolicy",),
    "agentkd.policies.reference": ("ReferencePolicy",),
    "agentkd.policies.cascade": ("CascadePolicy",),
    "agentkd.policies.student": ("StudentPolicy",),
    "agentkd.policies.self_consistent": ("SelfConsistentPolicy",),
    "agentkd.train": ("FilterConfig", "FilterReport", "TrainConfig", "TrainConfigError", "TrainingError",
                      "TrainResult", "filter_trajectories", "train_student"),
    "agentkd.train.dataset_export": ("DatasetExportError", "export_dataset", "load_exported"),
    "agentkd.train.serving": ("StudentServer", "StudentServerError", "student_server"),
    "agentkd.rounds.settings": ("ImproveSettings", "RoundsError"),
    "agentkd.rounds.stages": ("RoundStage", "next_stage"),
    "agentkd.rounds.summary": ("round_rows",),
    "agentkd.collect.targets": ("TargetPlan", "TargetingError", "select_targets"),
    "agentkd.records": ("SCHEMA_VERSION", "Injection", "Resample", "Step", "Task", "ToolCall", "Trajectory", "Usage",
                        "Vote"),
    "agentkd.run": ("RunFolder", "RunLayout"),
    "agentkd.specs": ("EnvSpec", "PolicySpec", "SpecError"),
    "agentkd.tools": ("BM25Retriever", "DenseRetriever", "Document", "Hit", "Retriever", "Tool", "format_hits",
                      "tool"),
    "agentkd.sandbox.host": ("ExecutionResult", "PythonSandbox", "SandboxConfig"),
    "agentkd.tool_calls": ("normalize_tool_calls", "same_tool_calls"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = ["__version__", *_MODULE_OF]


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'agentkd' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # static analysers see the real names
    from agentkd.agent.cascaded import CascadedAgent
    from agentkd.agent.loop import CodeActAgent
    from agentkd.calibrate import CalibrateJob, Calibration, CalibrationPoint, ThresholdChoice, choose_threshold
    from agentkd.codeact import ParsedAction, normalize_code, parse_action
    from agentkd.collect.targets import TargetingError, TargetPlan, select_targets
    from agentkd.env import (
        Environment,
        Grade,
        exact_match,
        f1_score,
        load_environment,
        normalize_text,
        normalized_match,
        numeric_match,
        resolve_env_spec,
    )
    from agentkd.errors import (
        AgentKDError,
        CalibrationError,
        EnvironmentDefinitionError,
        EnvironmentLoadError,
        GatewayError,
        GraderError,
        JobFailed,
        JobInterrupted,
        ModelError,
        RunFolderError,
        SandboxError,
        SandboxStartError,
        SandboxUnavailableError,
        StateNotBranchableError,
        ToolDefinitionError,
        TransientModelError,
        UnknownSplitError,
    )
    from agentkd.evaluate import EvalReport, evaluate
    from agentkd.gateway import EpisodeBook, Gateway, GatewaySettings, TrafficCalibration, calibrate_traffic
    from agentkd.models.client import ChatReply, Completion, ModelClient
    from agentkd.models.rate_limit import LocalRateLimiter, RateLimit, rate_limited
    from agentkd.policies import (
        BuildContext,
        Policy,
        PolicyContext,
        PolicyOutput,
        UnknownPolicyError,
        build_policy,
        make_policy,
        policy_kinds,
        register_policy,
        student_spec,
        teacher_spec,
        validate_policy_spec,
    )
    from agentkd.policies.cascade import CascadePolicy
    from agentkd.policies.llm import LLMPolicy
    from agentkd.policies.reference import ReferencePolicy
    from agentkd.policies.self_consistent import SelfConsistentPolicy
    from agentkd.policies.student import StudentPolicy
    from agentkd.records import SCHEMA_VERSION, Injection, Resample, Step, Task, ToolCall, Trajectory, Usage, Vote
    from agentkd.rounds.settings import ImproveSettings, RoundsError
    from agentkd.rounds.stages import RoundStage, next_stage
    from agentkd.rounds.summary import round_rows
    from agentkd.run import RunFolder, RunLayout
    from agentkd.sandbox.host import ExecutionResult, PythonSandbox, SandboxConfig
    from agentkd.scale import Backend, BackendError, run_episodes
    from agentkd.specs import EnvSpec, PolicySpec, SpecError
    from agentkd.store import DemoStore, StepRecord, StoreError, StoreMismatchError
    from agentkd.tool_calls import normalize_tool_calls, same_tool_calls
    from agentkd.tools import BM25Retriever, DenseRetriever, Document, Hit, Retriever, Tool, format_hits, tool
    from agentkd.train import (
        FilterConfig,
        FilterReport,
        TrainConfig,
        TrainConfigError,
        TrainingError,
        TrainResult,
        filter_trajectories,
        train_student,
    )
    from agentkd.train.dataset_export import DatasetExportError, export_dataset, load_exported
    from agentkd.train.serving import StudentServer, StudentServerError, student_server
