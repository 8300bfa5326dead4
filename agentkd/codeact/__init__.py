"""The CodeAct text format, the ground floor every layer builds on: prompts, parsing, code normalisation.

A step is a short `Thought:` and one fenced Python block; observations come back as user turns.
Nothing here imports another agentkd layer except the records.
"""

from agentkd.codeact.normalize import normalize_code
from agentkd.codeact.parsing import CODE_FORMAT_HINT, ParsedAction, parse_action, render_action
from agentkd.codeact.prompts import (
    DEFAULT_STOP,
    OBSERVATION_PREFIX,
    format_observation,
    initial_messages,
    observation_message,
    student_system_prompt,
    system_prompt,
    with_student_prompt,
)

__all__ = [
    "normalize_code", "CODE_FORMAT_HINT", "ParsedAction", "parse_action", "render_action", "DEFAULT_STOP",
    "OBSERVATION_PREFIX", "format_observation", "initial_messages", "observation_message", "student_system_prompt",
    "system_prompt", "with_student_prompt",
]
