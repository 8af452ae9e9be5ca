"""Clocks the engine can read "now" from.

The engine never reads the wall clock itself: by default it uses the system's UTC clock,
and tests, simulations and notebooks pass a :class:`ManualClock` to :meth:`Engine.open`
and move time by hand.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from . import _core

__all__ = ["ManualClock"]


class ManualClock:
    """A clock that moves only when told to.

    The engine reads the very same clock (a C++ object shared with it), so
    ``clock.advance(timedelta(days=14))`` is seen by the next engine call. Thread-safe.

    Datetimes going in must be timezone-aware (naive ones raise ``ValueError``) and are
    converted to UTC; :meth:`now` answers an aware UTC datetime. Precision is one microsecond.
    """

    __slots__ = ("_core",)

    def __init__(self, start: datetime) -> None:
        self._core = _core.ManualClock(start)

    def now(self) -> datetime:
        """The clock's current time (aware, UTC)."""
        return self._core.now()

    def advance(self, delta: timedelta) -> None:
        """Moves the clock forward by ``delta`` (a negative delta raises ``ValueError``;
        use :meth:`set` to go back)."""
        self._core.advance(delta)

    def set(self, now: datetime) -> None:
        """Sets the clock to ``now`` (aware; converted to UTC)."""
        self._core.set(now)

    def __repr__(self) -> str:
        return f"ManualClock({_core.format_iso8601(self._core.now())})"
