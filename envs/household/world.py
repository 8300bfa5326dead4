"""A generated house: rooms with numbered furniture (some open and close), typed objects placed in them."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

# room -> (furniture type, min count, max count)
ROOMS: dict[str, list[tuple[str, int, int]]] = {
    "kitchen": [("countertop", 1, 3), ("cabinet", 2, 5), ("drawer", 1, 3), ("fridge", 1, 1), ("microwave", 1, 1),
                ("sinkbasin", 1, 1), ("stoveburner", 1, 2), ("diningtable", 1, 1), ("garbagecan", 1, 1)],
    "living room": [("sofa", 1, 1), ("coffeetable", 1, 1), ("shelf", 1, 3), ("tvstand", 1, 1), ("armchair", 0, 1)],
    "bedroom": [("bed", 1, 1), ("desk", 1, 1), ("dresser", 1, 1), ("drawer", 1, 2), ("shelf", 0, 2)],
    "bathroom": [("countertop", 1, 1), ("cabinet", 1, 2), ("towelholder", 1, 1), ("toilet", 1, 1)],
}
OPENABLE = {"cabinet", "drawer", "fridge", "microwave"}

# object type -> furniture types it is found in, most typical first
FOUND_IN: dict[str, list[str]] = {
    "mug": ["cabinet", "countertop", "coffeetable", "diningtable", "shelf"],
    "cup": ["cabinet", "countertop", "diningtable", "shelf"],
    "bowl": ["cabinet", "countertop", "diningtable", "shelf"],
    "plate": ["cabinet", "diningtable", "countertop"],
    "apple": ["countertop", "fridge", "diningtable", "garbagecan"],
    "potato": ["countertop", "fridge", "diningtable", "garbagecan"],
    "tomato": ["fridge", "countertop", "diningtable"],
    "egg": ["fridge", "countertop", "diningtable"],
    "knife": ["drawer", "countertop", "diningtable"],
    "spoon": ["drawer", "countertop", "diningtable"],
    "book": ["shelf", "desk", "bed", "sofa", "coffeetable"],
    "pen": ["desk", "drawer", "shelf"],
    "cellphone": ["bed", "desk", "sofa", "dresser"],
    "keychain": ["dresser", "coffeetable", "tvstand", "drawer"],
    "remotecontrol": ["sofa", "coffeetable", "tvstand", "armchair"],
    "soapbar": ["countertop", "cabinet", "toilet"],
    "cloth": ["cabinet", "drawer", "countertop", "towelholder"],
}
CLEANABLE = {"mug", "cup", "bowl", "plate", "apple", "potato", "tomato", "knife", "spoon", "cloth", "egg"}
HEATABLE = {"mug", "cup", "apple", "potato", "tomato", "egg", "plate"}
COOLABLE = {"mug", "cup", "bowl", "apple", "potato", "tomato", "egg", "plate"}
# object type -> furniture types a goal may ask to put it in
PUT_IN: dict[str, list[str]] = {
    "mug": ["cabinet", "coffeetable", "diningtable", "shelf", "countertop", "desk"],
    "cup": ["cabinet", "diningtable", "shelf", "countertop"],
    "bowl": ["cabinet", "diningtable", "shelf", "countertop", "fridge"],
    "plate": ["cabinet", "diningtable", "countertop", "fridge"],
    "apple": ["diningtable", "countertop", "fridge", "garbagecan"],
    "potato": ["diningtable", "countertop", "fridge", "garbagecan"],
    "tomato": ["diningtable", "countertop", "fridge"],
    "egg": ["diningtable", "countertop", "fridge", "garbagecan"],
    "knife": ["drawer", "diningtable", "countertop"],
    "spoon": ["drawer", "diningtable", "countertop"],
    "book": ["shelf", "desk", "bed", "coffeetable", "sofa"],
    "pen": ["desk", "drawer", "shelf"],
    "cellphone": ["desk", "bed", "dresser", "sofa"],
    "keychain": ["dresser", "drawer", "coffeetable", "shelf"],
    "remotecontrol": ["coffeetable", "tvstand", "sofa", "armchair"],
    "soapbar": ["cabinet", "countertop", "toilet"],
    "cloth": ["cabinet", "drawer", "countertop", "towelholder"],
}
GOALS = ("place", "clean", "heat", "cool", "two")


@dataclass
class Furniture:
    name: str
    """`cabinet 2`: type and number, unique in the house."""
    kind: str
    room: str
    openable: bool
    is_open: bool = False
    contents: list[str] = field(default_factory=list)


@dataclass
class House:
    """The generated layout and where every object starts (a world state is built from it per episode)."""

    furniture: dict[str, Furniture]
    objects: dict[str, str]
    """object name (`mug 2`) -> furniture it starts in."""
    start_room: str

    def of_kind(self, kind: str) -> list[str]:
        return [f.name for f in self.furniture.values() if f.kind == kind]

    def rooms(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for f in self.furniture.values():
            out.setdefault(f.room, []).append(f.name)
        return out


def object_kind(name: str) -> str:
    return name.rsplit(" ", 1)[0]


def build_house(seed: int) -> House:
    """The house of one seed (rooms, numbered furniture, 14–24 objects in plausible places)."""
    rng = random.Random(seed)
    furniture: dict[str, Furniture] = {}
    counts: dict[str, int] = {}
    for room, kinds in ROOMS.items():
        for kind, low, high in kinds:
            for _ in range(rng.randint(low, high)):
                counts[kind] = counts.get(kind, 0) + 1
                name = f"{kind} {counts[kind]}"
                furniture[name] = Furniture(name, kind, room, kind in OPENABLE)
    objects: dict[str, str] = {}
    numbers: dict[str, int] = {}
    kinds = sorted(FOUND_IN)
    for _ in range(rng.randint(14, 24)):
        kind = rng.choice(kinds)
        places = [f for k in FOUND_IN[kind] for f in sorted(furniture) if furniture[f].kind == k]
        if not places:
            continue
        numbers[kind] = numbers.get(kind, 0) + 1
        name = f"{kind} {numbers[kind]}"
        spot = rng.choice(places)
        objects[name] = spot
        furniture[spot].contents.append(name)
    return House(furniture, objects, rng.choice(sorted(ROOMS)))


def make_goal(house: House, rng: random.Random) -> dict | None:
    """A goal this house can satisfy, not already satisfied at the start; None if the draw fails."""
    goal = rng.choice(GOALS)
    present: dict[str, list[str]] = {}
    for name in house.objects:
        present.setdefault(object_kind(name), []).append(name)
    need = {"clean": CLEANABLE, "heat": HEATABLE, "cool": COOLABLE}.get(goal, set(present))
    candidates = sorted(k for k, names in present.items() if k in need and len(names) >= (2 if goal == "two" else 1))
    if not candidates:
        return None
    kind = rng.choice(candidates)
    targets = [t for t in PUT_IN[kind] if house.of_kind(t)]
    start_kinds = {house.furniture[house.objects[o]].kind for o in present[kind]}
    targets = [t for t in targets if t not in start_kinds] or []
    if not targets:
        return None
    return {"goal": goal, "object": kind, "target": rng.choice(targets)}


def describe_goal(goal: dict) -> str:
    obj, target = goal["object"], goal["target"]
    prep = "in" if target in OPENABLE or target in ("garbagecan", "sinkbasin") else "on"
    return {
        "place": f"put a {obj} {prep} a {target}",
        "clean": f"put a clean {obj} {prep} a {target}",
        "heat": f"heat a {obj} and put it {prep} a {target}",
        "cool": f"cool a {obj} and put it {prep} a {target}",
        "two": f"put two {obj}s {prep} a {target}",
    }[goal["goal"]]
