"""`@tool`: turn a typed, documented Python function into an agent tool."""

from __future__ import annotations

import inspect
import typing
from dataclasses import dataclass, field
from typing import Any, Callable

from agentkd.errors import ToolDefinitionError

# Parameters with these names are injected by the host, never shown to the model.
INJECTED_PARAMETERS = ("state",)


@dataclass
class Tool:
    """A function the agent can call from its code, described to the model by its signature."""

    fn: Callable[..., Any]
    name: str
    description: str
    signature: str
    injected: tuple[str, ...] = field(default_factory=tuple)

    def __call__(self, *args: Any, state: Any = None, **kwargs: Any) -> Any:
        if "state" in self.injected:
            kwargs["state"] = state
        return self.fn(*args, **kwargs)

    def prompt(self) -> str:
        """The tool as it appears in the system prompt."""
        return f"def {self.name}{self.signature}:\n    \"\"\"{self.description}\"\"\""


def _annotation_text(annotation: Any) -> str:
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def tool(fn: Callable[..., Any] | None = None, *, name: str | None = None) -> Any:
    """Declare a tool: `@tool` or `@tool(name="...")`. Needs type hints and a docstring.

    A parameter named `state` receives the episode's state and is hidden from the model.
    """

    def wrap(f: Callable[..., Any]) -> Tool:
        return as_tool(f, name=name)

    return wrap(fn) if fn is not None else wrap


def as_tool(fn: Callable[..., Any] | Tool, name: str | None = None) -> Tool:
    """Validate `fn` and wrap it as a Tool (idempotent for Tool objects)."""
    if isinstance(fn, Tool):
        return fn
    if not callable(fn):
        raise ToolDefinitionError(f"tool {fn!r} is not callable; pass a function")
    tool_name = name or getattr(fn, "__name__", "")
    if not tool_name.isidentifier():
        raise ToolDefinitionError(f"tool name {tool_name!r} is not a valid Python identifier")
    doc = inspect.getdoc(fn)
    if not doc:
        raise ToolDefinitionError(
            f"tool {tool_name!r} has no docstring; add one saying what it does and returns "
            "(the model only sees the signature and the docstring)"
        )
    sig = inspect.signature(fn)
    try:
        hints = typing.get_type_hints(fn)
    except Exception as exc:  # unresolvable forward references
        raise ToolDefinitionError(f"tool {tool_name!r}: cannot resolve type hints ({exc})") from exc
    shown: list[inspect.Parameter] = []
    injected: list[str] = []
    for param in sig.parameters.values():
        if param.name in INJECTED_PARAMETERS:
            injected.append(param.name)
            continue
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise ToolDefinitionError(f"tool {tool_name!r}: *args/**kwargs are not supported; name each parameter")
        if param.name not in hints:
            raise ToolDefinitionError(
                f"tool {tool_name!r}: parameter {param.name!r} has no type hint; annotate it (e.g. `{param.name}: str`)"
            )
        shown.append(param.replace(annotation=_annotation_text(hints[param.name])))
    if "return" not in hints:
        raise ToolDefinitionError(f"tool {tool_name!r} has no return type hint; annotate it (e.g. `-> str`)")
    shown_sig = inspect.Signature(shown, return_annotation=_annotation_text(hints["return"]))
    signature = str(shown_sig).replace("'", "")
    return Tool(fn=fn, name=tool_name, description=doc, signature=signature, injected=tuple(injected))
