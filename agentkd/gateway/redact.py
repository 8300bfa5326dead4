"""Keep secrets out of what the gateway writes and answers: API keys found in the environment, the gateway's own
key and the teacher's key are replaced by `[redacted]` in error messages and logs."""

from __future__ import annotations

import os
import re
from typing import Iterable

SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|CREDENTIAL", re.I)
MIN_LENGTH = 8
"""Shorter values are not treated as secrets (they would redact ordinary words)."""


class Redactor:
    """Replaces every known secret in a text. Secrets: the values of environment variables whose names say they
    hold one (`OPENAI_API_KEY`, `HF_TOKEN`, ...) and the `extra` values given."""

    def __init__(self, extra: Iterable[str | None] = ()) -> None:
        values = {v for k, v in os.environ.items() if SECRET_NAME.search(k)} | {v for v in extra if v}
        self.secrets = sorted((v for v in values if len(v) >= MIN_LENGTH), key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "[redacted]")
        return text
