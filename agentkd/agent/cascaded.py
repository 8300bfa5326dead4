"""The deployable cascaded agent: ICD student + self-consistency cascade + teacher, as a library."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from agentkd.agent.loop import CodeActAgent
from agentkd.collect.run_folder import RunFolder
from agentkd.env.environment import Environment
from agentkd.env.loading import load_environment
from agentkd.models.client import ModelClient
from agentkd.policies import make_policy
from agentkd.policies.agreement import AgreementMode
from agentkd.policies.base import Policy
from agentkd.policies.cascade import CascadePolicy
from agentkd.policies.icd import StudentPolicy
from agentkd.records import Task, Trajectory
from agentkd.tools.sandbox import SandboxConfig

INDEX_DIR = "index"


def load_store(run: str | Path) -> Any:
    """The demonstration store built by `agentkd index` in a run folder."""
    from agentkd.store import DemoStore

    return DemoStore.load(Path(run) / INDEX_DIR)


class CascadedAgent:
    """A student that acts when its samples agree and defers single steps to the teacher otherwise.

    Build it from objects, or from a run folder with `CascadedAgent.from_run("runs/NAME")`
    (`student="trained"` takes the run's fine-tuned student). A student folder written by `agentkd train`
    is run with the short prompt it was trained on and without demonstrations.
    """

    def __init__(
        self,
        env: Environment,
        student: ModelClient | str,
        teacher: Policy | str,
        store: Any = None,
        n: int = 3,
        temperature: float = 0.7,
        agreement: AgreementMode = "code",
        min_agree: int | None = None,
        k: int = 4,
        online: bool = False,
        max_steps: int | None = None,
        sandbox: SandboxConfig | None = None,
    ) -> None:
        from agentkd.train import is_trained_student

        model = student if isinstance(student, str) else student.model
        trained = is_trained_student(model.removeprefix("hf/"))
        self.env = env
        self.store = None if trained else store
        teacher_policy = make_policy(teacher) if isinstance(teacher, str) else teacher
        self.policy = CascadePolicy(
            StudentPolicy(student, self.store, k=k, student_prompt=trained), teacher_policy, n=n, temperature=temperature,
            agreement=agreement, min_agree=min_agree, online=online,
        )
        self.agent = CodeActAgent(env, self.policy, max_steps=max_steps, sandbox=sandbox)

    @classmethod
    def from_run(
        cls, run: str | Path, student: ModelClient | str = "smollm2-135m", teacher: Policy | str | None = None,
        env: Environment | str | None = None, **kwargs: Any,
    ) -> CascadedAgent:
        """Environment and teacher as recorded in run.json (overridable); the store from RUN/index, or the
        fine-tuned student from RUN/student with `student="trained"`."""
        from agentkd.train import resolve_student

        identity = RunFolder(run).identity()
        environment = load_environment(env or identity["env"]) if not isinstance(env, Environment) else env
        if student == "trained":
            student = resolve_student(run, "trained")[0]
            return cls(environment, student, teacher or identity["teacher"], None, **kwargs)
        return cls(environment, student, teacher or identity["teacher"], load_store(run), **kwargs)

    async def arun(self, task: Task | str) -> Trajectory:
        """Solve one task (a Task, or a prompt string for an ad-hoc task); returns the trajectory."""
        if isinstance(task, str):
            task = Task(id="adhoc", prompt=task)
        return await self.agent.arun(task)

    def run(self, task: Task | str) -> Trajectory:
        """Synchronous `arun`."""
        return asyncio.run(self.arun(task))

    def as_graph(self) -> Any:
        """The compiled LangGraph graph, usable as a node in a LangGraph app."""
        return self.agent.as_graph()
