"""Rate limits per model: a budget of requests and tokens per minute that every call to the model draws from.

A `RateLimiter` is consulted by `ModelClient` before each request (retries included). In one process the
limiters live in a registry keyed by model string (`rate_limited({...})` installs them for a block of work);
a Ray job shares one budget among all its workers through an actor that holds the same buckets
(`agentkd.scale.ray_workers.RateLimiterActor`), so 8 workers together stay under the provider's limit.

The buckets work by reservation: a caller takes its share at once and is told how long to wait, so the
budget is handed out in arrival order and the shared actor never blocks.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator


class RateLimit(BaseModel):
    """A model's budget: requests and/or tokens (prompt + completion) per minute."""

    model_config = ConfigDict(extra="forbid")

    rpm: float | None = Field(None, gt=0, description="requests per minute")
    tpm: float | None = Field(None, gt=0, description="tokens per minute (prompt + completion)")
    burst_s: float = Field(10.0, gt=0, description="seconds' worth of budget that may be spent at once")

    @model_validator(mode="after")
    def _some_limit(self) -> RateLimit:
        if self.rpm is None and self.tpm is None:
            raise ValueError("a rate limit needs rpm (requests per minute) or tpm (tokens per minute)")
        return self


class RateLimitStats(BaseModel):
    """What a limiter has handed out: requests, tokens, total seconds callers waited, 429s reported."""

    requests: int = 0
    tokens: int = 0
    waited_s: float = 0.0
    rate_limited: int = 0


class TokenBucket:
    """`per_minute` units a minute, at most `burst_s` seconds' worth (and at least 1 unit) saved up.

    `reserve(n)` takes n units at once, going into debt when the bucket is short, and returns the seconds
    until the debt is paid: the caller waits that long. Over any long run the units handed out never
    exceed the rate (plus the burst)."""

    def __init__(self, per_minute: float, burst_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate * burst_s)
        self.level = self.capacity
        self.clock = clock
        self.updated = clock()

    def _refill(self) -> None:
        now = self.clock()
        self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
        self.updated = now

    def reserve(self, n: float) -> float:
        self._refill()
        self.level -= n
        return max(0.0, -self.level / self.rate)

    def adjust(self, delta: float) -> None:
        """Take `delta` more units (a refund when negative) once the true cost of a call is known."""
        self._refill()
        self.level = min(self.capacity, self.level - delta)

    def drain(self) -> None:
        """Spend what is saved up (after a 429: the provider says the budget is gone)."""
        self._refill()
        self.level = min(self.level, 0.0)


class RateLimiter(Protocol):
    """What ModelClient asks before and after each request."""

    async def acquire(self, tokens: int) -> float:
        """Wait for one request and `tokens` estimated tokens of budget; returns the seconds waited."""
        ...

    async def settle(self, estimated: int, actual: int) -> None:
        """Correct the token estimate with the call's real usage."""
        ...

    async def rate_limited(self) -> None:
        """The provider answered 429: empty the budget so every caller waits for fresh budget."""
        ...


class BucketLimiter:
    """A request bucket and a token bucket for one model (the shared Ray actor holds one per model too)."""

    def __init__(self, limit: RateLimit, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.requests = TokenBucket(limit.rpm, limit.burst_s, clock) if limit.rpm else None
        self.tokens = TokenBucket(limit.tpm, limit.burst_s, clock) if limit.tpm else None
        self.stats = RateLimitStats()

    def reserve(self, tokens: int) -> float:
        """Take one request and `tokens` tokens; the seconds the caller must wait."""
        waits = [0.0]
        if self.requests is not None:
            waits.append(self.requests.reserve(1))
        if self.tokens is not None:
            waits.append(self.tokens.reserve(tokens))
        self.stats.requests += 1
        self.stats.tokens += tokens
        self.stats.waited_s += max(waits)
        return max(waits)

    def adjust(self, delta: int) -> None:
        self.stats.tokens += delta
        if self.tokens is not None:
            self.tokens.adjust(delta)

    def drain(self) -> None:
        self.stats.rate_limited += 1
        for bucket in (self.requests, self.tokens):
            if bucket is not None:
                bucket.drain()


class LocalRateLimiter(BucketLimiter):
    """A limiter for the calls of one process (asyncio): `agentkd collect --rpm 60` without Ray."""

    async def acquire(self, tokens: int) -> float:
        wait = self.reserve(tokens)
        if wait > 0:
            await asyncio.sleep(wait)
        return wait

    async def settle(self, estimated: int, actual: int) -> None:
        self.adjust(actual - estimated)

    async def rate_limited(self) -> None:
        self.drain()


_LIMITERS: dict[str, RateLimiter] = {}


def rate_limiter_for(model: str) -> RateLimiter | None:
    """The limiter installed for `model` in this process (a canonical model string), if any."""
    return _LIMITERS.get(model)


def install_rate_limiter(model: str, limiter: RateLimiter) -> None:
    """Make every ModelClient of `model` in this process draw from `limiter` (a Ray worker does this once)."""
    _LIMITERS[model] = limiter


@contextmanager
def rate_limited(limiters: dict[str, RateLimiter]) -> Iterator[None]:
    """Install `limiters` (model -> limiter) for the block; the previous ones come back after it."""
    saved = dict(_LIMITERS)
    _LIMITERS.update(limiters)
    try:
        yield
    finally:
        _LIMITERS.clear()
        _LIMITERS.update(saved)


def estimate_tokens(messages: list[dict[str, Any]]) -> int:
    """A quick prompt-token estimate (4 characters a token) reserved before a call and settled after it."""
    return max(1, sum(len(str(m.get("content") or "")) for m in messages) // 4)
