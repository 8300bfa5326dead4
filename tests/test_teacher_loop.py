"""A teacher loop that survives real models: one code block per reply, the repeated-reply guard, keys."""

import asyncio
import os
import time

import pytest
from fake_openai_server import FakeOpenAIServer
from typer.testing import CliRunner

from agentkd import CodeActAgent, Environment, LLMPolicy, ModelClient, ModelError, StudentPolicy, tool
from agentkd.cli import app
from agentkd.codeact.parsing import finish_reply
from agentkd.models.client import Completion
from agentkd.records import Resample, Usage

TWO_BLOCKS = "Thought: both at once.\n```python\nv = double(21)\nprint(v)\n```\n```python\nfinal_answer(v)\n```"
NO_CODE = "Thought: the answer is 42."
GOOD = "Thought: compute it.\n```python\nfinal_answer(double(21))\n```"


@tool
def double(x: int) -> int:
    """Return 2 * x."""
    return 2 * x


ENV = Environment(name="calc", tasks=[{"id": "a", "prompt": "double 21", "answer": 42}], tools=[double],
                  grader="numeric", max_steps=6)
TASK = ENV.tasks("train")[0]


class ScriptedModel(ModelClient):
    """A labelled test double for a model that decodes greedily: `greedy` at temperature 0, `sampled` above."""

    def __init__(self, greedy: str, sampled: str) -> None:
        super().__init__("hosted_vllm/scripted")
        self.greedy, self.sampled, self.calls = greedy, sampled, []

    async def complete(self, messages, n=1, temperature=None, stop=None, max_tokens=None):
        temperature = self.temperature if temperature is None else temperature
        self.calls.append(temperature)
        text = self.greedy if temperature == 0 else self.sampled
        return Completion(texts=[text] * n, usage=Usage(prompt_tokens=10, completion_tokens=5, calls=1),
                          latency_s=0.01, model=self.model)


def test_a_reply_stops_at_the_end_of_its_first_code_block():
    assert finish_reply(TWO_BLOCKS) == "Thought: both at once.\n```python\nv = double(21)\nprint(v)\n```"
    assert finish_reply("Thought: x\n```python\nprint(1)") == "Thought: x\n```python\nprint(1)\n```"
    assert finish_reply(NO_CODE) == NO_CODE
    policy = LLMPolicy(ScriptedModel(TWO_BLOCKS, GOOD))
    assert "\n```\n" in policy.stop
    traj = CodeActAgent(ENV, policy, max_steps=1).run(TASK)
    assert traj.steps[0].action == "v = double(21)\nprint(v)" and traj.steps[0].observation == "42"


def test_a_repeated_reply_to_the_same_state_is_resampled_and_recorded():
    model = ScriptedModel(NO_CODE, GOOD)
    traj = CodeActAgent(ENV, LLMPolicy(model)).run(TASK)
    assert traj.success and len(traj.steps) == 2
    assert traj.steps[0].resampled is None and traj.steps[1].resampled == Resample(
        reason="repeated the previous reply for the same state", temperature=0.7, attempts=1)
    assert traj.steps[1].usage.calls == 2  # the discarded greedy reply is paid for too
    assert model.calls == [0.0, 0.0, 0.7]


def test_a_model_that_keeps_repeating_ends_the_episode_as_stuck_not_at_the_step_limit():
    traj = CodeActAgent(ENV, LLMPolicy(ScriptedModel(NO_CODE, NO_CODE))).run(TASK)
    assert traj.status == "stuck" and len(traj.steps) == 1 and "repeated" in traj.error
    # the student gets the same guard
    student = StudentPolicy(ScriptedModel(" x = 1", " x = 1"), prefill="Thought:")
    traj = CodeActAgent(ENV, student).run(TASK)
    assert traj.status == "stuck"


def test_the_same_code_after_a_changed_observation_is_not_a_repeat():
    env = Environment(name="count", tasks=[{"id": "a", "prompt": "count", "answer": 3}], tools=[double],
                      grader="numeric", max_steps=3, setup_state=lambda task: None)
    step = "Thought: again.\n```python\nn = globals().get('n', 0) + 1\nprint(n)\n```"
    traj = CodeActAgent(env, LLMPolicy(ScriptedModel(step, GOOD))).run(env.tasks("train")[0])
    assert traj.status == "step_limit" and [s.observation for s in traj.steps] == ["1", "2", "3"]
    assert all(s.resampled is None for s in traj.steps)


def test_a_missing_key_fails_fast_once_with_the_fix(factqa, tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    started = time.perf_counter()
    result = CliRunner().invoke(app, ["collect", "--env", "factqa", "--teacher", "openai/gpt-4o-mini", "--n", "3",
                                      "--run", str(tmp_path / "r")])
    assert time.perf_counter() - started < 5
    assert result.exit_code == 1 and result.output.count("OPENAI_API_KEY") == 1, result.output
    with pytest.raises(ModelError) as info:
        asyncio.run(ModelClient("openai/gpt-4o-mini", api_base="http://10.255.255.1:9/v1", timeout_s=2).complete(
            [{"role": "user", "content": "x"}]))
    assert info.value.fatal and "OPENAI_API_KEY" in str(info.value)


def test_a_local_api_base_needs_no_key(factqa, tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert "OPENAI_API_KEY" not in os.environ
    with FakeOpenAIServer(factqa) as server:
        result = CliRunner().invoke(app, ["collect", "--env", "factqa", "--teacher", "openai/reference-stub",
                                          "--api-base", server.api_base, "--n", "2", "--run", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    assert "success (new)" in result.output and "100.0%" in result.output


def test_a_student_can_see_a_capped_history():
    from agentkd import build_policy
    from agentkd.codeact.prompts import recent_history

    messages = [{"role": "system", "content": "s"}, {"role": "user", "content": "task"}]
    for i in range(5):
        messages += [{"role": "assistant", "content": f"a{i}"}, {"role": "user", "content": f"o{i}"}]
    assert [m["content"] for m in recent_history(messages, 2)] == ["s", "task", "a3", "o3", "a4", "o4"]
    assert recent_history(messages, 9) == messages and len(recent_history(messages, 0)) == 2
    seen = []

    class Recorder(ScriptedModel):
        async def complete(self, messages, **kw):
            seen.append(len(messages))
            return await super().complete(messages, **kw)

    student = build_policy({"kind": "student", "settings": {"history_steps": 1}})
    student.client = Recorder("Thought: again\n```python\nprint(double(len(globals())))\n```", GOOD)
    CodeActAgent(ENV, student, max_steps=4).run(TASK)
    assert seen[:4] == [3, 5, 5, 5]  # system + task (+ last reply and observation) + the prefill


def test_the_same_command_with_another_thought_on_an_unchanged_state_is_a_repeat():
    from agentkd.policies.repeats import repeats_previous
    from agentkd.records import Step

    act = "```python\nprint(act('go to cabinet 1'))\n```"
    steps = [Step(index=i, role="student", output=f"Thought: try {i}\n{act}", action="print(act('go to cabinet 1'))",
                  observation="You are already at the cabinet 1.") for i in range(2)]
    assert repeats_previous(f"Thought: once more\n{act}", steps)
    assert not repeats_previous(f"Thought: once more\n{act}", steps[:1])  # one repeat is allowed
    changed = [steps[0], steps[1].model_copy(update={"observation": "You arrive at the cabinet 1."})]
    assert not repeats_previous(f"Thought: once more\n{act}", changed)
    assert not repeats_previous("Thought: other\n```python\nprint(act('look'))\n```", steps)


def test_a_reply_that_restarts_the_prefill_is_not_prefixed_twice():
    import asyncio

    from agentkd.policies.base import PolicyContext

    student = StudentPolicy(ScriptedModel("Thought: from the start\n```python\nx = 1\n```", GOOD))
    ctx = PolicyContext(ENV, TASK, [{"role": "system", "content": "s"}, {"role": "user", "content": "t"}], [])
    assert asyncio.run(student.sample(ctx, 1, 0.0)).text.startswith("Thought: from the start")
    student = StudentPolicy(ScriptedModel(" continued\n```python\nx = 1\n```", GOOD))
    assert asyncio.run(student.sample(ctx, 1, 0.0)).text.startswith("Thought: continued")


def test_a_two_step_loop_is_caught_when_the_state_comes_back():
    from agentkd.policies.repeats import repeats_previous
    from agentkd.records import Step

    search = "```python\nsearch('x')\n```"
    parse = "```python\nyear = observation.split()[0]\n```"
    steps = [Step(index=0, role="teacher", output=f"Thought: look\n{search}", action="search('x')", observation="found"),
             Step(index=1, role="teacher", output=f"Thought: parse\n{parse}", action="year = observation.split()[0]",
                  observation="Error: NameError"),
             Step(index=2, role="teacher", output=f"Thought: again\n{search}", action="search('x')", observation="found")]
    assert repeats_previous(f"Thought: parse it\n{parse}", steps)  # state 'found' was answered with this code
    assert not repeats_previous(f"Thought: parse it\n{parse}", steps[:2] + [steps[2].model_copy(
        update={"observation": "found more"})])


def test_after_an_observation_an_untrained_student_starts_from_it():
    from agentkd.policies.base import PolicyContext
    from agentkd.policies.student import OBSERVATION_PREFILL
    from agentkd.records import Step

    class Recording(ScriptedModel):
        async def complete(self, messages, n=1, temperature=None, stop=None, max_tokens=None):
            self.sent = messages
            return await super().complete(messages, n, temperature, stop, max_tokens)

    model = Recording(" that x is 1.\n```python\nfinal_answer(1)\n```", GOOD)
    student = StudentPolicy(model, observation_prefill=OBSERVATION_PREFILL)
    head = [{"role": "system", "content": "s"}, {"role": "user", "content": "t"}]
    first = asyncio.run(student.sample(PolicyContext(ENV, TASK, head, []), 1, 0.0))
    assert model.sent[-1] == {"role": "assistant", "content": "Thought:"} and first.text.startswith("Thought: that")
    step = Step(index=0, role="student", output="Thought: a\n```python\nx = 1\n```", action="x = 1", observation="1")
    later = asyncio.run(student.sample(PolicyContext(ENV, TASK, [*head, {"role": "assistant", "content": step.output},
                                                                 {"role": "user", "content": "Observation:\n1"}],
                                                     [step]), 1, 0.0))
    assert model.sent[-1] == {"role": "assistant", "content": OBSERVATION_PREFILL}
    assert later.text == f"{OBSERVATION_PREFILL} that x is 1.\n```python\nfinal_answer(1)\n```"
    # a server that closes the assistant turn answers from the start: its own Thought is kept, not prefixed
    model.greedy = "Thought: the answer\n```python\nfinal_answer(1)\n```"
    again = asyncio.run(student.sample(PolicyContext(ENV, TASK, model.sent[:-1], [step]), 1, 0.0))
    assert again.text.startswith("Thought: the answer")


def test_a_thought_without_code_is_continued_once_from_an_opened_fence():
    from agentkd.policies.base import PolicyContext
    from agentkd.policies.student import CODE_OPENING

    class Continuing(ModelClient):
        """A labelled test double: stops after its thought, writes code when the reply already opens a fence."""

        def __init__(self) -> None:
            super().__init__("hosted_vllm/scripted")
            self.sent = []

        async def complete(self, messages, n=1, temperature=None, stop=None, max_tokens=None):
            self.sent.append(messages)
            opened = messages[-1]["content"].endswith(CODE_OPENING)
            text = "final_answer(42)" if opened else " the answer is 42."  # the stop cut the closing fence
            return Completion(texts=[text] * n, usage=Usage(prompt_tokens=10, completion_tokens=5, calls=1),
                              latency_s=0.01, model=self.model)

    head = [{"role": "system", "content": "s"}, {"role": "user", "content": "t"}]
    model = Continuing()
    out = asyncio.run(StudentPolicy(model, code_followup=True).sample(PolicyContext(ENV, TASK, head, []), 2, 0.7))
    assert out.texts == ["Thought: the answer is 42.\n```python\nfinal_answer(42)\n```"] * 2
    assert out.usage.calls == 3 and out.usage.completion_tokens == 15  # one call for both samples + one each
    follow = model.sent[1]
    assert follow[:-1] == head and follow[-1] == {"role": "assistant",
                                                  "content": "Thought: the answer is 42." + CODE_OPENING}
    traj = CodeActAgent(ENV, StudentPolicy(Continuing(), code_followup=True), max_steps=2).run(TASK)
    assert traj.success and traj.steps[0].parse_error is None
    # off (a fine-tuned student's setting): the thought stays without code and is a parse error
    off = asyncio.run(StudentPolicy(Continuing()).sample(PolicyContext(ENV, TASK, head, []), 1, 0.0))
    assert off.texts == ["Thought: the answer is 42."] and off.usage.calls == 1


def test_the_code_followup_is_on_for_untrained_students_and_left_out_of_a_fine_tuned_ones_spec():
    from agentkd.policies.registry import student_spec

    assert student_spec("gguf/qwen2.5-coder-0.5b", demos=True).settings["code_followup"] is True
    assert "code_followup" not in student_spec("trained", demos=False).settings


def test_code_before_end_asks_the_model_to_hold_its_end_of_turn_until_a_fence():
    from agentkd.policies.base import PolicyContext

    class Holding(ModelClient):
        """A labelled test double that writes code only when asked to hold its end of turn until a fence."""

        def __init__(self) -> None:
            super().__init__("hosted_vllm/scripted")
            self.asked = []

        async def complete(self, messages, n=1, temperature=None, stop=None, max_tokens=None, end_only_after=None):
            self.asked.append(end_only_after)
            text = " the answer.\n```python\nfinal_answer(42)" if end_only_after == "```" else " the answer."
            return Completion(texts=[text] * n, usage=Usage(prompt_tokens=10, completion_tokens=5, calls=1),
                              latency_s=0.01, model=self.model)

    head = [{"role": "system", "content": "s"}, {"role": "user", "content": "t"}]
    model = Holding()
    held = asyncio.run(StudentPolicy(model, code_before_end=True, code_followup=True)
                       .sample(PolicyContext(ENV, TASK, head, []), 3, 0.7))
    assert held.texts == ["Thought: the answer.\n```python\nfinal_answer(42)\n```"] * 3
    assert held.usage.calls == 1 and model.asked == ["```"]  # no follow-up call was needed
    spec = StudentPolicy(model, code_before_end=True).spec.settings
    assert spec["code_before_end"] is True and "code_before_end" not in StudentPolicy(model).spec.settings
