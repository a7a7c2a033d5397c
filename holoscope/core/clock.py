"""The presentation clock: media time that advances with wall time while playing.

Shape follows moderngl-window's timers: ``time``, ``play``/``pause``/``toggle``, ``seek``,
plus a playback ``rate`` and looping over ``duration``. The wall-time source is injectable so
tests can drive the clock deterministically.
"""

from __future__ import annotations

import time
from typing import Callable


class PresentationClock:
    def __init__(self, duration: float = 0.0, *, loop: bool = True, now: Callable[[], float] = time.monotonic) -> None:
        self._now = now
        self.duration = max(0.0, duration)
        self.loop = loop
        self.rate = 1.0
        self._playing = False
        self._base_media = 0.0  # media time at the last (re)anchor
        self._base_wall = now()

    @property
    def playing(self) -> bool:
        return self._playing

    @property
    def time(self) -> float:
        """Current media time in seconds, wrapped (loop) or clamped to [0, duration]."""
        t = self._base_media
        if self._playing:
            t += (self._now() - self._base_wall) * self.rate
        if self.duration <= 0:
            return 0.0
        if self.loop:
            return t % self.duration
        if t >= self.duration:
            # Reached the end: stop there so play resumes from the end only after a seek.
            self._anchor(self.duration)
            self._playing = False
            return self.duration
        return max(0.0, t)

    def _anchor(self, media_time: float) -> None:
        self._base_media = media_time
        self._base_wall = self._now()

    def play(self) -> None:
        if not self._playing:
            t = self.time
            if not self.loop and t >= self.duration:
                t = 0.0  # play at the end restarts, as media players do
            self._anchor(t)
            self._playing = True

    def pause(self) -> None:
        if self._playing:
            self._anchor(self.time)
            self._playing = False

    def toggle(self) -> None:
        self.pause() if self._playing else self.play()

    def seek(self, media_time: float) -> None:
        self._anchor(min(max(0.0, media_time), self.duration))

    def set_rate(self, rate: float) -> None:
        if rate <= 0:
            raise ValueError(f"playback rate must be positive, got {rate}")
        self._anchor(self.time)
        self.rate = rate
