"""Awkward numbers as exact decimal literals: drawn from a seeded RNG, shown with thousands separators."""

from __future__ import annotations

import random
from fractions import Fraction


def integer(rng: random.Random, lo: int, hi: int) -> str:
    """A random integer literal in [lo, hi]."""
    return str(rng.randint(lo, hi))


def decimal(rng: random.Random, lo: float, hi: float, places: int, strip: bool = False) -> str:
    """A random decimal literal in [lo, hi] with `places` decimals ('12.49'); `strip` drops trailing zeros."""
    scale = 10**places
    value = rng.randint(round(lo * scale), round(hi * scale))
    text = f"{value // scale}.{value % scale:0{places}d}" if places else str(value)
    if strip and "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def exact(literal: str) -> Fraction:
    """The exact value of a decimal literal."""
    return Fraction(literal)


def show(literal: str) -> str:
    """A literal as written in a question: '48271.5' -> '48,271.5'."""
    whole, _, frac = literal.partition(".")
    return f"{int(whole):,}" + (f".{frac}" if frac else "")
