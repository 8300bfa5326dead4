"""apiworld: stateful apps over a per-episode database, graded on the writes (collateral damage fails)."""

import importlib
import json

import pytest

from agentkd import CodeActAgent, PolicyOutput, ReferencePolicy, load_environment
from agentkd.agent.env_check import WrongAnswerPolicy
from agentkd.env.loading import environment_module

N = 25
TEMPLATES = ["refund_dinner", "percent_back", "attendees_note", "settle_note", "top_payer"]


@pytest.fixture(scope="module")
def apiworld():
    return load_environment("apiworld", tasks_per_split=N)


def one_per_template(env, split="train"):
    tasks = env.tasks(split)
    return [next(t for t in tasks if t.metadata["template"] == name) for name in TEMPLATES]


def problems(env, task, state):
    check_writes = importlib.import_module(environment_module("apiworld").__name__ + ".grading").check_writes

    return check_writes(env.new_state(task), state, task.answer)


def do_expected_writes(env, task, state):
    """Make exactly the writes the task asks for, calling the tools directly."""
    expected = task.answer
    for p in expected["payments"]:
        env.tools["payments_send"](p["to"], p["amount"], f"{p['note_contains']} :)", state=state)
    for n in expected["notes"]:
        env.tools["notes_create"](n["title"], "\n".join(n["must_contain"]), state=state)
    for note_id in expected["deleted_notes"]:
        env.tools["notes_delete"](note_id, state=state)


class ExtraWritePolicy:
    """The reference solver's steps, plus one write of its own in the last step: collateral damage."""

    name = "test:extra-write"

    def __init__(self, extra: str) -> None:
        self.extra = extra
        self.reference = ReferencePolicy()

    async def act(self, ctx):
        out = await self.reference.act(ctx)
        if "final_answer(" in out.text:
            out = PolicyOutput(text=out.text.replace("```python\n", f"```python\n{self.extra}\n", 1), role="teacher")
        return out


def test_reference_solver_solves_a_sample_of_each_split(apiworld):
    agent = CodeActAgent(apiworld, ReferencePolicy())
    for split in ("train", "test"):
        tasks = apiworld.tasks(split, 10)
        assert {t.metadata["template"] for t in tasks} == set(TEMPLATES)
        for task in tasks:
            traj = agent.run(task)
            assert traj.success and traj.status == "finished", (task.id, traj.error, traj.final_answer)
            assert len(traj.steps) >= 3 and all(s.execution_error is None for s in traj.steps)


def test_doing_nothing_fails_every_template(apiworld):
    agent = CodeActAgent(apiworld, WrongAnswerPolicy())
    for task in one_per_template(apiworld, "test"):
        traj = agent.run(task)
        assert traj.status == "finished" and not traj.success, task.id


@pytest.mark.parametrize("extra", ['payments_send("c001", 1.0, "oops")', 'notes_create("scratch", "temp")'])
def test_right_writes_plus_one_extra_write_fail(apiworld, extra):
    agent = CodeActAgent(apiworld, ExtraWritePolicy(extra))
    for task in one_per_template(apiworld):
        traj = agent.run(task)
        last = traj.steps[-1]
        assert extra in last.action and last.execution_error is None
        assert traj.status == "finished" and not traj.success, (task.id, last.action)


def test_grader_accepts_exactly_the_expected_writes_whatever_the_text_answer(apiworld):
    for task in one_per_template(apiworld):
        state = apiworld.new_state(task)
        assert not apiworld.grade("done", task, state).success  # nothing written yet
        do_expected_writes(apiworld, task, state)
        assert problems(apiworld, task, state) == []
        assert apiworld.grade("done", task, state).success
        assert apiworld.grade("agentkd-wrong-answer", task, state).success  # the text is ignored


def test_grader_names_collateral_damage(apiworld):
    refund, _, attendees, settle, _ = one_per_template(apiworld)
    tools = apiworld.tools

    state = apiworld.new_state(refund)
    do_expected_writes(apiworld, refund, state)
    tools["payments_send"](refund.answer["payments"][0]["to"], 5.0, "refund", state=state)
    assert any("unexpected payment" in p for p in problems(apiworld, refund, state))
    assert not apiworld.grade(None, refund, state).success

    state = apiworld.new_state(attendees)
    do_expected_writes(apiworld, attendees, state)
    tools["notes_delete"](state["notes"][0]["id"], state=state)
    assert any("should not have been" in p for p in problems(apiworld, attendees, state))

    state = apiworld.new_state(settle)
    do_expected_writes(apiworld, settle, state)
    state["contacts"][0]["phone"] = "+1-555-000-0000"
    assert problems(apiworld, settle, state) == ["contacts record c001 was changed"]


def test_grader_rejects_wrong_or_missing_writes(apiworld):
    refund, percent, attendees, settle, _ = one_per_template(apiworld)
    tools = apiworld.tools

    state = apiworld.new_state(percent)
    want = percent.answer["payments"][0]
    tools["payments_send"](want["to"], want["amount"] + 0.02, want["note_contains"], state=state)
    assert any("missing payment" in p for p in problems(apiworld, percent, state))

    state = apiworld.new_state(attendees)
    note = attendees.answer["notes"][0]
    tools["notes_create"](note["title"], "\n".join(note["must_contain"] + note["must_not_contain"][:1]), state=state)
    assert any("wrongly mentions" in p for p in problems(apiworld, attendees, state))

    state = apiworld.new_state(settle)
    for p in settle.answer["payments"]:
        tools["payments_send"](p["to"], p["amount"], p["note_contains"], state=state)
    assert problems(apiworld, settle, state) == [f"note {settle.answer['deleted_notes'][0]} was not deleted"]


def test_tools_return_json_and_refuse_bad_arguments_clearly(apiworld):
    task = apiworld.tasks("train")[0]
    state = apiworld.new_state(task)
    tools = apiworld.tools
    today = tools["calendar_today"](state=state)
    json.dumps([tools["payments_list"](60, state=state), tools["contacts_search"]("a", state=state),
                tools["calendar_list"](today, state=state), tools["notes_list"](state=state)])
    assert all("state" not in t.signature for t in tools.values())
    with pytest.raises(ValueError, match="contacts_search"):
        tools["payments_send"]("Alice", 10.0, "x", state=state)
    with pytest.raises(ValueError, match="positive"):
        tools["payments_send"]("c001", -3, "x", state=state)
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        tools["calendar_list"]("tomorrow", state=state)
    with pytest.raises(ValueError, match="since_days"):
        tools["payments_list"](-1, state=state)
    with pytest.raises(ValueError, match="notes_list"):
        tools["notes_delete"]("n999", state=state)
    assert state == apiworld.new_state(task)  # refused calls write nothing


def test_deterministic_per_task_and_from_the_seed(apiworld):
    task = apiworld.tasks("test")[7]
    first, second = apiworld.new_state(task), apiworld.new_state(task)
    assert first == second and first is not second
    json.dumps(first)
    again = load_environment("apiworld", tasks_per_split=N)
    assert [t.model_dump() for t in again.tasks("train")] == [t.model_dump() for t in apiworld.tasks("train")]
    other = load_environment("apiworld", seed=1, tasks_per_split=N)
    assert [t.prompt for t in other.tasks("train")] != [t.prompt for t in apiworld.tasks("train")]


def test_train_and_test_do_not_overlap(apiworld):
    train, test = apiworld.tasks("train"), apiworld.tasks("test")
    assert not {t.id for t in train} & {t.id for t in test}
    assert not {t.metadata["db_seed"] for t in train} & {t.metadata["db_seed"] for t in test}
    databases = lambda tasks: {json.dumps(apiworld.new_state(t), sort_keys=True) for t in tasks}  # noqa: E731
    assert not databases(train) & databases(test)
    assert len(load_environment("apiworld").tasks("test")) == 500
