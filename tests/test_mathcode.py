"""mathcode: GSM-hard style word problems, solved by writing Python."""

import importlib
import re
from fractions import Fraction

import pytest

from agentkd import CodeActAgent, ReferencePolicy, load_environment
from agentkd.env.loading import environment_module

N = 60


@pytest.fixture(scope="module")
def mathcode():
    return load_environment("mathcode", tasks_per_split=N)


def test_reference_solver_solves_a_sample_of_each_split(mathcode):
    agent = CodeActAgent(mathcode, ReferencePolicy())
    for split in ("train", "test"):
        tasks = mathcode.tasks(split, 10)
        assert {t.metadata["template"] for t in tasks} >= {"inventory", "travel", "compound_interest",
                                                           "fuel_delivery", "bill_split"}
        for task in tasks:
            traj = agent.run(task)
            assert traj.success and traj.status == "finished", (task.id, traj.error, traj.final_answer)
            assert len(traj.steps) == 3 and all(s.execution_error is None for s in traj.steps)
            assert "final_answer(" in traj.steps[-1].action


def test_there_are_at_least_five_templates_with_awkward_numbers(mathcode):
    tasks = mathcode.tasks("train")
    assert len({t.metadata["template"] for t in tasks}) >= 5
    for task in tasks[:14]:
        numbers = re.findall(r"\d[\d,]*\.?\d*", task.prompt)
        assert any(len(n.replace(",", "").replace(".", "")) >= 4 for n in numbers), task.prompt
        assert task.answer >= 100


def test_grader_has_a_relative_tolerance_and_rejects_wrong_answers(mathcode):
    task = mathcode.tasks("test")[0]
    target = task.answer
    assert mathcode.grade(target, task).success
    assert mathcode.grade(f"{round(target, 2):,}", task).success          # rounded to the cent, with commas
    assert mathcode.grade(target * (1 + 5e-5), task).success
    assert not mathcode.grade(target * (1 + 1e-3), task).success
    assert not mathcode.grade("agentkd-wrong-answer", task).success
    assert not mathcode.grade(None, task).success


def test_answers_are_exact(mathcode):
    TEMPLATES = importlib.import_module(environment_module("mathcode").__name__ + ".templates").TEMPLATES

    for task in mathcode.tasks("train", 14):
        exact = TEMPLATES[task.metadata["template"]].answer(task.metadata["values"])
        assert isinstance(exact, Fraction)
        assert abs(task.answer - float(exact)) <= 1e-9 * abs(float(exact))


def test_wrong_answer_policy_fails_the_episode(mathcode):
    from agentkd.agent.env_check import WrongAnswerPolicy

    traj = CodeActAgent(mathcode, WrongAnswerPolicy()).run(mathcode.tasks("test")[3])
    assert traj.status == "finished" and not traj.success and traj.score == 0.0


def test_deterministic_from_the_seed(mathcode):
    again = load_environment("mathcode", tasks_per_split=N)
    for split in ("train", "test"):
        assert [t.model_dump() for t in again.tasks(split)] == [t.model_dump() for t in mathcode.tasks(split)]
    other = load_environment("mathcode", seed=1, tasks_per_split=N)
    assert [t.prompt for t in other.tasks("train")] != [t.prompt for t in mathcode.tasks("train")]


def test_train_and_test_do_not_overlap():
    env = load_environment("mathcode")  # the default size: 1000 per split
    train, test = env.tasks("train"), env.tasks("test")
    assert len(train) == len(test) == 1000
    assert not {t.prompt for t in train} & {t.prompt for t in test}
    assert not {t.id for t in train} & {t.id for t in test}
    assert len({t.prompt for t in train}) == 1000


def test_no_tools_besides_the_worker(mathcode):
    assert mathcode.tools == {} and mathcode.setup_state is None
