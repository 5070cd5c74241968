"""What `goldenhour run` decides, `now` in: when a part or server that exited starts again,
when to give up on it, and what to print about readiness."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


class GiveUp(Exception):
    """A part or server keeps exiting, or cannot be started: `run` stops with this message."""


@dataclass(frozen=True)
class RestartPolicy:
    """How a part or server that exits is started again, and when `run` gives up on it."""

    base_s: float = 0.5
    cap_s: float = 30.0
    # Up this long, a part has recovered: its next exit starts the backoff from the beginning.
    stable_s: float = 30.0
    # This many exits within window_s, none after a stable run, mean it cannot run here: `run`
    # stops and says so.
    max_failures: int = 6
    window_s: float = 300.0

    def delay(self, attempt: int, jitter: float) -> float:
        """The wait before start number `attempt` (1 = the first restart); jitter in [0, 1)."""
        return min(self.cap_s, self.base_s * 2 ** (attempt - 1)) * (0.8 + 0.4 * jitter)


@dataclass
class Restarts:
    """The exits of one part or server, and what to do after the latest."""

    policy: RestartPolicy
    attempt: int = 0
    exits: deque[float] = field(default_factory=deque)

    def exited(self, ran_for_s: float, now: float, jitter: float) -> float | None:
        """The delay before the restart, or None when `run` must give up."""
        if ran_for_s >= self.policy.stable_s:
            # It had recovered: this is a new failure, not one more of a crash loop.
            self.attempt = 0
            self.exits.clear()
        self.attempt += 1
        self.exits.append(now)
        while self.exits and now - self.exits[0] > self.policy.window_s:
            self.exits.popleft()
        if len(self.exits) >= self.policy.max_failures:
            return None
        return self.policy.delay(self.attempt, jitter)


@dataclass
class ReadyLine:
    """What `run` prints about readiness: once when ready, once when that is lost (after it has
    lasted `quiet_s`, so a blip says nothing), once when ready again."""

    ready_text: str
    quiet_s: float = 3.0
    announced: bool | None = None
    unready_since: float | None = None

    def update(self, ready: bool, reason: str, now: float) -> str | None:
        """The line to print now, if any."""
        if ready:
            self.unready_since = None
            if self.announced is not True:
                self.announced = True
                return self.ready_text
            return None
        if self.announced is not True:
            return None
        self.unready_since = self.unready_since if self.unready_since is not None else now
        if now - self.unready_since >= self.quiet_s:
            self.announced = False
            return f"Golden Hour is not ready: {reason}"
        return None
