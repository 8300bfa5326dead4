"""The deployable cascaded agent: ICD student + self-consistency cascade + teacher, as a library."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from agentkd.agent.loop import CodeActAgent
from agentkd.env.environment import Environment
from agentkd.env.loading import load_environment
from agentkd.models.client import ModelClient
from agentkd.policies.base import Policy
from agentkd.policies.cascade import CascadePolicy
from agentkd.policies.registry import BuildContext, build_policy, student_spec, teacher_spec
from agentkd.policies.settings import DEFAULT_STUDENT, CascadeOptions, ICDSettings
from agentkd.records import Task, Trajectory
from agentkd.run.folder import RunFolder
from agentkd.run.layout import RunLayout
from agentkd.sandbox.host import SandboxConfig


class CascadedAgent:
    """A student that acts when its samples agree and defers single steps to the teacher otherwise.

    Build it from objects, or from a run folder with `CascadedAgent.from_run("runs/NAME")`
    (`student="trained"` takes the run's fine-tuned student). A student folder written by `agentkd train`
    is run with the short prompt it was trained on and without demonstrations (`agentkd.student_spec`).
    The cascade's settings come as `options` (a CascadeOptions) or as its fields: `samples`, `temperature`,
    `agreement`, `min_agree`, `online`.
    """

    def __init__(
        self,
        env: Environment,
        student: ModelClient | str,
        teacher: Policy | str,
        store: Any = None,
        options: CascadeOptions | None = None,
        k: int = ICDSettings.model_fields["k"].default,
        max_steps: int | None = None,
        sandbox: SandboxConfig | None = None,
        run: str | Path | None = None,
        student_api_base: str | None = None,
        **cascade: Any,
    ) -> None:
        """`student_api_base`: where a string `student` is served, e.g. `student="trained"` with the address of
        `agentkd serve --student RUN` (the run's student, served, with its short prompt)."""
        context = BuildContext(run=RunLayout(run) if run is not None else None, store=store)
        if isinstance(student, ModelClient):
            spec = student_spec(student.model, demos=store is not None, k=k, max_tokens=student.max_tokens,
                                temperature=student.temperature, api_base=student.api_base)
        else:
            spec = student_spec(student, demos=store is not None, k=k,
                                **({"api_base": student_api_base} if student_api_base else {}))
        student_policy = build_policy(spec, context)
        if isinstance(student, ModelClient):
            student_policy.client = student  # type: ignore[attr-defined]  # keep the caller's client (key, prices)
        self.env = env
        self.store = student_policy.store  # type: ignore[attr-defined]
        teacher_policy = build_policy(teacher_spec(teacher), context) if isinstance(teacher, str) else teacher
        self.policy = CascadePolicy(student_policy, teacher_policy, options, **cascade)  # type: ignore[arg-type]
        self.agent = CodeActAgent(env, self.policy, max_steps=max_steps, sandbox=sandbox)

    @classmethod
    def from_run(
        cls, run: str | Path, student: ModelClient | str = DEFAULT_STUDENT, teacher: Policy | str | None = None,
        env: Environment | str | None = None, **kwargs: Any,
    ) -> CascadedAgent:
        """Environment and teacher as recorded in run.json (overridable); the store from RUN/index, or the
        fine-tuned student from RUN/student with `student="trained"`."""
        folder = RunFolder(run)
        environment = env if isinstance(env, Environment) else load_environment(env or folder.env_spec())
        if teacher is None:
            recorded = folder.teacher_spec()
            teacher = build_policy(recorded, BuildContext(run=folder.layout)) if recorded else folder.identity()["teacher"]
        model = student.model if isinstance(student, ModelClient) else student
        store = None
        if student_spec(model, demos=True).kind == "icd":  # the one rule: fine-tuned students get no demos
            store = BuildContext(run=folder.layout).demo_store()
        return cls(environment, student, teacher, store, run=run, **kwargs)

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
