"""Fault injection: which API requests fail, and how.

Kinds: ``429`` (with ``retry-after``), ``529``, ``500``, ``503``, ``latency`` (slow, then a normal
answer), ``drop`` (the connection is cut before the request is processed) and
``commit_then_drop`` (the request takes effect, then the connection is cut: the answer is lost).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

FAULT_KINDS = ("429", "529", "500", "503", "latency", "drop", "commit_then_drop")


@dataclass
class FaultPlan:
    """What to inject and where: a rate, the kinds to draw from, the endpoints it applies to."""

    rate: float = 0.0
    kinds: tuple[str, ...] = FAULT_KINDS
    endpoints: tuple[str, ...] = ("*",)
    retry_after: float = 1.0
    latency_ms: float = 200.0
    count: int | None = None  # stop after this many faults
    seed: int | None = None
    injected: int = 0
    rng: random.Random = field(default_factory=random.Random, repr=False)

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> FaultPlan:
        kinds = tuple(str(k) for k in body.get("kinds") or FAULT_KINDS)
        unknown = sorted(set(kinds) - set(FAULT_KINDS))
        if unknown:
            raise ValueError(f"unknown fault kinds {unknown}; known: {list(FAULT_KINDS)}")
        rate = float(body.get("rate", 1.0))
        if not 0.0 <= rate <= 1.0:
            raise ValueError("rate must be between 0 and 1")
        seed = body.get("seed")
        return cls(
            rate=rate,
            kinds=kinds,
            endpoints=tuple(body.get("endpoints") or ("*",)),
            retry_after=float(body.get("retry_after", 1.0)),
            latency_ms=float(body.get("latency_ms", 200.0)),
            count=body.get("count"),
            seed=seed,
            rng=random.Random(seed),
        )

    def pick(self, endpoint: str) -> str | None:
        """The fault for this request, if any (``endpoint`` is ``METHOD /route/{template}``)."""
        if self.rate <= 0 or (self.count is not None and self.injected >= self.count):
            return None
        if "*" not in self.endpoints and endpoint not in self.endpoints:
            return None
        if self.rng.random() >= self.rate:
            return None
        self.injected += 1
        return self.rng.choice(self.kinds)
