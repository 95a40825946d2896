"""Rate limits on redeem, member lookup and sign-in: an in-process sliding window per (kind, subject).

A limit is ``COUNT/SECONDS``: at most COUNT calls in any SECONDS. A call over it is refused with
:class:`RateLimited` (429, code ``rate_limited``) carrying ``retry_after``, the whole seconds until the
oldest counted call leaves the window; a refused call is not counted, so waiting that long is enough.

The limiter lives in one process: with several API workers each keeps its own count, so the effective
limit is COUNT times the number of workers. That is what these limits are for — a runaway till script or
a password guesser, not billing — and it needs no shared store. The clock is injected (seconds as a
float); the app passes its own :class:`~palier.clock.Clock`, so tests move time without sleeping.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable

from fastapi import Request

from palier.config import Limit, RateLimits
from palier.errors import Throttled

SWEEP_EVERY = 4096  # calls between sweeps of subjects whose window has emptied (bounds the memory)


class RateLimited(Throttled):
    def __init__(self, kind: str, retry_after: int) -> None:
        super().__init__(
            "rate_limited",
            f"Too many {kind.replace('_', '-')} requests. Try again in {retry_after} s.",
            retry_after=retry_after,
        )


class RateLimiter:
    """Thread-safe sliding windows: the times of the calls counted per (kind, subject)."""

    def __init__(self, now: Callable[[], float]) -> None:
        self.now = now
        self._calls: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()
        self._since_sweep = 0
        self._longest = 0.0

    def hit(self, kind: str, subject: str, limit: Limit | None) -> None:
        """Count one call of ``kind`` by ``subject``, or raise :class:`RateLimited` (not counted)."""
        if limit is None:
            return
        now = self.now()
        with self._lock:
            self._longest = max(self._longest, limit.seconds)
            calls = self._calls.setdefault((kind, subject), deque())
            while calls and calls[0] <= now - limit.seconds:
                calls.popleft()
            if len(calls) >= limit.count:
                raise RateLimited(kind, max(1, math.ceil(calls[0] + limit.seconds - now)))
            calls.append(now)
            self._since_sweep += 1
            if self._since_sweep >= SWEEP_EVERY:
                self._sweep(now)

    def _sweep(self, now: float) -> None:
        # No window is longer than the longest limit seen: a subject whose last call is older has no call left.
        self._calls = {k: v for k, v in self._calls.items() if v and v[-1] > now - self._longest}
        self._since_sweep = 0


def check(request: Request, kind: str, *subject: str) -> None:
    """Count a call of ``kind`` (redeem, lookup, sign_in, sign_in_code) by ``subject`` against the app's limits."""
    limits: RateLimits = request.app.state.settings.rate_limits
    limiter: RateLimiter = request.app.state.rate_limiter
    limiter.hit(kind, "\x1f".join(subject), getattr(limits, kind))


def check_sign_in(request: Request, where: str, email: str) -> None:
    """Count a sign-in attempt on page ``where`` by this client address for this e-mail (however typed)."""
    check(request, "sign_in", where, _address(request), email.strip().lower())


def check_sign_in_code(request: Request) -> None:
    """Count a one-time code checked by this client address, whichever member's code it is."""
    check(request, "sign_in_code", _address(request))


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"
