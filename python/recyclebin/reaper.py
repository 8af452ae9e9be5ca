"""The purge reaper: ``engine.purge_expired()`` every N seconds inside a server's event loop.

Expiry is a fact of time (an expired workspace is already unrecoverable and its name free);
the reaper only makes storage match that fact and queues the cleanup tasks, so a late or
skipped run is harmless. Each run happens in the threadpool, never blocking the loop.
Stopping waits for a run in progress to finish, then returns.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.concurrency import run_in_threadpool

import recyclebin as rb

__all__ = ["PurgeReaper"]

_log = logging.getLogger("recyclebin.reaper")


class PurgeReaper:
    """Periodic ``purge_expired`` on one engine. Not thread-safe: use from one event loop.

    The engine is borrowed, not owned: stop the reaper before closing the engine.
    """

    def __init__(self, engine: rb.Engine, interval: float, *,
                 logger: logging.Logger | None = None) -> None:
        if not interval > 0:
            raise ValueError(f"reaper interval must be > 0 seconds, got {interval!r}")
        self.interval = float(interval)
        self._engine = engine
        self._log = logger or _log
        self._task: asyncio.Task[None] | None = None
        self._stopping: asyncio.Event | None = None
        self.runs = 0                      # completed runs, failed ones included
        self.purged_total = 0              # workspaces purged since start
        self.last_report: rb.PurgeReport | None = None
        self.last_error: str | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start the loop on the running event loop; the first run is immediate."""
        if self.running:
            raise RuntimeError("the purge reaper is already running")
        self._stopping = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="purge-reaper")
        self._log.info("purge reaper started: purge_expired every %gs", self.interval)

    async def stop(self) -> None:
        """Ask the loop to end, and wait for it (a run in progress completes first)."""
        if self._task is None or self._stopping is None:
            return
        self._stopping.set()
        await self._task
        self._task = None
        self._log.info("purge reaper stopped after %d run(s), %d workspace(s) purged",
                       self.runs, self.purged_total)

    async def run_once(self) -> rb.PurgeReport | None:
        """One ``purge_expired``; logs what it purged. Errors are logged, not raised."""
        try:
            report = await run_in_threadpool(self._engine.purge_expired)
        except rb.EngineClosed:
            self.runs += 1
            self.last_error = "engine closed"
            self._log.warning("purge reaper: the engine is closed; stopping")
            if self._stopping is not None:
                self._stopping.set()
            return None
        except Exception as exc:  # keep the server alive; the next run tries again
            self.runs += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            self._log.error("purge reaper: purge_expired failed: %s", self.last_error)
            return None
        self.runs += 1
        self.last_error = None
        self.last_report = report
        self.purged_total += len(report.purged)
        for subscription_id, resource_group, name in report.purged:
            self._log.info("purge reaper: purged %s/%s/%s", subscription_id, resource_group, name)
        if report.purged:
            self._log.info("purge reaper: %d workspace(s) purged, %d cleanup task(s) queued",
                           len(report.purged), len(report.cleanup))
        return report

    async def _loop(self) -> None:
        assert self._stopping is not None
        while not self._stopping.is_set():
            await self.run_once()
            try:
                await asyncio.wait_for(self._stopping.wait(), timeout=self.interval)
            except asyncio.TimeoutError:
                continue
