"""Organization-wide rate limits, on demand: reads and writes a minute, answered with 429.

The API limits an organization's requests per minute, reads and writes apart (secondary sources
quote about 600 reads and 60 creates a minute; the emulator takes any figures). Each class is a
token bucket on the emulator's clock: ``burst`` tokens at most (default: a minute's worth, as a
per-minute window allows), refilled at the per-minute figure. A request finding the bucket empty
is answered 429 ``rate_limit_error`` with ``retry-after`` (whole seconds, rounded up) and
``retry-after-ms`` for when the next token comes, and counted. On a frozen clock no token comes
back until the clock is moved.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

CLASSES = ("reads", "writes")


@dataclass
class TokenBucket:
    per_minute: float
    burst: float
    tokens: float
    refilled_at: datetime

    def take(self, now: datetime) -> float | None:
        """Take a token: None when there was one, else the seconds until the next one."""
        elapsed = max((now - self.refilled_at).total_seconds(), 0.0)
        self.tokens = min(self.burst, self.tokens + elapsed * self.per_minute / 60.0)
        self.refilled_at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return None
        return (1.0 - self.tokens) * 60.0 / self.per_minute


@dataclass
class RateLimits:
    """The organization's limits (none until set) and the 429s they gave."""

    now: Callable[[], datetime]
    buckets: dict[str, TokenBucket] = field(default_factory=dict)
    limited: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CLASSES, 0))

    def configure(self, body: dict[str, Any]) -> dict[str, Any]:
        """``{"reads_per_minute": N | null, "writes_per_minute": N | null, "burst": B | null}``:
        a figure given replaces that class's bucket (full); null removes the limit."""
        unknown = sorted(set(body) - {"reads_per_minute", "writes_per_minute", "burst", "sessions_per_minute"})
        if unknown:
            raise ValueError(f"unknown rate limit fields {unknown}")
        burst = body.get("burst")
        if burst is not None and float(burst) < 1:
            raise ValueError("burst must be >= 1")
        for klass in CLASSES:
            key = f"{klass}_per_minute"
            if key not in body:
                continue
            figure = body[key]
            if figure is None:
                self.buckets.pop(klass, None)
                continue
            if float(figure) <= 0:
                raise ValueError(f"{key} must be > 0 (or null for no limit)")
            size = float(burst) if burst is not None else float(figure)
            self.buckets[klass] = TokenBucket(float(figure), size, size, self.now())
        return self.describe()

    def describe(self) -> dict[str, Any]:
        described: dict[str, Any] = {}
        for klass in CLASSES:
            bucket = self.buckets.get(klass)
            described[f"{klass}_per_minute"] = bucket.per_minute if bucket else None
        described["burst"] = {k: b.burst for k, b in self.buckets.items()}
        return described

    def admit(self, writes: bool) -> dict[str, str] | None:
        """None when the request may go on; else the 429's headers (and it is counted)."""
        klass = "writes" if writes else "reads"
        bucket = self.buckets.get(klass)
        if bucket is None:
            return None
        wait = bucket.take(self.now())
        if wait is None:
            return None
        self.limited[klass] += 1
        return {"retry-after": str(max(math.ceil(wait), 1)), "retry-after-ms": str(max(math.ceil(wait * 1000), 1))}

    def reset_counts(self) -> None:
        self.limited = dict.fromkeys(CLASSES, 0)
