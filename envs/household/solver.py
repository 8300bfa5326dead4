"""The reference solver: a planner over the generated house that acts like a careful teacher.

It plans on a private copy of the episode's world, one command per step, explains each step, checks
a typical place for the first object before going where it really is (one recovery step, as a real
teacher would need), and ends with final_answer once the goal holds.
"""

from __future__ import annotations

from typing import Generator

from agentkd import Task

from .game import NOTHING, HouseState
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


DONE = 'Thought: The task is done.\n```python\nfinal_answer("done")\n```'


def next_step(state: HouseState, goal: dict) -> tuple[str, str] | None:
    """(thought, command) of the next action towards `goal` from wherever the episode is now (None: the goal
    holds). Used when the episode left the plan (a cascade's student acted, a slip): no wrong guess, no memory."""
    if state.satisfied(goal):
        return None
    house, kind = state.house, goal["object"]
    condition = {"clean": state.clean, "heat": state.hot, "cool": state.cool}.get(goal["goal"])
    target = sorted(house.of_kind(goal["target"]), key=lambda n: int(n.rsplit(" ", 1)[1]))[0]
    placed = {o for o in house.furniture[target].contents if condition is None or o in condition}

    def reach(name: str, why: str) -> tuple[str, str] | None:
        f = house.furniture[name]
        if f.room != state.room:
            return f"{why} It is in the {f.room}, so I go there first.", f"go to {f.room}"
        if state.at != name:
            return why, f"go to {name}"
        if f.openable and not f.is_open:
            return f"The {name} is closed. I open it.", f"open {name}"
        return None

    held = state.holding
    if held is not None and (object_kind(held) != kind or held in placed):
        spot = state.at if state.at is not None else house.rooms()[state.room][0]
        return (reach(spot, f"I do not need the {held}. I put it down at the {spot}.")
                or (f"I put the {held} down.", f"put {held} in/on {spot}"))
    if held is not None:
        if goal["goal"] in TREAT and held not in (condition or set()):
            place, verb, purpose = TREAT[goal["goal"]]
            station = sorted(house.of_kind(place))[0]
            at_station = reach(station, f"I have the {held}. I need to {purpose}, so I go to the {station}.")
            if at_station is not None and at_station[1].startswith("go to"):
                return at_station
            return f"I am at the {station}. I {verb} the {held}.", f"{verb} {held} with {station}"
        return (reach(target, f"Now I bring the {held} to the {target}.")
                or (f"I put the {held} in/on the {target}.", f"put {held} in/on {target}"))
    spots = sorted((name, o) for name, f in house.furniture.items() for o in f.contents
                   if object_kind(o) == kind and not (name == target and o in placed))
    if not spots:
        return None
    name, obj = min(spots, key=lambda item: (house.furniture[item[0]].room != state.room, item))
    return (reach(name, f"I need a {kind}; there is one at the {name}.")
            or (f"I see the {obj} here. I take it.", f"take {obj} from {name}"))


def _effective(task: Task, actions: list[str]) -> list[str]:
    """The episode's commands without those that did nothing (a slip, a command the world does not know)."""
    world = HouseState.start(build_house(task.metadata["seed"]))
    return [a for a in actions if world.act(a) != NOTHING]


def reference_solver(task: Task, state: HouseState | None = None) -> Generator[str, str, None]:
    """Carry out the plan, one command per step, then finish. Given the episode's live `state` (the agent loop
    does), it follows the plan while the episode's commands are the plan's, and otherwise acts from the state as
    it is (a cascade's teacher taking over from a student, a slipped step)."""
    steps = plan(task)
    if state is None:
        for thought, command in steps:
            yield _step(thought, command)
        yield DONE
        return
    while True:  # replayed once per step; every answer is computed from the state as it is now
        taken = _effective(task, state.actions)
        done = len(taken)
        if taken == [c for _t, c in steps[:done]]:
            yield _step(*steps[done]) if done < len(steps) else DONE
        else:
            following = next_step(state, task.metadata["goal"])
            yield DONE if following is None else _step(*following)
