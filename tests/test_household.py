"""The household environment: generated houses, text commands, grading on the final state, the planner."""

import collections

import pytest

from agentkd import CodeActAgent, PolicyOutput, ReferencePolicy, load_environment
from agentkd.env.loading import environment_module


@pytest.fixture(scope="module")
def household():
    return load_environment("household", tasks_per_split=120)


@pytest.fixture(scope="module")
def game():
    return environment_module("household").game


def by_kind(env, split="train"):
    out = collections.defaultdict(list)
    for task in env.tasks(split):
        out[task.metadata["goal"]["goal"]].append(task)
    return out


def test_tasks_are_seeded_long_and_disjoint(household):
    again = load_environment("household", tasks_per_split=120)
    assert [t.prompt for t in household.tasks("test")] == [t.prompt for t in again.tasks("test")]
    train = {t.metadata["seed"] for t in household.tasks("train")}
    assert not train & {t.metadata["seed"] for t in household.tasks("test")}
    assert set(by_kind(household)) == {"place", "clean", "heat", "cool", "two"}
    plan = environment_module("household").solver.plan
    lengths = [len(plan(t)) + 1 for t in household.tasks("train")]  # + final_answer
    assert min(lengths) >= 8 and max(lengths) <= 25 and sum(lengths) / len(lengths) > 10


def test_the_reference_solver_solves_every_kind_with_a_recovery_step(household):
    agent = CodeActAgent(household, ReferencePolicy())
    for kind, tasks in sorted(by_kind(household, "test").items()):
        traj = agent.run(tasks[0])
        assert traj.success and traj.status == "finished", (kind, traj.steps[-1].observation)
        assert len(traj.steps) >= 8
        assert any("There is no" in s.thought for s in traj.steps[:4]), kind  # the wrong first guess


class Plan:
    """Plays fixed commands then finishes: a scripted agent for testing the grading."""

    name = "plan"

    def __init__(self, commands):
        self.commands = commands

    async def act(self, ctx):
        if ctx.step_index < len(self.commands):
            return PolicyOutput(f'Thought: go.\n```python\nprint(act("{self.commands[ctx.step_index]}"))\n```', "student")
        return PolicyOutput('Thought: done.\n```python\nfinal_answer("done")\n```', "student")


def test_grading_is_on_the_final_state(household):
    plan = environment_module("household").solver.plan
    task = by_kind(household)["clean"][0]
    commands = [c for _, c in plan(task)]
    skipped = [c for c in commands if not c.startswith("clean ")]  # never cleaned
    assert CodeActAgent(household, Plan(commands), max_steps=40).run(task).success
    wrong = CodeActAgent(household, Plan(skipped), max_steps=40).run(task)
    assert wrong.status == "finished" and not wrong.success and wrong.final_answer == "done"
    nothing = CodeActAgent(household, Plan([]), max_steps=40).run(task)
    assert not nothing.success  # saying "done" is not doing it


def test_commands_answer_like_a_text_game(household, game):
    task = household.tasks("train")[0]
    state = household.new_state(task)
    assert state.act("dance") == "Nothing happens."
    assert "Around you:" in state.act("look")
    elsewhere = next(f for f, x in state.house.furniture.items() if x.room != state.room)
    assert "is not in the" in state.act(f"go to {elsewhere}")
    for command in state.admissible():
        probe = game.HouseState.start(state.house)
        probe.room, probe.at = state.room, state.at
        assert probe.act(command) != "Nothing happens.", command
    closed = next(f for f, x in state.house.furniture.items() if x.openable and x.room == state.room)
    assert state.act(f"go to {closed}").endswith(f"The {closed} is closed.")
    assert "take" not in " ".join(state.admissible())
    assert state.act(f"open {closed}").startswith(f"You open the {closed}.")
    assert f"close {closed}" in state.admissible()


def test_the_reference_solver_takes_over_from_wherever_a_student_left_the_house(household):
    """A cascade defers single steps to the teacher: after a student wandered (random admissible commands: picking
    things up, opening, walking away) the reference solver must act from the state as it is, not replay its plan."""
    import random

    teacher = ReferencePolicy()

    class Wanderer:
        name = "wanderer"

        def __init__(self, steps: int, seed: int) -> None:
            self.steps, self.rng = steps, random.Random(seed)

        async def act(self, ctx):
            if ctx.step_index < self.steps:
                command = self.rng.choice(ctx.state.admissible())
                return PolicyOutput(text=f'Thought: let me see.\n```python\nprint(act("{command}"))\n```',
                                    role="student")
            return await teacher.act(ctx)

    for i, task in enumerate(household.tasks("test")[:12]):
        for wandered in (2, 6):
            traj = CodeActAgent(household, Wanderer(wandered, i)).run(task)
            assert traj.success, (task.id, wandered, [s.action for s in traj.steps])
            assert all(s.observation != "Nothing happens." for s in traj.steps[wandered:])  # no blind replay
