"""Per-source rate limiting: a token bucket per source, refilled at the source's rate (pure; clock passed in)."""

import math
from dataclasses import dataclass, field


@dataclass
class TokenBuckets:
    burst_seconds: float = 2.0
    _tokens: dict[str, float] = field(default_factory=dict)
    _stamp: dict[str, float] = field(default_factory=dict)

    def take(self, key: str, rate_per_s: float, n: int, now: float) -> float:
        """Take n tokens; returns 0 when allowed, else the seconds to wait before n would be allowed."""
        capacity = max(rate_per_s * self.burst_seconds, 1.0)
        if n > capacity:
            capacity = float(n)  # a batch larger than the burst is allowed once the bucket is full
        last = self._stamp.get(key, now)
        tokens = min(capacity, self._tokens.get(key, capacity) + (now - last) * rate_per_s)
        self._stamp[key] = now
        if tokens >= n:
            self._tokens[key] = tokens - n
            return 0.0
        self._tokens[key] = tokens
        return (n - tokens) / rate_per_s if rate_per_s > 0 else math.inf
