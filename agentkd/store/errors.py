"""Errors raised by the demonstration store."""

from __future__ import annotations

from agentkd.errors import AgentKDError


class StoreError(AgentKDError):
    """A demonstration store is missing, unreadable or inconsistent."""


class StoreMismatchError(StoreError):
    """A store was built with a different embedder than the one it is used with."""
