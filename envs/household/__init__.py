"""household: an ALFWorld-like text world for long-horizon episodes (8–20 actions).

Written with agentkd's public API exactly as a user would write an environment. Every task is a
generated house (four rooms, numbered furniture, containers that open and close, typed objects)
and a goal: put an object somewhere, clean / heat / cool it first, or put two of a kind. The agent
acts with `act(command)` (one text command, the game's answer back) and can list what is possible
with `commands()`. Graded on the final state of the house. Train and test houses come from disjoint
seeds.
"""

from __future__ import annotations

import random
from typing import Any

from agentkd import Environment, Task, tool

from .game import HouseState
from .solver import plan_for, reference_solver
from .world import build_house, describe_goal, make_goal

INSTRUCTIONS = """You are in a house and must reach the goal you are given by acting in it.
Act with act(command), which carries out one text command and returns what happens; print its result.
Commands: look, inventory, go to <room>, go to <place> (a place in the room you are in), open <place>, close <place>, take <object> from <place>,
put <object> in/on <place>, clean <object> with <sinkbasin>, heat <object> with <microwave>,
cool <object> with <fridge>. Places and objects are named with their number, e.g. "cabinet 2", "mug 1".
You can carry one object at a time. commands() lists every command that would do something now.
When the goal is reached, call final_answer("done")."""
TEST_SEED_OFFSET = 1_000_000
MIN_ACTIONS = 7
"""Goals the planner reaches in fewer actions are drawn again: episodes take 8 to about 20 steps."""


def build_state(task: Task) -> HouseState:
    return HouseState.start(build_house(task.metadata["seed"]))


@tool
def act(command: str, state: HouseState) -> str:
    """Carry out one text command in the house (e.g. "go to cabinet 1", "take mug 1 from cabinet 1") and return
    what happens."""
    return state.act(str(command))


@tool
def commands(state: HouseState) -> str:
    """List the commands that would do something now, one per line."""
    return "\n".join(state.admissible())


def grade(state: HouseState, task: Task) -> float:
    return 1.0 if state.satisfied(task.metadata["goal"]) else 0.0


def make_tasks(split: str, n: int, seed: int = 0) -> list[dict[str, Any]]:
    """n tasks of a split; a task's house comes from its own seed (train and test seeds are disjoint)."""
    rng = random.Random(f"household-{seed}-{split}")
    base = seed * 10 * TEST_SEED_OFFSET + (TEST_SEED_OFFSET if split == "test" else 0)
    tasks: list[dict[str, Any]] = []
    house_seed = base
    while len(tasks) < n:
        house = build_house(house_seed)
        goal = make_goal(house, rng)
        if goal is not None and len(plan_for(house_seed, goal)) >= MIN_ACTIONS:
            rooms = "\n".join(f"- {room}: {', '.join(names)}" for room, names in house.rooms().items())
            prompt = (f"You are in the {house.start_room} of a house with these places:\n{rooms}\n"
                      f"Your task is to: {describe_goal(goal)}.")
            tasks.append({"id": f"{split}-{len(tasks):05d}", "split": split, "prompt": prompt,
                          "answer": "done", "metadata": {"seed": house_seed, "goal": goal, "kind": goal["goal"]}})
        house_seed += 1
    return tasks


def load_environment(seed: int = 0, tasks_per_split: int = 2000, max_steps: int = 30) -> Environment:
    """The household environment: `tasks_per_split` houses per split (train and test disjoint by seed)."""
    return Environment(
        name="household",
        version=f"1-seed{seed}",
        instructions=INSTRUCTIONS,
        tasks=[t for split in ("train", "test") for t in make_tasks(split, tasks_per_split, seed)],
        tools=[act, commands],
        grader=grade,
        max_steps=max_steps,
        setup_state=build_state,
        reference_solver=reference_solver,
    )
