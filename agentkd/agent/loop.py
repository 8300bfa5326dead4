"""The CodeAct step loop as a LangGraph graph: policy -> execute -> observe, until done."""

from __future__ import annotations

import asyncio
import platform
import time
from typing import Any, TypedDict

from langgraph.graph import END, START, StateGraph

from agentkd import __version__
from agentkd.agent.parsing import parse_action
from agentkd.agent.prompts import format_observation, initial_messages, observation_message
from agentkd.env.environment import Environment
from agentkd.errors import AgentKDError, ModelError
from agentkd.policies.base import Policy, PolicyContext, PolicyError
from agentkd.records import Step, Task, Trajectory, Usage
from agentkd.tools.sandbox import PythonSandbox, SandboxConfig


class EpisodeState(TypedDict, total=False):
    """LangGraph state of one episode. Runtime objects ride along; no checkpointer serialises them."""

    task: Task
    env_state: Any
    worker: asyncio.Task[PythonSandbox]
    """Started while the policy thinks about step 0; awaited before the first execution."""
    messages: list[dict[str, Any]]
    steps: list[Step]
    pending: Step | None
    done: bool
    final_answer: Any
    status: str


class CodeActAgent:
    """Runs one policy on an environment's tasks, step by step, in a persistent Python worker."""

    def __init__(
        self,
        env: Environment,
        policy: Policy,
        max_steps: int | None = None,
        max_observation_chars: int = 4000,
        sandbox: SandboxConfig | None = None,
    ) -> None:
        self.env = env
        self.policy = policy
        self.max_steps = max_steps or env.max_steps
        self.max_observation_chars = max_observation_chars
        self.sandbox = sandbox or SandboxConfig()
        self._graph = self._build_graph()

    # graph ------------------------------------------------------------------------
    def _build_graph(self) -> Any:
        graph = StateGraph(EpisodeState)
        graph.add_node("act", self._act)
        graph.add_node("execute", self._execute)
        graph.add_edge(START, "act")
        graph.add_edge("act", "execute")
        graph.add_conditional_edges("execute", lambda s: END if s["done"] else "act", {END: END, "act": "act"})
        return graph.compile()

    def as_graph(self) -> Any:
        """The compiled LangGraph graph (state: EpisodeState)."""
        return self._graph

    async def _act(self, state: EpisodeState) -> dict[str, Any]:
        ctx = PolicyContext(self.env, state["task"], state["messages"], state["steps"], state.get("env_state"),
                            state["worker"])
        out = await self.policy.act(ctx)
        parsed = parse_action(out.text)
        step = Step(
            index=len(state["steps"]),
            role=out.role,
            model=out.model,
            output=out.text,
            thought=parsed.thought,
            action=parsed.code,
            parse_error=parsed.error,
            usage=out.usage,
            latency_s=out.latency_s,
            candidates=out.candidates,
            vote=out.vote,
            role_usage=out.role_usage,
        )
        return {"pending": step}

    async def _execute(self, state: EpisodeState) -> dict[str, Any]:
        step = state["pending"]
        assert step is not None
        done, final_answer, status = False, state.get("final_answer"), state.get("status", "finished")
        if step.action is None:
            step.observation = step.parse_error or "unparseable output"
        else:
            worker = await state["worker"]
            result = await worker.arun(step.action)
            step.execution_s = result.duration
            step.execution_error = result.error
            if result.final:
                done, final_answer = True, result.answer
                step.observation = format_observation(result.stdout, None, self.max_observation_chars) if result.stdout.strip() else ""
            else:
                step.observation = format_observation(result.stdout, result.error, self.max_observation_chars)
        steps = [*state["steps"], step]
        messages = [*state["messages"], {"role": "assistant", "content": step.output}]
        if not done:
            messages.append(observation_message(step.observation))
            if len(steps) >= self.max_steps:
                done, status = True, "step_limit"
        return {"steps": steps, "messages": messages, "pending": None, "done": done,
                "final_answer": final_answer, "status": status}

    # episodes ---------------------------------------------------------------------
    async def arun(self, task: Task, sample_index: int = 0) -> Trajectory:
        """Run one episode and return its graded trajectory. Policy failures give status='error'."""
        started = time.perf_counter()
        env_state = self.env.new_state(task)
        handler = self.env.tool_handler(env_state)
        worker = PythonSandbox(list(self.env.tools), handler, config=self.sandbox)
        starting = asyncio.ensure_future(worker.astart())
        state: EpisodeState = {
            "task": task, "env_state": env_state, "worker": starting, "messages": initial_messages(self.env, task),
            "steps": [], "pending": None, "done": False, "final_answer": None, "status": "finished",
        }
        error: str | None = None
        try:
            # Stream the state after every node so the steps taken before a failure are kept.
            async for snapshot in self._graph.astream(
                state, {"recursion_limit": 2 * self.max_steps + 4}, stream_mode="values"
            ):
                state = snapshot
        except ModelError as exc:
            if exc.fatal:
                raise
            error = f"{type(exc).__name__}: {exc}"
        except (AgentKDError, PolicyError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # noqa: BLE001 - an episode failure must never kill a collector
            error = f"unexpected {type(exc).__name__}: {exc}"
        finally:
            if not starting.done():
                await asyncio.gather(starting, return_exceptions=True)
            worker.close()
        return self._trajectory(task, sample_index, state, env_state, error, time.perf_counter() - started)

    def run(self, task: Task, sample_index: int = 0) -> Trajectory:
        """Synchronous `arun`."""
        return asyncio.run(self.arun(task, sample_index))

    def _trajectory(
        self, task: Task, sample_index: int, state: EpisodeState, env_state: Any, error: str | None, duration: float
    ) -> Trajectory:
        steps = state.get("steps", [])
        status = "error" if error else state.get("status", "finished")
        if not error and not state.get("done"):
            status = "step_limit"
        traj = Trajectory(
            task=task,
            sample_index=sample_index,
            policy=self.policy.name,
            messages=state.get("messages", []),
            steps=steps,
            final_answer=state.get("final_answer"),
            status=status,  # type: ignore[arg-type]
            error=error,
            parse_errors=sum(1 for s in steps if s.parse_error),
            usage=sum((s.usage for s in steps), Usage()),
            duration_s=duration,
            versions=versions(self.env),
        )
        if status == "finished":
            grade = self.env.grade(traj.final_answer, task, env_state)
            traj.score, traj.success = grade.score, grade.success
        return traj


def versions(env: Environment) -> dict[str, str]:
    """Versions recorded with every trajectory."""
    return {"agentkd": __version__, "env": f"{env.name}@{env.version}", "python": platform.python_version()}
