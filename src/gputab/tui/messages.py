"""Messages the poll thread posts to the app. Small dataclasses, as posting does it."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from gputab.live.frame import Frame


@dataclass
class FrameReady(Message):
    """A poll finished: the frame to show and how long the poll took (seconds)."""

    frame: Frame
    took: float

    def can_replace(self, message: Message) -> bool:
        # A burst of frames (the UI was busy) collapses into the newest: only the latest figures matter.
        return isinstance(message, FrameReady)


@dataclass
class PollFailed(Message):
    """A poll raised: the app shows the reason and keeps polling (a driver hiccup is not the end)."""

    error: str


@dataclass
class AlertsChanged(Message):
    """A poll raised or cleared alerts (``AlertView`` records, oldest first). Never collapsed: each is news."""

    raised: tuple
    cleared: tuple
