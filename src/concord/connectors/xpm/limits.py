"""XPM's rate limits as Concord keeps them: 60 calls a minute, 5,000 a day, 5 in flight.

A ``Gate`` per practice (shared by every link of that practice in the process) counts the
calls it let through in a rolling minute and takes the service's own word from each
answer's ``X-MinLimit-Remaining`` / ``X-DayLimit-Remaining`` (other applications of the
practice spend the same allowance). Before a call it waits, on the injectable clock, for a
free slot of the minute window; a call that would need more than ``max_wait`` seconds of
waiting, or a day with nothing left, raises ``RateLimited`` instead: the engine pauses the
link ("Sync paused until <local time>") and it resumes by itself.

A 429 answer is handled by ``note_429``: ``Retry-After`` seconds and the
``X-Rate-Limit-Problem`` (``minute``, ``day``, ``concurrent``) say how long; a short wait
is waited out here, a long one pauses the link.

Own code: the limits are XPM's (three windows, server-reported remainders) and the clock
must be injectable so tests and the bench run in simulated time; the generic limiter
libraries on PyPI sleep on the real clock.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from concord.errors import RateLimited

MINUTE_LIMIT = 60
DAY_LIMIT = 5000
CONCURRENCY = 5
DAY_PROBE = 3600.0  # a day with no calls left is tried again after this long


@dataclass
class Gate:
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    minute_limit: int = MINUTE_LIMIT
    day_limit: int = DAY_LIMIT
    max_wait: float = 60.0
    calls: deque[float] = field(default_factory=deque)
    min_remaining: int | None = None
    day_remaining: int | None = None
    day_seen_at: float = 0.0
    day_retry_at: float = 0.0  # when a spent day may be tried again
    used: int = 0  # calls let through by this gate
    waited: float = 0.0  # seconds spent waiting for the minute window
    _slots: threading.BoundedSemaphore = field(
        default_factory=lambda: threading.BoundedSemaphore(CONCURRENCY))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def day_left(self) -> int:
        """Calls left today, as the service last said (the full allowance before any call)."""
        if self.day_remaining is None:
            return self.day_limit
        return self.day_remaining

    def acquire(self) -> None:
        """Wait for the minute window; then take one of the five slots."""
        while True:
            with self._lock:
                now = self.clock()
                while self.calls and self.calls[0] <= now - 60:
                    self.calls.popleft()
                if self.day_remaining is not None and self.day_remaining <= 0:
                    if now < self.day_retry_at:
                        raise RateLimited("XPM's daily limit of calls is spent",
                                          retry_after=self.day_retry_at - now)
                    self.day_remaining = None  # time to find out again
                wait = 0.0
                if len(self.calls) >= self.minute_limit or (self.min_remaining is not None and self.min_remaining <= 0 and self.calls):
                    wait = self.calls[0] + 60 - now
                if wait <= 0:
                    self.calls.append(now)
                    if self.min_remaining is not None:
                        self.min_remaining -= 1
                    if self.day_remaining is not None:
                        self.day_remaining -= 1
                    self.used += 1
                    break
            if wait > self.max_wait:
                raise RateLimited("XPM's per-minute limit of calls is spent", retry_after=wait)
            self.waited += wait
            self.sleep(wait)
        self._slots.acquire()

    def release(self, min_remaining: str | None, day_remaining: str | None) -> None:
        self._slots.release()
        with self._lock:
            if min_remaining is not None and min_remaining.isdigit():
                self.min_remaining = int(min_remaining)
            if day_remaining is not None and day_remaining.isdigit():
                self.day_remaining = int(day_remaining)
                self.day_seen_at = self.clock()
                if self.day_remaining <= 0:
                    # a rolling day frees its oldest calls first: look again in an hour
                    self.day_retry_at = max(self.day_retry_at, self.day_seen_at + DAY_PROBE)

    def note_429(self, retry_after: str | None, problem: str | None) -> None:
        """Wait out a short 429, raise ``RateLimited`` (pause the link) for a long one."""
        try:
            wait = float(retry_after) if retry_after is not None else 60.0
        except ValueError:
            wait = 60.0
        problem = (problem or "minute").lower()
        if problem == "day":
            with self._lock:
                self.day_remaining = 0
                self.day_retry_at = self.clock() + wait
            raise RateLimited("XPM's daily limit of calls is reached", retry_after=wait)
        if wait > self.max_wait:
            raise RateLimited(f"XPM asked to wait ({problem} limit)", retry_after=wait)
        self.waited += wait
        self.sleep(wait)


_GATES: dict[str, Gate] = {}
_GATES_LOCK = threading.Lock()


def gate_for(practice: str, clock: Callable[[], float], sleep: Callable[[float], None],
             max_wait: float) -> Gate:
    """The one gate of a practice in this process (its limits are the practice's)."""
    with _GATES_LOCK:
        g = _GATES.get(practice)
        if g is None or g.clock != clock:
            g = _GATES[practice] = Gate(clock=clock, sleep=sleep, max_wait=max_wait)
        return g
