"""The reference solver: a planner over the generated house that acts like a careful teacher.

It plans on a private copy of the episode's world, one command per step, explains each step, checks
a typical place for the first object before going where it really is (one recovery step, as a real
teacher would need), and ends with final_answer once the goal holds.
"""

from __future__ import annotations

from typing import Generator

from agentkd import Task

from .game import HouseState
from .world import FOUND_IN, OPENABLE, build_house, object_kind

TREAT = {"clean": ("sinkbasin", "clean", "clean it"), "heat": ("microwave", "heat", "heat it"),
         "cool": ("fridge", "cool", "cool it")}


def _step(thought: str, command: str) -> str:
    return f'Thought: {thought}\n```python\nprint(act("{command}"))\n```'


def plan(task: Task) -> list[tuple[str, str]]:
    """(thought, command) for every action of `task`, simulated on a private copy of its world."""
    return plan_for(task.metadata["seed"], task.metadata["goal"])


def plan_for(seed: int, goal: dict) -> list[tuple[str, str]]:
    """(thought, command) for every action reaching `goal` in the house of `seed`."""
    house = build_house(seed)
    world = HouseState.start(house)
    kind, target_kind = goal["object"], goal["target"]
    wanted = sorted(o for o in house.objects if object_kind(o) == kind)[: 2 if goal["goal"] == "two" else 1]
    target = sorted(house.of_kind(target_kind), key=lambda n: int(n.rsplit(" ", 1)[1]))[0]
    steps: list[tuple[str, str]] = []

    def do(thought: str, command: str) -> str:
        observation = world.act(command)
        assert observation != "Nothing happens.", f"planner error: {command!r} in house {seed}"
        steps.append((thought, command))
        return observation

    def reach(name: str, why: str, open_it: bool = True) -> None:
        room = house.furniture[name].room
        if room != world.room:
            do(f"{why} It is in the {room}, so I go there first.", f"go to {room}")
            why = f"I am in the {room}. I go to the {name}."
        do(why, f"go to {name}")
        if open_it and house.furniture[name].openable and not world.house.furniture[name].is_open:
            do(f"The {name} is closed. I open it.", f"open {name}")

    # one wrong guess: a typical place for the object that holds none
    first_home = house.objects[wanted[0]]
    holders = {house.objects[o] for o in house.objects if object_kind(o) == kind}
    guesses = [f for t in FOUND_IN[kind] for f in sorted(house.of_kind(t)) if f not in holders and f != target]
    if guesses:
        guess = guesses[0]
        reach(guess, f"I need a {kind}. A {kind} is often kept at a {house.furniture[guess].kind}; "
                     f"I will check the {guess}.")
        reach(first_home, f"There is no {kind} at the {guess}. I will look at the {first_home} instead.")
    else:
        reach(first_home, f"I need a {kind}. I will look at the {first_home}.")
    for number, obj in enumerate(wanted):
        if number:
            reach(house.objects[obj], f"Now the second {kind}: there is one at the {house.objects[obj]}.")
        do(f"I see the {obj} here. I take it.", f"take {obj} from {house.objects[obj]}")
        if goal["goal"] in TREAT:
            place, verb, purpose = TREAT[goal["goal"]]
            station = sorted(house.of_kind(place))[0]
            reach(station, f"I have the {obj}. I need to {purpose}, so I go to the {station}.", open_it=False)
            do(f"I am at the {station}. I {verb} the {obj}.", f"{verb} {obj} with {station}")
        prep = "in" if target_kind in OPENABLE else "on"
        reach(target, f"Now I bring the {obj} to the {target}.")
        do(f"I put the {obj} {prep} the {target}.", f"put {obj} in/on {target}")
    assert world.satisfied(goal), f"planner error: goal not reached in house {seed}"
    return steps


def reference_solver(task: Task) -> Generator[str, str, None]:
    """Carry out the plan, one command per step, then finish."""
    for thought, command in plan(task):
        yield _step(thought, command)
    yield 'Thought: The task is done.\n```python\nfinal_answer("done")\n```'
