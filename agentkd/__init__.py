"""agentkd: distil expensive LLM agents into cheap ones through their trajectories."""

__version__ = "0.1.0"

from agentkd.agent.cascaded import CascadedAgent  # noqa: E402
from agentkd.agent.loop import CodeActAgent  # noqa: E402
from agentkd.store import DemoStore, StepRecord, StoreError, StoreMismatchError  # noqa: E402
from agentkd.agent.parsing import ParsedAction, parse_action  # noqa: E402
from agentkd.env import (  # noqa: E402
    Environment,
    Grade,
    exact_match,
    f1_score,
    load_environment,
    normalize_text,
    normalized_match,
    numeric_match,
)
from agentkd.errors import (  # noqa: E402
    AgentKDError,
    EnvironmentDefinitionError,
    EnvironmentLoadError,
    ModelError,
    RunFolderError,
    SandboxError,
    SandboxUnavailableError,
    ToolDefinitionError,
    TransientModelError,
    UnknownSplitError,
)
from agentkd.models.client import Completion, ModelClient  # noqa: E402
from agentkd.evaluate import EvalReport, evaluate  # noqa: E402
from agentkd.policies import LLMPolicy, Policy, PolicyContext, PolicyOutput, ReferencePolicy, make_policy  # noqa: E402
from agentkd.policies.cascade import CascadePolicy  # noqa: E402
from agentkd.policies.icd import StudentPolicy  # noqa: E402
from agentkd.policies.self_consistent import SelfConsistentPolicy  # noqa: E402
from agentkd.train import (  # noqa: E402
    FilterConfig,
    FilterReport,
    TrainConfig,
    TrainConfigError,
    TrainingError,
    TrainResult,
    filter_trajectories,
    train_student,
)
from agentkd.records import SCHEMA_VERSION, Step, Task, Trajectory, Usage  # noqa: E402
from agentkd.tools import BM25Retriever, DenseRetriever, Document, Hit, Retriever, Tool, format_hits, tool  # noqa: E402
from agentkd.tools.sandbox import ExecutionResult, PythonSandbox, SandboxConfig  # noqa: E402

__all__ = [
    "__version__", "CascadedAgent", "CascadePolicy", "StudentPolicy", "SelfConsistentPolicy", "FilterConfig",
    "FilterReport", "TrainConfig", "TrainConfigError", "TrainingError", "TrainResult", "filter_trajectories",
    "train_student", "DemoStore", "StepRecord", "StoreError",
    "StoreMismatchError", "EvalReport", "evaluate", "CodeActAgent", "ParsedAction", "parse_action",
    "Environment", "Grade", "load_environment", "exact_match", "f1_score", "normalize_text", "normalized_match",
    "numeric_match", "AgentKDError", "EnvironmentDefinitionError", "EnvironmentLoadError", "ModelError",
    "RunFolderError", "SandboxError", "SandboxUnavailableError", "ToolDefinitionError", "TransientModelError", "UnknownSplitError",
    "Completion", "ModelClient", "LLMPolicy", "Policy", "PolicyContext", "PolicyOutput", "ReferencePolicy",
    "make_policy", "SCHEMA_VERSION", "Step", "Task", "Trajectory", "Usage", "BM25Retriever", "DenseRetriever",
    "Document", "Hit", "Retriever", "Tool", "format_hits", "tool", "ExecutionResult", "PythonSandbox", "SandboxConfig",
]
