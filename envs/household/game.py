"""The state of one episode in a house and the text commands that change it (ALFWorld-like answers)."""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field

from .world import CLEANABLE, COOLABLE, HEATABLE, House, object_kind

NOTHING = "Nothing happens."


@dataclass
class HouseState:
    """Where the agent is, what it holds, what is where and in which condition."""

    house: House
    room: str = ""
    at: str | None = None
    """The furniture the agent stands at, None in the middle of `room`."""
    holding: str | None = None
    clean: set[str] = field(default_factory=set)
    hot: set[str] = field(default_factory=set)
    cool: set[str] = field(default_factory=set)
    actions: list[str] = field(default_factory=list)

    @classmethod
    def start(cls, house: House) -> HouseState:
        return cls(copy.deepcopy(house), room=house.start_room)

    # what the agent sees -----------------------------------------------------------------------
    def _seen(self, name: str) -> str:
        f = self.house.furniture[name]
        if f.openable and not f.is_open:
            return f"The {name} is closed."
        things = ", ".join(f"a {o}" for o in f.contents)
        where = "In" if f.openable or f.kind in ("garbagecan", "sinkbasin") else "On"
        return f"{where} the {name}, you see {things if things else 'nothing'}."

    def look(self) -> str:
        if self.at is None:
            here = ", ".join(self.house.rooms()[self.room])
            others = ", ".join(r for r in self.house.rooms() if r != self.room)
            return f"You are in the {self.room}. Around you: {here}. Other rooms: {others}."
        return f"You are at the {self.at} in the {self.house.furniture[self.at].room}. {self._seen(self.at)}"

    def admissible(self) -> list[str]:
        """Every command that would do something now."""
        out = ["look", "inventory"] + [f"go to {r}" for r in self.house.rooms() if r != self.room]
        out += [f"go to {f}" for f in self.house.rooms()[self.room] if f != self.at]
        if self.at is not None:
            here = self.house.furniture[self.at]
            if here.openable:
                out.append(f"{'close' if here.is_open else 'open'} {here.name}")
            if self.holding is None and (here.is_open or not here.openable):
                out += [f"take {o} from {here.name}" for o in here.contents]
            if self.holding is not None:
                if here.is_open or not here.openable:
                    out.append(f"put {self.holding} in/on {here.name}")
                kind = object_kind(self.holding)
                if here.kind == "sinkbasin" and kind in CLEANABLE:
                    out.append(f"clean {self.holding} with {here.name}")
                if here.kind == "microwave" and kind in HEATABLE:
                    out.append(f"heat {self.holding} with {here.name}")
                if here.kind == "fridge" and kind in COOLABLE:
                    out.append(f"cool {self.holding} with {here.name}")
        return out

    # acting --------------------------------------------------------------------------------------
    def act(self, command: str) -> str:
        """Carry out one text command and return what happens."""
        text = " ".join(command.strip().lower().split())
        self.actions.append(text)
        for pattern, handler in self._commands():
            match = re.fullmatch(pattern, text)
            if match:
                return handler(*match.groups())
        return NOTHING

    def _commands(self) -> list[tuple[str, object]]:
        return [
            (r"look", self.look),
            (r"inventory", lambda: f"You are carrying: a {self.holding}." if self.holding else "You are not carrying anything."),
            (r"go to (.+)", self._go),
            (r"open (.+)", lambda f: self._open(f, True)),
            (r"close (.+)", lambda f: self._open(f, False)),
            (r"take (.+) from (.+)", self._take),
            (r"put (.+) (?:in/on|in|on) (.+)", self._put),
            (r"clean (.+) with (.+)", lambda o, f: self._treat(o, f, "sinkbasin", CLEANABLE, self.clean, "clean")),
            (r"heat (.+) with (.+)", lambda o, f: self._treat(o, f, "microwave", HEATABLE, self.hot, "heat")),
            (r"cool (.+) with (.+)", lambda o, f: self._treat(o, f, "fridge", COOLABLE, self.cool, "cool")),
            (r"examine (.+)", lambda f: self._seen(f) if f == self.at else NOTHING),
        ]

    def _go(self, name: str) -> str:
        rooms = self.house.rooms()
        if name in rooms:
            if name == self.room and self.at is None:
                return f"You are already in the {name}."
            self.room, self.at = name, None
            return f"You walk to the {name}. Around you: {', '.join(rooms[name])}."
        if name not in self.house.furniture:
            return NOTHING
        if self.house.furniture[name].room != self.room:
            return f"The {name} is not in the {self.room}; it is in the {self.house.furniture[name].room}."
        if name == self.at:
            return f"You are already at the {name}. {self._seen(name)}"
        self.at = name
        return f"You arrive at the {name}. {self._seen(name)}"

    def _open(self, name: str, opening: bool) -> str:
        f = self.house.furniture.get(name)
        if f is None or name != self.at or not f.openable or f.is_open == opening:
            return NOTHING
        f.is_open = opening
        if not opening:
            return f"You close the {name}."
        return f"You open the {name}. {self._seen(name)}"

    def _reachable(self, name: str) -> bool:
        f = self.house.furniture.get(name)
        return f is not None and name == self.at and (f.is_open or not f.openable)

    def _take(self, obj: str, name: str) -> str:
        if self.holding is not None or not self._reachable(name) or obj not in self.house.furniture[name].contents:
            return NOTHING
        self.house.furniture[name].contents.remove(obj)
        self.holding = obj
        return f"You pick up the {obj} from the {name}."

    def _put(self, obj: str, name: str) -> str:
        if self.holding != obj or not self._reachable(name):
            return NOTHING
        self.house.furniture[name].contents.append(obj)
        self.holding = None
        return f"You put the {obj} in/on the {name}."

    def _treat(self, obj: str, name: str, kind: str, allowed: set[str], done: set[str], verb: str) -> str:
        f = self.house.furniture.get(name)
        if self.holding != obj or f is None or f.kind != kind or name != self.at or object_kind(obj) not in allowed:
            return NOTHING
        done.add(obj)
        if verb == "heat":
            self.cool.discard(obj)
        if verb == "cool":
            self.hot.discard(obj)
        return f"You {verb} the {obj} using the {name}."

    # grading ---------------------------------------------------------------------------------------
    def satisfied(self, goal: dict) -> bool:
        """Whether the final state achieves the goal."""
        condition = {"clean": self.clean, "heat": self.hot, "cool": self.cool}.get(goal["goal"])
        placed = [o for f in self.house.furniture.values() if f.kind == goal["target"] for o in f.contents
                  if object_kind(o) == goal["object"] and (condition is None or o in condition)]
        return len(placed) >= (2 if goal["goal"] == "two" else 1)
