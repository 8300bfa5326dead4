"""A generated encyclopedia of fictional people, places and organisations (deterministic from a seed).

Answers cannot come from a model's memory: every name and fact is invented here.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

ONSETS = ["b", "br", "c", "d", "dr", "f", "g", "gl", "h", "k", "kr", "l", "m", "n", "p", "qu", "r", "s",
          "st", "t", "th", "tr", "v", "vr", "z", "zh"]
VOWELS = ["a", "e", "i", "o", "u", "ae", "ei", "ou", "ia"]
CODAS = ["", "", "n", "r", "l", "s", "th", "x", "m", "nd", "rk", "st"]
OCCUPATIONS = ["cartographer", "glassblower", "astronomer", "bookbinder", "architect", "botanist",
               "clockmaker", "linguist", "shipwright", "composer", "apothecary", "surveyor"]
INDUSTRIES = ["shipbuilding", "textiles", "publishing", "mining", "banking", "brewing", "printing", "rail freight"]
ORG_KINDS = ["Guild", "Company", "Institute", "Society", "Works", "Trading House"]
REGIONS_PER_WORLD = 6


@dataclass
class Place:
    name: str
    region: str
    founded: int
    population: int


@dataclass
class Organisation:
    name: str
    industry: str
    founded: int
    headquarters: str
    founder: str = ""


@dataclass
class Person:
    name: str
    born: int
    birthplace: str
    occupation: str
    employer: str


@dataclass
class World:
    """One partition of the encyclopedia; train and test use disjoint worlds."""

    people: list[Person] = field(default_factory=list)
    places: list[Place] = field(default_factory=list)
    orgs: list[Organisation] = field(default_factory=list)

    def place(self, name: str) -> Place:
        return next(p for p in self.places if p.name == name)

    def org(self, name: str) -> Organisation:
        return next(o for o in self.orgs if o.name == name)

    def documents(self) -> list[tuple[str, str]]:
        """(title, text) for every entity."""
        docs = []
        for p in self.people:
            docs.append((p.name, f"{p.name} is {_article(p.occupation)} {p.occupation} born in {p.born} in {p.birthplace}. "
                                 f"{p.name} works for the {p.employer}."))
        for pl in self.places:
            docs.append((pl.name, f"{pl.name} is a city in the region of {pl.region}, founded in {pl.founded}. "
                                  f"It has a population of {pl.population:,}."))
        for o in self.orgs:
            docs.append((o.name, f"The {o.name} is {_article(o.industry)} {o.industry} organisation founded in {o.founded} by "
                                 f"{o.founder}. Its headquarters are in {o.headquarters}."))
        return docs


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


class NameMaker:
    """Unique pronounceable invented names."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.used: set[str] = set()

    def word(self, syllables: int) -> str:
        parts = [self.rng.choice(ONSETS) + self.rng.choice(VOWELS) for _ in range(syllables)]
        return ("".join(parts) + self.rng.choice(CODAS)).capitalize()

    def unique(self, make: "callable[[], str]") -> str:  # type: ignore[valid-type]
        while True:
            name = make()
            if name not in self.used and name.lower() not in {u.lower() for u in self.used}:
                self.used.add(name)
                return name


def build_world(rng: random.Random, names: NameMaker, n_people: int, n_places: int, n_orgs: int) -> World:
    """A self-contained world: every relation points inside it."""
    world = World()
    regions = [names.unique(lambda: names.word(2)) for _ in range(REGIONS_PER_WORLD)]
    for _ in range(n_places):
        world.places.append(Place(
            name=names.unique(lambda: names.word(rng.choice([2, 3]))),
            region=rng.choice(regions),
            founded=rng.randint(900, 1850),
            population=rng.randint(2_000, 2_000_000),
        ))
    for _ in range(n_orgs):
        world.orgs.append(Organisation(
            name=names.unique(lambda: f"{names.word(2)} {rng.choice(ORG_KINDS)}"),
            industry=rng.choice(INDUSTRIES),
            founded=rng.randint(1600, 1990),
            headquarters=rng.choice(world.places).name,
        ))
    for _ in range(n_people):
        world.people.append(Person(
            name=names.unique(lambda: f"{names.word(2)} {names.word(rng.choice([2, 3]))}"),
            born=rng.randint(1700, 1995),
            birthplace=rng.choice(world.places).name,
            occupation=rng.choice(OCCUPATIONS),
            employer=rng.choice(world.orgs).name,
        ))
    for org in world.orgs:
        org.founder = rng.choice(world.people).name
    return world


def build_worlds(seed: int, sizes: dict[str, tuple[int, int, int]]) -> dict[str, World]:
    """One world per split, entity names unique across all of them."""
    rng = random.Random(seed)
    names = NameMaker(rng)
    return {split: build_world(rng, names, *size) for split, size in sizes.items()}
