"""Trajectories → tokenised chat examples with a mask that keeps the loss on assistant turns only."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from agentkd.codeact.prompts import with_student_prompt
from agentkd.env.environment import Environment
from agentkd.errors import AgentKDError
from agentkd.records import Trajectory
from agentkd.tool_calls import template_messages


class ChatTemplateError(AgentKDError):
    """The student's chat template does not render a conversation as a prefix-stable sequence."""


class SFTExample(BaseModel):
    """One tokenised conversation: `assistant_masks[i] == 1` where token i is trained on."""

    task_id: str
    input_ids: list[int]
    assistant_masks: list[int]

    @property
    def trained_tokens(self) -> int:
        return sum(self.assistant_masks)


UNTRAINED = "train"
"""Message key: an assistant message with `"train": False` is shown to the student but not trained on."""


def student_conversation(env: Environment | None, traj: Trajectory) -> list[dict[str, Any]]:
    """The trajectory as the student will live it: short student system prompt, user turns = the task and
    observations, assistant turns = thought + code. The reply of a step slipped on purpose (error-recovery
    augmentation) is marked `"train": False`: the student sees the slip and learns the recovery, not the slip.

    An episode whose actions are tool calls (recorded by `agentkd gateway`) is its own conversation, tool calls and
    tool results included (see `tool_conversation`); `env` may be None for it."""
    if is_tool_episode(traj):
        return tool_conversation(traj)
    if env is None:
        raise ValueError(f"episode {traj.task.id!r} is a CodeAct episode: its student conversation needs the "
                         "environment's student prompt")
    messages: list[dict[str, Any]] = [{"role": m["role"], "content": str(m.get("content") or "")}
                                      for m in traj.messages]
    replies = iter(traj.steps)
    for message in messages:
        if message["role"] == "assistant":
            step = next(replies, None)
            if step is not None and step.injected is not None and message["content"] == step.output:
                message[UNTRAINED] = False
    return with_student_prompt(env, messages)


def is_tool_episode(traj: Trajectory) -> bool:
    """Whether the episode's actions are JSON tool calls (offered tools, or a step with tool calls) not CodeAct."""
    return traj.tools is not None or any(step.tool_calls for step in traj.steps)


def tool_conversation(traj: Trajectory) -> list[dict[str, Any]]:
    """A tool-call episode as chat-template messages: text contents, the assistant's tool calls with their arguments
    as objects (what Hugging Face chat templates expect), tool results with their call ids. Render it with the
    episode's tool definitions (`tokenize_conversation(..., tools=traj.tools)`)."""
    return template_messages(traj.messages)


def _render(tokenizer: Any, messages: list[dict[str, Any]], generation_prompt: bool = False,
            tools: list[dict[str, Any]] | None = None) -> str:
    offered = {"tools": tools} if tools else {}  # templates without tool support are called as before
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt, **offered)


def assistant_char_spans(
    tokenizer: Any, messages: list[dict[str, Any]], trained: set[int] | None = None,
    tools: list[dict[str, Any]] | None = None,
) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character spans of each assistant reply (including the template's
    end-of-turn marker, so the student learns to stop); only the replies at message indices `trained` when given,
    and never one marked `"train": False`. `tools`: the tool definitions the template renders (tool-call
    episodes); an assistant reply's tool calls are part of its span."""
    text = _render(tokenizer, messages, tools=tools)
    spans: list[tuple[int, int]] = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant" or (trained is not None and i not in trained):
            continue
        if message.get(UNTRAINED) is False:
            continue
        before = _render(tokenizer, messages[:i], generation_prompt=True, tools=tools)
        through = _render(tokenizer, messages[: i + 1], tools=tools)
        if not (through.startswith(before) and text.startswith(through)):
            raise ChatTemplateError(
                "the student's chat template renders earlier turns differently once later turns are added, so the "
                "assistant turns cannot be located for the loss mask; use a model whose template is prefix-stable "
                "(ChatML, Llama 3, Qwen ...)"
            )
        spans.append((len(before), len(through)))
    return text, spans


def tokenize_conversation(
    tokenizer: Any, messages: list[dict[str, Any]], task_id: str = "", trained: set[int] | None = None,
    tools: list[dict[str, Any]] | None = None,
) -> SFTExample:
    """Tokenise with offsets; a token is trained on when its characters lie inside an assistant span (of the
    assistant messages at indices `trained`, when given). `tools`: the tool definitions of a tool-call episode."""
    text, spans = assistant_char_spans(tokenizer, messages, trained, tools)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    mask = [int(any(lo <= start and end <= hi for lo, hi in spans) and end > start)
            for start, end in encoded["offset_mapping"]]
    return SFTExample(task_id=task_id, input_ids=list(encoded["input_ids"]), assistant_masks=mask)


def windows(
    tokenizer: Any, messages: list[dict[str, Any]], max_tokens: int, context: int, task_id: str = "",
    tools: list[dict[str, Any]] | None = None,
) -> list[SFTExample] | None:
    """A conversation too long for one example, as windows that each fit `max_tokens`: the system prompt and the
    task, up to `context` earlier steps (shown, not trained), then consecutive trained steps. Every assistant turn
    is trained in exactly one window. None when a single step does not fit even without earlier steps."""
    head = messages[:2]
    replies = [i for i, m in enumerate(messages) if m["role"] == "assistant" and i >= 2]
    out: list[SFTExample] = []
    first = 0
    while first < len(replies):
        best = None
        for shown in ([context, 0] if context else [0]):
            start = replies[max(0, first - shown)]
            for last in range(first, len(replies)):  # extend the trained run while it fits
                window = head + messages[start: replies[last] + 1]
                example = tokenize_conversation(tokenizer, window, task_id, set(range(2 + replies[first] - start,
                                                                                    len(window))), tools)
                if len(example.input_ids) > max_tokens:
                    break
                best = (example, last)
            if best is not None:
                break
        if best is None:
            return None
        out.append(best[0])
        first = best[1] + 1
    return out


def build_examples(
    env: Environment | None, trajectories: list[Trajectory], tokenizer: Any, max_tokens: int, context: int = 4,
) -> tuple[list[SFTExample], list[Trajectory], int]:
    """SFT examples for `trajectories`: one per conversation, or windows (see `windows`) for one longer than
    `max_tokens`. Returns (examples, trajectories with a step too long for any window, number windowed)."""
    conversations = [(traj.task.id, student_conversation(env, traj)) for traj in trajectories]
    examples, too_long, windowed = examples_from_conversations(conversations, tokenizer, max_tokens, context,
                                                               tools=[traj.tools for traj in trajectories])
    return examples, [trajectories[i] for i in too_long], windowed


def examples_from_conversations(
    conversations: list[tuple[str, list[dict[str, Any]]]], tokenizer: Any, max_tokens: int, context: int = 4,
    tools: list[list[dict[str, Any]] | None] | None = None,
) -> tuple[list[SFTExample], list[int], int]:
    """SFT examples for (task id, student conversation) pairs (what `agentkd export --what sft` writes): one per
    conversation, or windows for one longer than `max_tokens`. `tools`: each conversation's tool definitions (tool-call
    episodes), in the same order. Returns (examples, indices of the conversations with a step too long for any
    window, number windowed)."""
    examples: list[SFTExample] = []
    too_long: list[int] = []
    windowed = 0
    for index, (task_id, messages) in enumerate(conversations):
        offered = tools[index] if tools is not None else None
        example = tokenize_conversation(tokenizer, messages, task_id, tools=offered)
        if len(example.input_ids) <= max_tokens:
            if example.trained_tokens:
                examples.append(example)
            continue
        parts = windows(tokenizer, messages, max_tokens, context, task_id, offered)
        if parts is None:
            too_long.append(index)
        else:
            windowed += 1
            examples.extend(p for p in parts if p.trained_tokens)
    return examples, too_long, windowed
