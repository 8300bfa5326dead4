"""Specs: what a run records so that any process can rebuild its environment and policies from files.

Pure data at the bottom of the import graph. `agentkd.env.loading` resolves and loads an `EnvSpec`;
`agentkd.policies.registry` validates and builds a `PolicySpec`.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agentkd.errors import AgentKDError


class SpecError(AgentKDError):
    """A spec (policy kind, settings, environment arguments) is invalid."""


class PolicySpec(BaseModel):
    """A policy as data: a registered kind and its settings (nested specs for composite policies).

    `PolicySpec(kind="cascade", settings={"student": {...}, "teacher": {"kind": "reference"}})`;
    `agentkd.policies.build_policy(spec)` makes the policy and `validate_policy_spec` fills in defaults.
    """

    model_config = ConfigDict(extra="forbid")

    kind: str
    settings: dict[str, Any] = Field(default_factory=dict)


class EnvSpec(BaseModel):
    """An environment as data: where it lives, in a form that does not depend on the working directory
    (an importable module, or an absolute path), and the keyword arguments it is built with."""

    model_config = ConfigDict(extra="forbid")

    target: str
    """`module[:attr]` or `/absolute/path/env.py[:attr]` (see `agentkd.env.loading.resolve_env_spec`)."""
    kwargs: dict[str, Any] = Field(default_factory=dict)
    given: str | None = None
    """The spec as the user wrote it (shown in messages; not part of the identity)."""

    def identity(self) -> dict[str, Any]:
        """What makes two environment specs the same job."""
        return {"env": self.target, "env_kwargs": self.kwargs}

    def __str__(self) -> str:
        args = "".join(f" {k}={v!r}" for k, v in self.kwargs.items())
        return f"{self.given or self.target}{args}"


def parse_env_args(items: list[str] | None) -> dict[str, Any]:
    """`["tasks_per_split=500", "seed=3", "name=x"]` -> {"tasks_per_split": 500, "seed": 3, "name": "x"}.

    Values are read as JSON when they parse (numbers, true/false, null, lists, objects), else as text."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise SpecError(f"environment argument {item!r} is not KEY=VALUE with a Python name as KEY "
                            "(e.g. --env-arg tasks_per_split=500)")
        if key in out:
            raise SpecError(f"environment argument {key!r} is given twice")
        try:
            out[key] = json.loads(raw)
        except ValueError:
            out[key] = raw
    return out


def with_settings(data: dict[str, Any], items: list[str] | None) -> dict[str, Any]:
    """A copy of `data` (a settings model's fields) with each `KEY=VALUE` of `items` set, as `--set` gives them.

    A dotted KEY reaches into nested settings (`train.lr=5e-4`; in a nested policy spec, its settings:
    `student.k=2`). VALUE is read as JSON when it parses (numbers, true/false, null, lists), else as text. Whether
    a key exists is left to the settings model that validates the result."""
    out = copy.deepcopy(data)
    for item in items or []:
        key, sep, raw = item.partition("=")
        path = key.strip().split(".")
        if not sep or not all(part.isidentifier() for part in path):
            raise SpecError(f"setting {item!r} is not KEY=VALUE with a setting's name as KEY (e.g. --set samples=5, "
                            "--set student.k=2)")
        place = out
        for depth, part in enumerate(path[:-1]):
            inner = place.get(part)
            if isinstance(inner, dict) and set(inner) == {"kind", "settings"}:
                inner = inner["settings"]  # a nested policy spec: its settings
            if not isinstance(inner, dict):
                raise SpecError(f"setting {item!r}: {'.'.join(path[:depth + 1])} holds no settings")
            place = inner
        try:
            place[path[-1]] = json.loads(raw)
        except ValueError:
            place[path[-1]] = raw
    return out
