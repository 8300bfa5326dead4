"""Exception classes raised by agentkd. Every error names the problem and what to do."""

from __future__ import annotations


class AgentKDError(Exception):
    """Base class for every error agentkd raises on purpose."""


class EnvironmentDefinitionError(AgentKDError):
    """An environment definition is invalid (raised at load time, never mid-run)."""


class EnvironmentLoadError(AgentKDError):
    """An environment spec (path, path:attr, module:attr) could not be loaded."""


class ToolDefinitionError(EnvironmentDefinitionError):
    """A tool lacks type hints or a docstring, or has an unsupported signature."""


class GraderError(AgentKDError):
    """An environment's grader raised, or returned something other than a score in [0, 1] (raised mid-run:
    it would grade every episode the same way, so collections stop on it)."""


class UnknownSplitError(AgentKDError):
    """A split was asked for that the environment does not declare."""


class ModelError(AgentKDError):
    """A model call failed permanently (bad key, unknown model, bad request).

    `fatal` errors (bad key, unknown model, no permission) would fail every episode the
    same way, so collectors stop on them instead of recording one error per episode.
    """

    def __init__(self, message: str, fatal: bool = False) -> None:
        super().__init__(message)
        self.fatal = fatal


class TransientModelError(ModelError):
    """A model call kept failing with transient errors after all retries."""


class StateNotBranchableError(AgentKDError):
    """An episode's state cannot be branched (copied) for a trial run: the environment declares
    branchable=False, its fork_state failed, or the state cannot be deep-copied."""


class SandboxError(AgentKDError):
    """The Python worker could not be started or talked to."""


class SandboxUnavailableError(SandboxError):
    """No isolation mechanism is available and unsandboxed execution was not asked for."""


class SandboxStartError(SandboxUnavailableError):
    """The sandbox could not start at all (bwrap refused, or the interpreter could not run inside it).

    Every episode would fail the same way, so collections and evaluations stop on it. `detail` holds what
    the sandbox itself (bwrap, or the interpreter) wrote on stderr."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


class RunFolderError(AgentKDError):
    """A run folder is inconsistent with the command (different env or teacher)."""


class JobFailed(AgentKDError):
    """A job stopped on an error part-way; the message adds what it kept and how to resume."""


class JobInterrupted(AgentKDError):
    """A job was stopped by Ctrl-C; the message says what is kept and how to go on."""


class CalibrationError(AgentKDError):
    """A calibration cannot give a sound threshold (a policy without confidence deferral, tasks the student has
    seen, no scored steps)."""


class GatewayError(AgentKDError):
    """`agentkd gateway` could not start or serve (a bad setting, a run folder of another job, a port in use)."""
