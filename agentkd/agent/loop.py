"""The CodeAct step loop as a LangGraph graph: setup -> (act -> execute)* -> finish."""

from __future__ import annotations

import asyncio
import platform
import time
from typing import Any, Callable, TypedDict

from langgraph.graph import END, START, StateGraph

from agentkd.codeact.parsing import parse_action
from agentkd.codeact.prompts import format_observation, initial_messages, observation_message
from agentkd.env.environment import Environment
from agentkd.errors import AgentKDError, ModelError, SandboxUnavailableError
from agentkd.policies.base import Policy, PolicyContext, PolicyError
from agentkd.policies.repeats import StuckError
from agentkd.records import Step, Task, Trajectory, Usage
from agentkd.sandbox.host import PythonSandbox, SandboxConfig
from agentkd.version import __version__


class EpisodeState(TypedDict, total=False):
    """LangGraph state of one episode. Input: `task` (and optionally `sample_index`); output:
    `trajectory`. Runtime objects ride along: no checkpointer serialises them."""

    task: Task
    sample_index: int
    started: float
    env_state: Any
    worker: asyncio.Future[PythonSandbox]
    """Started while the policy thinks about step 0; awaited before the first execution."""
    end_state: Callable[[], None]
    """Runs the environment's teardown_state on env_state, at most once (finish, cancel or error)."""
    messages: list[dict[str, Any]]
    steps: list[Step]
    pending: Step | None
    done: bool
    final_answer: Any
    status: str
    error: str | None
    stopped_usage: dict[str, Usage]
    """By role, the calls that stopped the episode without becoming a step (StuckError's)."""
    trajectory: Trajectory


class CodeActAgent:
    """Runs one policy on an environment's tasks, step by step, in a persistent sandboxed worker."""

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
        PythonSandbox(config=self.sandbox)  # refuse now, not mid-episode, when no sandbox exists
        self._graph = self._build_graph()

    # graph ------------------------------------------------------------------------
    def _build_graph(self) -> Any:
        graph = StateGraph(EpisodeState)
        graph.add_node("setup", self._setup)
        graph.add_node("act", self._act)
        graph.add_node("execute", self._execute)
        graph.add_node("finish", self._finish)
        graph.add_edge(START, "setup")
        graph.add_edge("setup", "act")
        graph.add_conditional_edges("act", lambda s: "finish" if s["done"] else "execute", ["finish", "execute"])
        graph.add_conditional_edges("execute", lambda s: "finish" if s["done"] else "act", ["finish", "act"])
        graph.add_edge("finish", END)
        return graph.compile()

    def as_graph(self) -> Any:
        """The compiled LangGraph graph: invoke with {"task": Task}; read "trajectory" from the result."""
        return self._graph

    async def _setup(self, state: EpisodeState) -> dict[str, Any]:
        task = state["task"]
        env_state = self.env.new_state(task)
        worker = PythonSandbox(list(self.env.tools), self.env.tool_handler(env_state), config=self.sandbox)
        return {
            "started": time.perf_counter(), "sample_index": state.get("sample_index", 0), "env_state": env_state,
            "end_state": _once(lambda: self.env.end_state(env_state)),
            "worker": asyncio.ensure_future(worker.astart()), "messages": initial_messages(self.env, task),
            "steps": [], "pending": None, "done": False, "final_answer": None, "status": "finished", "error": None,
        }

    async def _act(self, state: EpisodeState) -> dict[str, Any]:
        ctx = PolicyContext(self.env, state["task"], state["messages"], state["steps"], state.get("env_state"),
                            state["worker"])
        try:
            out = await self.policy.act(ctx)
        except ModelError as exc:
            if exc.fatal:
                _close_soon(state.get("worker"))
                raise
            return self._failed(exc)
        except StuckError as exc:
            return {"done": True, "status": "stuck", "error": str(exc), "stopped_usage": exc.usage}
        except SandboxUnavailableError:  # a policy that tries candidates met a sandbox that cannot start
            _close_soon(state.get("worker"))
            raise
        except (AgentKDError, PolicyError) as exc:
            return self._failed(exc)
        except Exception as exc:  # noqa: BLE001 - an episode failure must never kill a collector
            return self._failed(exc, "unexpected ")
        parsed = parse_action(out.text)
        step = Step(
            index=len(state["steps"]), role=out.role, model=out.model, output=out.text, thought=parsed.thought,
            action=parsed.code, parse_error=parsed.error, usage=out.usage, latency_s=out.latency_s,
            candidates=out.candidates, vote=out.vote, role_usage=out.role_usage, resampled=out.resampled,
            injected=out.injected,
        )
        return {"pending": step}

    @staticmethod
    def _failed(exc: BaseException, prefix: str = "") -> dict[str, Any]:
        return {"done": True, "status": "error", "error": f"{prefix}{type(exc).__name__}: {exc}"}

    async def _execute(self, state: EpisodeState) -> dict[str, Any]:
        step = state["pending"]
        assert step is not None
        done, final_answer, status = False, state.get("final_answer"), state.get("status", "finished")
        if step.action is None:
            step.observation = step.parse_error or "unparseable output"
        else:
            try:
                worker = await state["worker"]
            except SandboxUnavailableError:  # it cannot start at all: every episode would fail alike
                raise
            except AgentKDError as exc:
                return {"steps": [*state["steps"], step], "pending": None, **self._failed(exc)}
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

    async def _finish(self, state: EpisodeState) -> dict[str, Any]:
        _close_soon(state.get("worker"))
        task, steps = state["task"], state["steps"]
        stopped = state.get("stopped_usage", {})
        traj = Trajectory(
            task=task,
            sample_index=state.get("sample_index", 0),
            policy=self.policy.name,
            policy_spec=getattr(self.policy, "spec", None),
            messages=state["messages"],
            steps=steps,
            final_answer=state.get("final_answer"),
            status=state.get("status", "finished"),  # type: ignore[arg-type]
            error=state.get("error"),
            parse_errors=sum(1 for s in steps if s.parse_error),
            usage=sum((*(s.usage for s in steps), *stopped.values()), Usage()),
            stopped_usage=stopped,
            duration_s=time.perf_counter() - state["started"],
            versions=versions(self.env),
        )
        if traj.status == "finished":
            grade = self.env.grade(traj.final_answer, task, state.get("env_state"))
            traj.score, traj.success = grade.score, grade.success
        state["end_state"]()  # teardown_state, once the grader has seen the state
        return {"trajectory": traj}

    # episodes ---------------------------------------------------------------------
    async def arun(self, task: Task, sample_index: int = 0) -> Trajectory:
        """Run one episode and return its graded trajectory. Policy failures give status='error'; a fatal
        ModelError and a sandbox that cannot start (SandboxUnavailableError) are raised."""
        state: dict[str, Any] = {}
        try:
            async for state in self._graph.astream(
                {"task": task, "sample_index": sample_index}, {"recursion_limit": 2 * self.max_steps + 6},
                stream_mode="values",
            ):
                pass
        except BaseException:  # cancelled (or a fatal error): never leave a worker or a live state behind
            _close_soon(state.get("worker"))
            if "end_state" in state:
                state["end_state"]()
            raise
        return state["trajectory"]

    def run(self, task: Task, sample_index: int = 0) -> Trajectory:
        """Synchronous `arun`."""
        return asyncio.run(self.arun(task, sample_index))


def _once(fn: Callable[[], None]) -> Callable[[], None]:
    """`fn`, callable any number of times, run only on the first call."""
    pending = [fn]
    return lambda: pending.pop()() if pending else None


def _close_soon(starting: asyncio.Future[PythonSandbox] | None) -> None:
    """Close an episode's worker without awaiting it: now if it has started, else once it has
    (safe while being cancelled; a worker that failed to start has nothing to close)."""
    if starting is None:
        return
    if starting.done():
        if not starting.cancelled() and starting.exception() is None:
            starting.result().close()
    else:
        starting.add_done_callback(lambda f: _close_soon(f))


def versions(env: Environment) -> dict[str, str]:
    """Versions recorded with every trajectory."""
    return {"agentkd": __version__, "env": f"{env.name}@{env.version}", "python": platform.python_version()}
