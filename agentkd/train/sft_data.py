"""Trajectories → tokenised chat examples with a mask that keeps the loss on assistant turns only."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from agentkd.codeact.prompts import with_student_prompt
from agentkd.env.environment import Environment
from agentkd.errors import AgentKDError
from agentkd.records import Trajectory


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


def student_conversation(env: Environment, traj: Trajectory) -> list[dict[str, str]]:
    """The trajectory as the student will live it: short student system prompt, user turns = the task and
    observations, assistant turns = thought + code."""
    messages = [{"role": m["role"], "content": str(m.get("content") or "")} for m in traj.messages]
    return with_student_prompt(env, messages)


def _render(tokenizer: Any, messages: list[dict[str, str]], generation_prompt: bool = False) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)


def assistant_char_spans(tokenizer: Any, messages: list[dict[str, str]]) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character spans of each assistant reply (including the template's
    end-of-turn marker, so the student learns to stop)."""
    text = _render(tokenizer, messages)
    spans: list[tuple[int, int]] = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = _render(tokenizer, messages[:i], generation_prompt=True)
        through = _render(tokenizer, messages[: i + 1])
        if not (through.startswith(before) and text.startswith(through)):
            raise ChatTemplateError(
                "the student's chat template renders earlier turns differently once later turns are added, so the "
                "assistant turns cannot be located for the loss mask; use a model whose template is prefix-stable "
                "(ChatML, Llama 3, Qwen ...)"
            )
        spans.append((len(before), len(through)))
    return text, spans


def tokenize_conversation(tokenizer: Any, messages: list[dict[str, str]], task_id: str = "") -> SFTExample:
    """Tokenise with offsets; a token is trained on when its characters lie inside an assistant span."""
    text, spans = assistant_char_spans(tokenizer, messages)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    mask = [int(any(lo <= start and end <= hi for lo, hi in spans) and end > start)
            for start, end in encoded["offset_mapping"]]
    return SFTExample(task_id=task_id, input_ids=list(encoded["input_ids"]), assistant_masks=mask)


def build_examples(
    env: Environment, trajectories: list[Trajectory], tokenizer: Any, max_tokens: int
) -> tuple[list[SFTExample], int]:
    """SFT examples for `trajectories`; returns (examples, number dropped for exceeding `max_tokens`)."""
    examples, too_long = [], 0
    for traj in trajectories:
        example = tokenize_conversation(tokenizer, student_conversation(env, traj), traj.task.id)
        if len(example.input_ids) > max_tokens:
            too_long += 1
        elif example.trained_tokens:
            examples.append(example)
    return examples, too_long
