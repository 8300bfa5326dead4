"""Graders: turn (answer, task) into a score in [0, 1]. Built-ins by name or any callable."""

from __future__ import annotations

import inspect
import numbers
import re
import string
from collections import Counter
from typing import Any, Callable

from agentkd.errors import EnvironmentDefinitionError, GraderError
from agentkd.records import Task

Grader = Callable[..., Any]
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_text(value: Any) -> str:
    """SQuAD-style normalisation: lower case, no punctuation, no articles, single spaces."""
    text = str(value).lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def _targets(target: Any) -> list[Any]:
    return list(target) if isinstance(target, (list, tuple, set)) else [target]


def exact_match(answer: Any, target: Any) -> float:
    """1.0 if str(answer) equals str(target) (or any of a list of targets)."""
    return float(any(str(answer).strip() == str(t).strip() for t in _targets(target)))


def normalized_match(answer: Any, target: Any) -> float:
    """1.0 if the normalised texts are equal."""
    return float(any(normalize_text(answer) == normalize_text(t) for t in _targets(target)))


def f1_score(answer: Any, target: Any) -> float:
    """Token-level F1 between normalised texts (best over targets)."""
    best = 0.0
    pred = normalize_text(answer).split()
    for t in _targets(target):
        gold = normalize_text(t).split()
        common = sum((Counter(pred) & Counter(gold)).values())
        if common:
            p, r = common / len(pred), common / len(gold)
            best = max(best, 2 * p * r / (p + r))
    return best


def _to_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    match = re.search(r"-?\d[\d,]*\.?\d*(?:[eE]-?\d+)?", str(value))
    if not match:
        return None
    try:
        return float(match.group(0).replace(",", ""))
    except ValueError:
        return None


def numeric_match(answer: Any, target: Any, rel_tol: float = 1e-6, abs_tol: float = 1e-6) -> float:
    """1.0 if the first number in the answer is within tolerance of the target."""
    got = _to_number(answer)
    if got is None:
        return 0.0
    for t in _targets(target):
        want = _to_number(t)
        if want is not None and abs(got - want) <= max(abs_tol, rel_tol * abs(want)):
            return 1.0
    return 0.0


BUILTIN_GRADERS: dict[str, Callable[[Any, Any], float]] = {
    "exact": exact_match,
    "normalized": normalized_match,
    "f1": f1_score,
    "numeric": numeric_match,
}

# Arguments a custom grader may ask for, by parameter name (verifiers-style).
GRADER_ARGUMENTS = ("answer", "target", "task", "state")


def resolve_grader(grader: str | Grader | None, owner: str = "") -> BoundGrader:
    """Validate a grader and return it as a uniform `(answer, task, state) -> score` function; `owner` (the
    environment's name) is named in the errors it raises."""
    if grader is None:
        raise EnvironmentDefinitionError(
            "environment has no grader; pass grader='exact' | 'normalized' | 'f1' | 'numeric' or a callable"
        )
    where = f" of environment {owner!r}" if owner else ""
    if isinstance(grader, str):
        if grader not in BUILTIN_GRADERS:
            raise EnvironmentDefinitionError(
                f"unknown grader {grader!r}; choose one of {sorted(BUILTIN_GRADERS)} or pass a callable"
            )
        builtin = BUILTIN_GRADERS[grader]
        return BoundGrader(lambda answer, task, state: builtin(answer, task.answer), f"{grader!r}{where}")
    if not callable(grader):
        raise EnvironmentDefinitionError(f"grader must be a name or a callable, got {type(grader).__name__}")
    name = getattr(grader, "__name__", type(grader).__name__)
    params = list(inspect.signature(grader).parameters)
    unknown = [p for p in params if p not in GRADER_ARGUMENTS]
    if unknown:
        raise EnvironmentDefinitionError(
            f"grader {name!r} asks for {unknown}; a grader may only take parameters named {list(GRADER_ARGUMENTS)}"
        )

    def call(answer: Any, task: Task, state: Any) -> Any:
        available = {"answer": answer, "target": task.answer, "task": task, "state": state}
        return grader(**{p: available[p] for p in params})

    return BoundGrader(call, f"{name!r}{where}")


class BoundGrader:
    """A grader called as `(answer, task, state)`; its result is checked to be a score in [0, 1].

    A grader that raises or returns anything else (text such as "yes", None, NaN, 2.0) raises GraderError
    naming the grader, the task and the value."""

    def __init__(self, fn: Callable[[Any, Task, Any], Any], label: str) -> None:
        self.fn = fn
        self.label = label
        """How errors name it: `'my_grader' of environment 'x'`."""

    def __call__(self, answer: Any, task: Task, state: Any) -> float:
        try:
            value = self.fn(answer, task, state)
        except Exception as exc:  # any failure of user code is the grader's
            raise GraderError(f"the grader {self.label} raised {type(exc).__name__}: {exc} on task {task.id!r} "
                              f"(answer {_short(answer)}); it must return a score in [0, 1] for any answer, "
                              "a wrong one included") from exc
        return self.score(value, task)

    def score(self, value: Any, task: Task) -> float:
        """`value` as a float score, or GraderError when it is not a number in [0, 1]."""
        if isinstance(value, numbers.Real) and not isinstance(value, str):
            score = float(value)
            if 0.0 <= score <= 1.0:
                return score
        raise GraderError(f"the grader {self.label} returned {_short(value)} ({type(value).__name__}) for task "
                          f"{task.id!r}; a grader must return a score in [0, 1], a number (1.0 right, 0.0 wrong)")


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
