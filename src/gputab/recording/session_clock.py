"""The session's clock: the wall clock names the start, the monotonic clock measures everything after it.

docs/cost-model.md, "Durations and clocks": money and durations come from the monotonic clock; a session's
duration is never negative and ``ended_at`` is never before ``started_at``. So every moment the recorder stores
after the start (a tick, a process seen, the end) is the first tick's wall time + the monotonic time since, and a
wall clock stepped while recording (an NTP step, a user setting the date, a VM resumed with a stale clock) moves
none of them: it is noticed, said once per step, and stored with the session (``clock_step_seconds``).
"""

from __future__ import annotations

import logging

log = logging.getLogger("gputab.recording.recorder.clock")  # under the recorder's: `record` prints its warnings

STEP_TOLERANCE_SECONDS = 1.0
"""A change of the wall clock against the monotonic one larger than this between two ticks is a step (NTP slews
the clock by at most 0.5 ms a second; a step is a jump)."""


class SessionClock:
    """Session time: the first snapshot's wall time + monotonic seconds since it.

    The timeline is anchored on the first snapshot (its wall and monotonic times were read together), not on
    ``started_wall``, which is read before the database checks and the lock: anchoring there would put every later
    moment early by however long starting took.

    Args:
        started_wall: Unix time the session started (its ``started_at``); no moment of the session is before it.
    """

    def __init__(self, started_wall: float) -> None:
        self.started_wall = started_wall
        self._mono0: float | None = None
        self._wall0 = started_wall
        self.step_seconds = 0.0
        """The wall clock minus session time at the last tick (0.0 while the wall clock was never stepped)."""
        self.steps = 0
        """Steps noticed."""

    def wall_at(self, mono: float) -> float:
        """The session's Unix time at monotonic time ``mono`` (never before the start)."""
        if self._mono0 is None:
            return self.started_wall
        return self._wall0 + max(0.0, mono - self._mono0)

    @property
    def stepped(self) -> bool:
        return self.steps > 0

    def observe(self, mono: float, wall: float) -> str | None:
        """Compare the wall clock ``wall`` read at ``mono`` with session time; a sentence when it stepped.

        The first call anchors the timeline (see the class).
        """
        if self._mono0 is None:
            self._mono0, self._wall0 = mono, max(self.started_wall, wall)
        offset = wall - self.wall_at(mono)
        if abs(offset - self.step_seconds) <= STEP_TOLERANCE_SECONDS:
            return None
        change = offset - self.step_seconds
        self.step_seconds = offset
        self.steps += 1
        note = (
            f"the wall clock was stepped {describe_step(change)} while recording; the session's times stay its "
            f"start + the monotonic time since"
        )
        log.warning("%s", note)
        return note


def describe_step(seconds: float) -> str:
    """``back 3 h 0 min 2 s`` / ``forward 40 s``: a clock step in words."""
    way = "back" if seconds < 0 else "forward"
    left = round(abs(seconds))
    h, rest = divmod(left, 3600)
    m, s = divmod(rest, 60)
    parts = [f"{h} h"] if h else []
    if h or m:
        parts.append(f"{m} min")
    parts.append(f"{s} s")
    return f"{way} {' '.join(parts)}"
