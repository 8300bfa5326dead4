"""Question templates over a World: single-hop, bridge (2-hop) and comparison."""

from __future__ import annotations

import random
from typing import Any

from .world import World

KINDS = ("single", "bridge", "comparison")


def _task(split: str, n: int, kind: str, template: str, question: str, answer: Any, plan: dict[str, Any]) -> dict:
    return {
        "id": f"{split}-{n:05d}",
        "prompt": question,
        "answer": str(answer),
        "split": split,
        "metadata": {"kind": kind, "template": template, "plan": plan},
    }


def single_hop(world: World, rng: random.Random) -> tuple[str, str, Any, dict]:
    choice = rng.randrange(4)
    if choice == 0:
        p = rng.choice(world.people)
        return "born", f"In which year was {p.name} born?", p.born, {"entity": p.name, "fact": str(p.born)}
    if choice == 1:
        p = rng.choice(world.people)
        return ("occupation", f"What is the occupation of {p.name}?", p.occupation,
                {"entity": p.name, "fact": p.occupation})
    if choice == 2:
        o = rng.choice(world.orgs)
        return ("headquarters", f"In which city are the headquarters of the {o.name}?", o.headquarters,
                {"entity": o.name, "fact": o.headquarters})
    pl = rng.choice(world.places)
    return "place_founded", f"In which year was {pl.name} founded?", pl.founded, {"entity": pl.name, "fact": str(pl.founded)}


def bridge(world: World, rng: random.Random) -> tuple[str, str, Any, dict]:
    p = rng.choice(world.people)
    org = world.org(p.employer)
    place = world.place(p.birthplace)
    choice = rng.randrange(4)
    if choice == 0:
        return ("employer_founded", f"In which year was the organisation that {p.name} works for founded?",
                org.founded, {"entity": p.name, "bridge": org.name, "fact": str(org.founded)})
    if choice == 1:
        return ("employer_hq", f"In which city are the headquarters of the organisation that employs {p.name}?",
                org.headquarters, {"entity": p.name, "bridge": org.name, "fact": org.headquarters})
    if choice == 2:
        return ("birthplace_region", f"In which region is the birthplace of {p.name}?",
                place.region, {"entity": p.name, "bridge": place.name, "fact": place.region})
    return ("employer_founder", f"Who founded the organisation that {p.name} works for?",
            org.founder, {"entity": p.name, "bridge": org.name, "fact": org.founder})


def comparison(world: World, rng: random.Random) -> tuple[str, str, Any, dict]:
    if rng.random() < 0.5:
        a, b = rng.sample(world.people, 2)
        while a.born == b.born:
            a, b = rng.sample(world.people, 2)
        return ("born_earlier", f"Who was born earlier, {a.name} or {b.name}?",
                a.name if a.born < b.born else b.name,
                {"entities": [a.name, b.name], "facts": [str(a.born), str(b.born)], "earlier": True})
    a, b = rng.sample(world.orgs, 2)
    while a.founded == b.founded:
        a, b = rng.sample(world.orgs, 2)
    return ("founded_earlier", f"Which organisation was founded first, the {a.name} or the {b.name}?",
            a.name if a.founded < b.founded else b.name,
            {"entities": [a.name, b.name], "facts": [str(a.founded), str(b.founded)], "earlier": True})


GENERATORS = {"single": single_hop, "bridge": bridge, "comparison": comparison}


def make_tasks(world: World, split: str, n: int, seed: int) -> list[dict]:
    """n distinct questions, kinds interleaved (single, bridge, comparison, ...)."""
    rng = random.Random(f"{seed}-{split}")
    tasks, seen = [], set()
    attempts = 0
    while len(tasks) < n and attempts < n * 20:
        attempts += 1
        kind = KINDS[len(tasks) % len(KINDS)]
        template, question, answer, plan = GENERATORS[kind](world, rng)
        if question in seen:
            continue
        seen.add(question)
        plan["template"] = template
        tasks.append(_task(split, len(tasks), kind, template, question, answer, plan))
    return tasks
