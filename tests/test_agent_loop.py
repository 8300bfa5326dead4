import pytest

from agentkd import CodeActAgent, Environment, ModelError, PolicyOutput, ReferencePolicy, tool


class ScriptedPolicy:
    """Replays fixed outputs (a test double for a model; the real model is tested in test_models)."""

    name = "scripted"

    def __init__(self, outputs, error=None):
        self.outputs = list(outputs)
        self.error = error

    async def act(self, ctx):
        if self.error and ctx.step_index == len(self.outputs):
            raise self.error
        return PolicyOutput(text=self.outputs[min(ctx.step_index, len(self.outputs) - 1)], role="student")


@tool
def double(x: int) -> int:
    """Return 2 * x."""
    return 2 * x


ENV = Environment(name="calc", tasks=[{"id": "a", "prompt": "double 21", "answer": 42}], tools=[double],
                  grader="numeric", max_steps=5)
TASK = ENV.tasks("train")[0]


def test_bad_outputs_get_corrective_observations_and_are_counted():
    policy = ScriptedPolicy([
        "I will just answer 42.",                       # no block
        "```python\na=1\n```\n```python\nb=2\n```",     # two blocks
        "Thought: go\n```python\nv = double(21)\n",     # unterminated
        "Thought: go\n```python\nv = double(21)\nprint(v)\n```",
        "Thought: done\n```python\nfinal_answer(v)\n```",
    ])
    traj = CodeActAgent(ENV, policy).run(TASK)
    assert traj.status == "finished" and traj.success and traj.final_answer == 42
    assert traj.parse_errors == 3
    assert "no Python code block" in traj.steps[0].observation
    assert traj.steps[3].observation == "42"
    assert [m["role"] for m in traj.messages[:3]] == ["system", "user", "assistant"]
    assert traj.messages[3]["content"].startswith("Observation:\n")


def test_step_limit_ends_the_episode():
    traj = CodeActAgent(ENV, ScriptedPolicy(["Thought: t\n```python\nprint(1)\n```"]), max_steps=3).run(TASK)
    assert traj.status == "step_limit" and len(traj.steps) == 3 and not traj.success


def test_policy_error_marks_the_trajectory_as_error_not_wrong_answer():
    traj = CodeActAgent(ENV, ScriptedPolicy(["Thought: t\n```python\nx=1\n```"], error=ModelError("rate limited"))).run(TASK)
    assert traj.status == "error" and "rate limited" in traj.error
    assert len(traj.steps) == 1 and traj.score == 0.0


def test_fatal_model_error_is_raised():
    policy = ScriptedPolicy(["x"], error=ModelError("bad key", fatal=True))
    policy.outputs = []
    with pytest.raises(ModelError, match="bad key"):
        CodeActAgent(ENV, policy).run(TASK)


def test_reference_teacher_solves_factqa_kinds(factqa):
    agent = CodeActAgent(factqa, ReferencePolicy())
    tasks = factqa.tasks("test", 12)
    kinds = {t.metadata["kind"] for t in tasks}
    assert kinds == {"single", "bridge", "comparison"}
    for task in tasks:
        traj = agent.run(task)
        assert traj.success, (task.prompt, traj.final_answer, task.answer)
        assert traj.steps[0].thought and "search(" in traj.steps[0].action


def test_graph_is_a_compiled_langgraph():
    graph = CodeActAgent(ENV, ReferencePolicy()).as_graph()
    assert set(graph.get_graph().nodes) >= {"act", "execute"}
