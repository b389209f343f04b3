"""Where a crawling process gets its targets: host claims on the run's queue in the store.

Every crawl is a worker of its run. It claims a host (see :mod:`probe.store.claims`) with a
slice of its pending targets, probes them, and claims another while it has room; it renews its
leases while it works and hands the host back once the slice is written: done when nothing of
it is left, else pending for any worker after the host's politeness interval. Slices shrink as
the run nears its end (guided by the run's pending targets over every worker's hosts), so the
workers finish together. Several
processes (``probe run --workers N``) or machines (``probe run --join RUN``) share one run
this way; a worker killed mid-run stops renewing and its hosts are taken over by the others.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol

import anyio
import httpx
from sqlalchemy.exc import SQLAlchemyError

from probe.directory.schema import Target
from probe.store.claims import (
    DEFAULT_LEASE,
    HostClaim,
    claim_host,
    queue_state,
    release_host,
    renew_leases,
    return_claims,
    worker_name,
)
from probe.store.handle import Store
from probe.store.resume import clear_target_observations
from probe.store.tables import TargetStatus, utcnow
from probe.store.writer import StoreWriter

log = logging.getLogger(__name__)

#: Targets a claim takes from a host, per request in flight allowed on it (`--per-host`): small
#: enough that the end of a shared run is not one worker finishing its long hosts alone,
#: large enough that claims and hand-backs stay a small share of the store's work.
SLICE_PER_LANE = 4

#: How often a worker with room and nothing to claim looks at the queue again: hosts other
#: workers hand back are taken within this (a read of the run's few host rows each time).
POLL_SECONDS = 0.25

#: How often a worker with nothing in flight looks at the queue once nothing is pending (the
#: other workers finish their last hosts): a read of the run's host counts each time.
END_POLL_SECONDS = 0.03

#: Marked on a claimed target this worker's directory does not list.
NOT_IN_DIRECTORY = "not_in_directory: this worker's directory or selection does not list it"


def host_key(base_url: str) -> str:
    """The host a target is claimed under: the same key per-host politeness uses."""
    try:
        return httpx.URL(base_url).host.lower()[:255] or base_url[:255]
    except (httpx.InvalidURL, ValueError):
        return base_url[:255]


def host_map(base_urls: Mapping[int, str]) -> dict[int, str]:
    """Each endpoint id's host key, from its base URL."""
    return {eid: host_key(url) for eid, url in base_urls.items()}


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return (text.splitlines() or [type(exc).__name__])[0][:200]


class HostPace(Protocol):
    """A per-host pace this worker keeps and hands on (the crawl's politeness gate)."""

    def host_pace(self, host: str) -> float:
        """Seconds between request starts in force for `host`."""

    def adopt_pace(self, host: str, interval: float) -> None:
        """Start `host` at a pace another worker came to."""


@dataclass(slots=True)
class _Held:
    #: The targets this claim took (its slice of the host).
    claimed: list[int]
    remaining: int
    #: Targets of this host not started yet; `lanes` tasks take them one after another.
    queue: deque[tuple[Target, int]]
    lanes: int = 0
    scopes: set[anyio.CancelScope] = field(default_factory=set)
    lost: bool = False
    #: The host's pace at this worker when its last target finished (read on the event loop).
    pace: float = 0.0


@dataclass(slots=True)
class ClaimStats:
    """What one worker took from the queue."""

    #: Distinct hosts this worker held at some point.
    hosts: int = 0
    #: Claims taken (a slice of a host each).
    slices: int = 0
    reclaimed: int = 0
    targets: int = 0
    lost: int = 0


class ClaimingSource:
    """Feeds a crawl the targets of the hosts this worker claims from the run's queue."""

    def __init__(
        self,
        store: Store,
        run_id: int,
        by_id: Mapping[int, Target],
        writer: StoreWriter,
        *,
        window: int,
        per_host: int = 2,
        worker: str | None = None,
        lease: timedelta = DEFAULT_LEASE,
        poll: float = POLL_SECONDS,
        store_down_limit: float = 300.0,
        host_interval: float = 0.0,
        slice_size: int | None = None,
        pace: HostPace | None = None,
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.by_id = by_id
        self.writer = writer
        self.window = max(1, window)
        self.per_host = max(1, per_host)
        self.worker = worker or worker_name()
        self.lease = lease
        self.poll = poll
        self.store_down_limit = store_down_limit
        #: Seconds between request starts on one host (1 / --rate): a host handed back with
        #: targets left is claimable again only after it, so no worker starts early.
        self.host_interval = host_interval
        self.slice_size = slice_size or SLICE_PER_LANE * self.per_host
        #: This worker's per-host pace (its politeness gate): handed on with a host.
        self.pace = pace
        #: Why the source stopped early: the store stayed unreachable past the limit.
        self.gave_up: str | None = None
        self.stats = ClaimStats()
        self._held: dict[str, _Held] = {}
        self._seen_hosts: set[str] = set()
        self._in_flight = 0
        self._changed = anyio.Event()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def _wait_change(self, seconds: float) -> None:
        with anyio.move_on_after(seconds):
            await self._changed.wait()

    async def run(self, start: Callable[[Target, int], Awaitable[None]]) -> None:
        """Claim hosts and run `start` on each of their targets until the run's queue is empty.

        Returns when every host of the run is done, or when nothing is left but hosts this
        worker could not hand back (their final writes failed: the caller closes the writer
        and calls :meth:`finish`).
        """
        failing_since: float | None = None
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._heartbeat)
            while True:
                if self._capacity() >= self.window:
                    await self._wait_change(self.poll)
                    continue
                try:
                    claim = await anyio.to_thread.run_sync(self._claim)
                    if claim is None:
                        state = await anyio.to_thread.run_sync(
                            queue_state, self.store.engine, self.run_id
                        )
                except SQLAlchemyError as exc:
                    # The writer's own watch stops the run when the outage lasts; until then
                    # the work in flight goes on and claiming is retried.
                    failing_since = failing_since or anyio.current_time()
                    down_for = anyio.current_time() - failing_since
                    if down_for >= self.store_down_limit:
                        self.gave_up = (
                            f"the store has been unreachable for {down_for:.0f} s "
                            f"({_first_line(exc)}); the run stopped"
                        )
                        break
                    await self._wait_change(self.poll)
                    continue
                failing_since = None
                if claim is not None:
                    await self._start_host(tg, claim, start)
                    continue
                mine = len(self._held)
                if state.finished or (
                    state.pending == 0 and state.held <= mine and self._in_flight == 0
                ):
                    break
                # Others hold the rest: wait for ours to finish, a lease of theirs to expire
                # or a host handed back to become claimable. With nothing pending the run is
                # ending: look again soon, so that the worker that ends it is not left idle
                # for a poll after the last host is done.
                wait = self.poll if state.pending else min(self.poll, END_POLL_SECONDS)
                if state.pending and state.next_free is not None:
                    soon = (state.next_free - utcnow()).total_seconds()
                    wait = min(wait, max(0.01, soon))
                await self._wait_change(wait)
            tg.cancel_scope.cancel()

    def _capacity(self) -> int:
        """Targets the hosts held now keep busy: another host is claimed below the window."""
        return sum(held.lanes for held in self._held.values() if not held.lost)

    def _claim(self) -> HostClaim | None:
        with self.writer.between_flushes():
            return claim_host(
                self.store.engine,
                self.run_id,
                self.worker,
                lease=self.lease,
                limit=self.slice_size,
                hosts_per_worker=max(1, self.window // self.per_host),
                least=self.per_host,
            )

    async def _start_host(
        self,
        tg: anyio.abc.TaskGroup,
        claim: HostClaim,
        start: Callable[[Target, int], Awaitable[None]],
    ) -> None:
        self.stats.slices += 1
        if claim.host not in self._seen_hosts:
            self._seen_hosts.add(claim.host)
            self.stats.hosts += 1
        self.stats.reclaimed += claim.reclaimed
        if claim.pace_s is not None and self.pace is not None:
            self.pace.adopt_pace(claim.host, claim.pace_s)  # the host throttled another worker
        if claim.started_ids:  # a previous holder's partial observations: start clean
            await anyio.to_thread.run_sync(
                clear_target_observations, self.store.engine, self.run_id, claim.started_ids
            )
        queue: deque[tuple[Target, int]] = deque()
        unlisted: list[int] = []
        for endpoint_id in claim.endpoint_ids:
            target = self.by_id.get(endpoint_id)
            if target is None:
                unlisted.append(endpoint_id)
            else:
                queue.append((target, endpoint_id))
        held = self._held[claim.host] = _Held(
            claimed=claim.endpoint_ids, remaining=len(claim.endpoint_ids), queue=queue
        )
        for endpoint_id in unlisted:
            await anyio.to_thread.run_sync(self._not_listed, endpoint_id)
            await self._target_finished(claim.host, held)
        # Targets of one host probed at once: more would only queue at its politeness gate
        # (and hold memory): `per_host` lanes each take the host's next target in turn.
        for _ in range(min(self.per_host, len(queue))):
            held.lanes += 1
            self._in_flight += 1
            tg.start_soon(self._lane, claim.host, held, start)

    async def _lane(
        self,
        host: str,
        held: _Held,
        start: Callable[[Target, int], Awaitable[None]],
    ) -> None:
        try:
            while held.queue and not held.lost:
                target, endpoint_id = held.queue.popleft()
                self.stats.targets += 1
                try:
                    with anyio.CancelScope() as scope:
                        held.scopes.add(scope)
                        try:
                            await start(target, endpoint_id)
                        finally:
                            held.scopes.discard(scope)
                finally:
                    with anyio.CancelScope(shield=True):
                        await self._target_finished(host, held)
        finally:
            held.lanes -= 1
            self._in_flight -= 1
            if held.lost and held.lanes == 0:
                self._forget(host, held)  # its new holder finishes it
            self._notify()

    async def _target_finished(self, host: str, held: _Held) -> None:
        """One target of the claim `held` on `host` finished; the last one hands it back.

        The claim is the lane's own, not whatever ``_held[host]`` is by now: once a slice is
        handed back, this worker may claim the host again (a new claim) before this coroutine
        resumes, and the old slice's bookkeeping must not touch the new one.
        """
        held.remaining -= 1
        if held.remaining <= 0:  # the pace the host is handed on at
            held.pace = self.pace.host_pace(host) if self.pace is not None else self.host_interval
        if held.remaining <= 0 and not held.lost:
            # The targets' final states must be in the database before the host is done.
            released = False
            if await anyio.to_thread.run_sync(self.writer.flush):
                try:
                    released = await anyio.to_thread.run_sync(self._release, host, held)
                except SQLAlchemyError as exc:  # kept; finish() tries again
                    log.warning("could not hand back %s: %s", host, exc)
            if released:
                self._forget(host, held)
        elif held.remaining <= 0:
            self._forget(host, held)
        self._notify()

    def _forget(self, host: str, held: _Held) -> None:
        """Drop the claim `held` from the hosts this worker holds (if it is still the one)."""
        if self._held.get(host) is held:
            del self._held[host]

    async def _heartbeat(self) -> None:
        every = max(0.05, self.lease.total_seconds() / 3)
        while True:
            await anyio.sleep(every)
            renewing = dict(self._held)
            if not renewing:
                continue
            try:
                lost = await anyio.to_thread.run_sync(self._renew, list(renewing))
            except SQLAlchemyError as exc:  # the next beat tries again; leases are generous
                log.warning("could not renew the leases on %d host(s): %s", len(renewing), exc)
                continue
            self._lost_leases(renewing, lost)

    def _lost_leases(self, renewing: Mapping[str, _Held], lost: list[str]) -> None:
        """Stop the targets of the claims whose lease another worker took over.

        Only the claim that was renewed is concerned: a slice handed back while the renewal
        ran (the store then reports its host as not held) and claimed again by this worker is
        a new claim with a lease of its own, and must go on (stopping it left its targets to
        wait for that lease to expire).
        """
        for host in lost:
            held = self._held.get(host)
            if held is None or held.lost or held is not renewing.get(host):
                continue
            log.warning("lost the lease on %s to another worker; stopping its targets", host)
            held.lost = True
            self.stats.lost += 1
            for scope in list(held.scopes):
                scope.cancel()

    def _not_listed(self, endpoint_id: int) -> None:
        self.writer.mark_target(endpoint_id, TargetStatus.FAILED, error=NOT_IN_DIRECTORY)

    def _release(self, host: str, held: _Held) -> bool:
        """Hand `host` back (in a worker thread: the pace was read on the loop)."""
        pace = max(held.pace, self.host_interval)
        with self.writer.between_flushes():
            return release_host(
                self.store.engine,
                self.run_id,
                host,
                self.worker,
                claimed=held.claimed,
                not_before=utcnow() + timedelta(seconds=pace),
                pace_s=pace if pace > self.host_interval else None,
            )

    def _renew(self, hosts: list[str]) -> list[str]:
        with self.writer.between_flushes():
            return renew_leases(
                self.store.engine, self.run_id, self.worker, hosts, lease=self.lease
            )

    def finish(self, *, completed: bool) -> None:
        """After the writer closed: hand back the hosts still held. Done hosts are released;
        the rest (an interrupted or failing run) go back to pending for another worker."""
        try:
            for host, held in list(self._held.items()):
                if completed and self._release(host, held):
                    del self._held[host]
            return_claims(self.store.engine, self.run_id, self.worker)
        except SQLAlchemyError as exc:  # the leases expire: another worker or a resume takes over
            log.warning("could not hand back the hosts this worker held: %s", exc)
