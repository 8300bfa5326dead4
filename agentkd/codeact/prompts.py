"""CodeAct prompts: the system prompts (full and short student), observations, stop sequences."""

from __future__ import annotations

from typing import Any, Mapping, Protocol

from agentkd.records import Task


class DescribedTool(Protocol):
    """What a prompt needs of a tool (agentkd.Tool has it)."""

    @property
    def name(self) -> str: ...

    @property
    def signature(self) -> str: ...

    @property
    def description(self) -> str: ...


class PromptEnvironment(Protocol):
    """What a prompt needs of an environment (agentkd.Environment has it)."""

    @property
    def instructions(self) -> str: ...

    @property
    def tools(self) -> Mapping[str, DescribedTool]: ...

    def tools_prompt(self) -> str: ...

SYSTEM_TEMPLATE = """You solve tasks by writing Python code, one step at a time.
{instructions}
At each step write a short thought, then exactly one Python code block:
Thought: <what you will do and why>
```python
<code>
```
The code runs in a persistent Python session (variables survive between steps). Use print() to see values: \
the printed output comes back to you as the Observation. When you know the answer, call final_answer(answer) \
in your code.
{tools_section}"""

TOOLS_SECTION = """
These tools are available as Python functions:
```python
{tools}
```"""

OBSERVATION_PREFIX = "Observation:\n"
DEFAULT_STOP = ["Observation:", "<end_code>"]


def system_prompt(env: PromptEnvironment) -> str:
    tools = env.tools_prompt()
    return SYSTEM_TEMPLATE.format(
        instructions=env.instructions.strip(),
        tools_section=TOOLS_SECTION.format(tools=tools) if tools else "",
    ).strip()


def initial_messages(env: PromptEnvironment, task: Task) -> list[dict[str, Any]]:
    """The conversation a policy starts from: system prompt and the task."""
    return [
        {"role": "system", "content": system_prompt(env)},
        {"role": "user", "content": task.prompt},
    ]


def observation_message(observation: str) -> dict[str, Any]:
    return {"role": "user", "content": OBSERVATION_PREFIX + observation}


def recent_history(messages: list[dict[str, Any]], steps: int) -> list[dict[str, Any]]:
    """The system prompt and the task, then only the last `steps` (reply, observation) pairs: what a student with
    a capped history sees (and what `agentkd train` windows show)."""
    head, rest = messages[:2], messages[2:]
    keep = 2 * steps
    return messages if len(rest) <= keep else head + (rest[len(rest) - keep:] if keep else [])


def format_observation(stdout: str, error: str | None, limit: int) -> str:
    """Captured stdout, then the error if any, truncated to `limit` characters."""
    parts = [stdout.rstrip("\n")] if stdout.strip() else []
    if error:
        parts.append(f"Error: {error}")
    text = "\n".join(parts) if parts else "(no output; use print() to see values)"
    if len(text) > limit:
        text = text[:limit] + f"\n...[observation truncated to {limit} characters]"
    return text


STUDENT_SYSTEM_TEMPLATE = """Solve the task in steps. Each step: "Thought: ..." then one ```python block. \
Printed output comes back as the Observation. Call final_answer(answer) when done.{tools}"""


def student_system_prompt(env: PromptEnvironment) -> str:
    """The short system prompt fine-tuned students are trained and run with (tool signatures only)."""
    tools = "".join(f"\n- {t.name}{t.signature}: {t.description.splitlines()[0] if t.description else ''}".rstrip(": ")
                    for t in env.tools.values())
    return STUDENT_SYSTEM_TEMPLATE.format(tools=f"\nTools:{tools}" if tools else "")


def with_student_prompt(env: PromptEnvironment, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`messages` with the system prompt swapped for the short student prompt."""
    system = {"role": "system", "content": student_system_prompt(env)}
    rest = messages[1:] if messages and messages[0].get("role") == "system" else messages
    return [system, *rest]
