"""The nightly crawl: every endpoint of a directory, concurrently and politely, into the store.

Observations are written as they are made (batched by the store writer); a run interrupted by
a signal or a crash keeps them, is marked interrupted, and `--resume` redoes only the
endpoints it had not finished, after clearing their partial rows, so nothing is duplicated.
"""

from __future__ import annotations

import dataclasses
import functools
import heapq
import logging
import signal
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import anyio
import httpx
from sqlalchemy.exc import SQLAlchemyError

from probe.checks.discovery import run_discovery
from probe.checks.portal import PortalObservation, run_portal_checks
from probe.crawl.authorizing import MemberLogins, login_target
from probe.crawl.options import CrawlOptions, sized_concurrency
from probe.crawl.workers import ClaimingSource, ClaimStats, host_map
from probe.directory.lean import LeanDirectory, TargetRef, TargetTable
from probe.directory.schema import Directory, Target, targets
from probe.directory.secrets import SecretSource, TokenStore
from probe.drift.keys import observe_key_set
from probe.drift.nightly import NightlyDrift, after_run
from probe.http.breaker import CircuitBreaker, OpenCircuit
from probe.http.fetch import Fetcher, new_client
from probe.http.guard import AddressGuard
from probe.http.limits import Limits
from probe.http.politeness import Politeness
from probe.models import CheckResult, ExtractStep, Report, Status
from probe.store.claims import (
    complete_if_finished,
    queue_state,
    register_hosts,
    release_dead_claims,
    reopen_targets,
)
from probe.store.errors import StoreError
from probe.store.handle import Store
from probe.store.resume import clear_target_observations
from probe.store.runs import (
    latest_resumable_run,
    register_targets,
    resume_run,
    run_has_targets,
    unfinished_targets,
)
from probe.store.tables import ProbeRunRow, RunKind, RunStatus, TargetStatus
from probe.store.writer import StoreWriter
from probe.sync.result import SyncResult
from probe.sync.session import sync_patient, warm_up_validation

log = logging.getLogger(__name__)

PORTAL_ACCEPT = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8"


@dataclass(frozen=True, slots=True)
class SyncDigest:
    """What the crawl keeps of a stored sync for its summary (the store has the rest)."""

    patient_label: str
    outcome: str
    duration_ms: float | None
    resources: int
    pages: int

    @classmethod
    def of(cls, result: SyncResult) -> SyncDigest:
        """The digest of one sync result."""
        return cls(
            result.patient_label,
            result.outcome,
            result.duration_ms,
            sum(result.resources_by_type.values()),
            result.pages,
        )


@dataclass(frozen=True, slots=True)
class CheckDigest:
    """What the crawl keeps of a check result for its summary: no message, no evidence."""

    id: str
    status: Status
    blocking: bool

    @classmethod
    def of(cls, result: CheckResult) -> CheckDigest:
        """The digest of one check result."""
        return cls(result.id, result.status, result.blocking)


@dataclass(slots=True)
class TargetOutcome:
    """What one target's probe produced, kept small for the summary.

    No bodies, exchanges or resource ids: a crawl of thousands of endpoints keeps one each.
    """

    target: Target
    endpoint_id: int
    checks: list[CheckDigest] = field(default_factory=list)
    syncs: list[SyncDigest] = field(default_factory=list)
    error: str | None = None
    duration_ms: float = 0.0

    @property
    def failed_required(self) -> list[str]:
        """Ids of required checks that failed."""
        return [c.id for c in self.checks if c.blocking]

    def status_counts(self) -> dict[str, int]:
        """Check results per status."""
        counts = {str(s): 0 for s in Status}
        for c in self.checks:
            counts[str(c.status)] += 1
        return counts


class CrawlReporter(Protocol):
    """Progress output, kept apart from crawling (rich on a terminal, log lines for cron)."""

    def started(self, run_id: int, total: int, resumed: bool) -> None:
        """The run began with `total` targets to probe."""

    def target_done(self, outcome: TargetOutcome, done: int, total: int) -> None:
        """One target finished."""

    def finished(self, status: RunStatus, probed: int) -> None:
        """The run (this worker's share of it) ended after probing `probed` targets."""


@dataclass(slots=True, repr=False)
class CrawlSummary:
    """The end of a crawl: its run id, final status and each target's outcome.

    Its repr is short on purpose: when ``anyio.run`` returns it, asyncio's runner formats the
    finished main task (result included) while restoring the SIGINT handler, and the generated
    repr of every outcome and check result took about 2 ms per endpoint.
    """

    def __repr__(self) -> str:
        return f"CrawlSummary(run {self.run_id}, {self.status}, {len(self.outcomes)} outcomes)"

    run_id: int
    status: RunStatus
    #: At most `CrawlOptions.keep_outcomes` outcomes, those most in need of attention first
    #: (the store has every one).
    outcomes: list[TargetOutcome]
    resumed: bool
    skipped_done: int = 0
    host_stats: dict[str, dict[str, int]] = field(default_factory=dict)
    writer_ok: bool = True
    drift: NightlyDrift | None = None
    open_circuits: list[OpenCircuit] = field(default_factory=list)
    store_error: str | None = None
    #: False when another worker records the end of the run (this worker's share is done).
    ended_run: bool = True
    claims: ClaimStats = field(default_factory=ClaimStats)
    #: Targets this process probed (outcomes beyond the kept ones are counted, not held).
    probed: int = 0
    #: Endpoints this worker probed at once at most (`--concurrency`, or sized to the hosts).
    concurrency: int = 0


@dataclass(slots=True)
class OutcomeLog:
    """The outcomes a crawl keeps for its summary: every one counted, at most `keep` held, the
    ones most in need of attention first (an error, then the most required checks failed);
    memory stays flat in the directory's size and the store has them all."""

    keep: int
    count: int = 0
    _heap: list[tuple[tuple[int, int, int], int, TargetOutcome]] = field(default_factory=list)

    @staticmethod
    def _rank(outcome: TargetOutcome) -> tuple[int, int, int]:
        failed = sum(1 for c in outcome.checks if c.status is Status.FAIL)
        return (outcome.error is not None, len(outcome.failed_required), failed)

    def add(self, outcome: TargetOutcome) -> None:
        """Count an outcome; hold it while fewer than `keep` are held or when it ranks above
        the least notable one held (which is then dropped)."""
        self.count += 1
        if self.keep <= 0:
            return
        # Among equals the earlier outcome stays: a later one ranks lower (-count).
        entry = (self._rank(outcome), -self.count, outcome)
        if len(self._heap) < self.keep:
            heapq.heappush(self._heap, entry)
        elif entry[:2] > self._heap[0][:2]:
            heapq.heapreplace(self._heap, entry)

    @property
    def kept(self) -> list[TargetOutcome]:
        """The outcomes held, in the order they finished."""
        return [entry[2] for entry in sorted(self._heap, key=lambda e: -e[1])]


def parse_shard(value: str) -> tuple[int, int]:
    """'I/N' (1-based) to (I, N); ValueError with a usage message otherwise."""
    try:
        index_text, count_text = value.split("/")
        index, count = int(index_text), int(count_text)
    except ValueError:
        raise ValueError(f"--shard takes I/N, e.g. 1/4, not {value!r}") from None
    if not 1 <= index <= count:
        raise ValueError(f"--shard {value}: I must be between 1 and N")
    return index, count


def in_shard(target: Target | TargetRef, shard: tuple[int, int] | None) -> bool:
    """True when the target belongs to shard I of N (stable across hosts and runs)."""
    if shard is None:
        return True
    index, count = shard
    return zlib.crc32(target.key.encode()) % count == index - 1


def select_targets(
    directory: Directory, only: Sequence[str] = (), shard: tuple[int, int] | None = None
) -> list[Target]:
    """The targets this crawl probes, filtered by payer name (--only) and shard."""
    wanted = {name.casefold() for name in only}
    chosen = [
        t
        for t in targets(directory)
        if (not wanted or t.payer.name.casefold() in wanted) and in_shard(t, shard)
    ]
    return chosen


def unknown_names(directory: Directory | LeanDirectory, only: Sequence[str]) -> list[str]:
    """Names given to --only that match no payer."""
    listed = (
        directory.names
        if isinstance(directory, LeanDirectory)
        else [p.name for p in directory.payers]
    )
    names = {name.casefold() for name in listed}
    return [n for n in only if n.casefold() not in names]


class Crawler:
    """Probes targets and writes what it sees through a StoreWriter."""

    def __init__(
        self,
        fetcher: Fetcher,
        writer: StoreWriter,
        secrets: SecretSource,
        options: CrawlOptions,
    ) -> None:
        self.fetcher = fetcher
        self.writer = writer
        self.secrets = secrets
        self.options = options
        # Without a configured file, rotated refresh tokens are still shared within the run.
        self.token_store = TokenStore(options.token_store)
        self.logins = MemberLogins(  # test members signed in through the browser when due
            writer=writer,
            secrets=secrets,
            token_store=self.token_store,
            browsers=options.browsers,
            directory_dir=options.directory_dir,
            verify=options.verify,
        )

    async def _write(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        # The writer is started: adding only buffers rows, its own thread writes them, so the
        # loop calls it directly (a worker-thread hop per observation cost more than the add).
        fn(*args, **kwargs)

    async def probe(self, target: Target, endpoint_id: int) -> TargetOutcome:
        """Discovery, portal and syncs for one target within the endpoint deadline.

        Faults become observations. When the deadline expires the target is marked failed with
        an ``endpoint_deadline`` error; what was observed until then is kept.
        """
        started = datetime.now(UTC)
        outcome = TargetOutcome(target, endpoint_id)
        await self._write(
            self.writer.mark_target, endpoint_id, TargetStatus.PENDING, started_at=started
        )
        deadline = self.options.endpoint_deadline
        with anyio.move_on_after(deadline) as scope:
            await self._probe(target, endpoint_id, outcome, anyio.current_time() + deadline)
        if scope.cancelled_caught and outcome.error is None:
            outcome.error = f"endpoint_deadline: not finished within {deadline:g} s"
        outcome.duration_ms = (datetime.now(UTC) - started).total_seconds() * 1000
        if outcome.error is not None:
            await self._write(
                self.writer.mark_target, endpoint_id, TargetStatus.FAILED, error=outcome.error
            )
        else:
            await self._write(self.writer.mark_target, endpoint_id, TargetStatus.DONE)
        return outcome

    async def _probe(
        self, target: Target, endpoint_id: int, outcome: TargetOutcome, ends_at: float
    ) -> None:
        report = await run_discovery(self.fetcher, target.base_url)
        if self.options.drift.observe_keys:  # drift: the jwks_uri's key ids (smart.jwks)
            await observe_key_set(self.fetcher, report)
        outcome.checks = [CheckDigest.of(r) for r in report.results]
        await self._write(self._store_report, endpoint_id, report)
        own = target.environment == target.endpoint.environment
        portal_url = target.endpoint.portal_url
        if self.options.portal and own and portal_url:
            portal_checks = await self._portal(endpoint_id, portal_url)
            outcome.checks += [CheckDigest.of(r) for r in portal_checks]
        reachable = report.result("metadata.reachable").evidence.get("http_status") is not None
        if self.options.sync and own and target.endpoint.credentials is not None and reachable:
            for patient in target.endpoint.test_patients:
                # The sync's own deadline ends before the endpoint's, so it stops cleanly.
                left = ends_at - anyio.current_time() - 1.0
                if left <= 0:
                    outcome.error = (
                        f"endpoint_deadline: no time left for test patient {patient.label}"
                    )
                    return
                limits = self.options.sync_limits
                capped = left < limits.deadline_s
                if capped:
                    limits = dataclasses.replace(limits, deadline_s=left)
                run_sync = functools.partial(
                    sync_patient,
                    self.fetcher,
                    report.base_url,
                    patient.id,
                    target.endpoint.credentials,
                    self.secrets,
                    patient_label=patient.label,
                    capability=report.documents.get("capability"),
                    smart_configuration=report.documents.get("smart_configuration"),
                    token_store=self.token_store,
                    limits=limits,
                    on_exchanges=lambda ex: self.writer.add_exchanges(endpoint_id, ex),
                )
                login = login_target(report.base_url, endpoint_id, target.endpoint, patient)
                if login is None:
                    result = await run_sync()
                else:
                    left_now = lambda: ends_at - anyio.current_time()  # noqa: E731
                    result = await self.logins.sync(login, run_sync, left_now)
                if capped and result.outcome == "timeout":
                    deadline = self.options.endpoint_deadline
                    why = f"the endpoint's {deadline:g} s deadline cut the sync short"
                    result.add_finding("endpoint_deadline", why)
                    outcome.error = f"endpoint_deadline: {why} ({patient.label})"
                outcome.syncs.append(SyncDigest.of(result))
                await self._write(self._store_sync, endpoint_id, result)
                if outcome.error is not None:
                    return

    def _store_report(self, endpoint_id: int, report: Report) -> None:
        self.writer.add_exchanges(endpoint_id, report.exchanges)
        self.writer.add_check_results(endpoint_id, report.results)
        for kind, body in report.documents.items():
            self.writer.add_document(endpoint_id, kind, body)

    def _store_sync(self, endpoint_id: int, result: SyncResult) -> None:
        self.writer.add_sync_job(endpoint_id, result.patient_label, **result.job_fields())

    async def _portal(self, endpoint_id: int, url: str) -> list[CheckResult]:
        portal_fetcher = Fetcher(
            self.fetcher.client,
            Limits(
                connect_timeout=self.options.limits.connect_timeout,
                read_timeout=self.options.limits.read_timeout,
                total_timeout=self.options.limits.total_timeout,
                max_body_bytes=2 * 1024 * 1024,
                max_redirects=10,
                max_retries=1,
            ),
            gate=self.fetcher.gate,
            sleep=self.fetcher.sleep,
            breaker=self.fetcher.breaker,
            guard=self.fetcher.guard,
        )
        attempts = await portal_fetcher.get(
            url, step=ExtractStep.PORTAL, accept=PORTAL_ACCEPT, follow_cross_origin=True
        )
        results = run_portal_checks(PortalObservation(url, attempts[-1]))
        await self._write(self.writer.add_exchanges, endpoint_id, attempts)
        await self._write(self.writer.add_check_results, endpoint_id, results)
        return results


async def crawl(
    store: Store,
    directory: Directory | LeanDirectory,
    chosen: Sequence[Target] | Sequence[TargetRef],
    options: CrawlOptions,
    reporter: CrawlReporter,
    *,
    secrets: SecretSource,
    resume: bool = False,
    transport: httpx.AsyncBaseTransport | None = None,
    handle_signals: bool = False,
    join: int | None = None,
) -> CrawlSummary:
    """Run (or resume, or join) a nightly crawl of `chosen` targets and return its summary.

    The crawl is a worker of its run: it claims the run's hosts from the store (see
    probe.crawl.workers), so other processes may `join` the same run and share its targets.
    A `LeanDirectory` with `TargetRef`s keeps memory flat in the directory's size: a target
    is rebuilt in full only when this worker claims its host.
    """
    warm_up_validation()  # built while the store is set up and the first answers are awaited
    if join is None:
        store.mark_stale_runs_interrupted()
    lean = (
        directory
        if isinstance(directory, LeanDirectory)
        else LeanDirectory.from_directory(directory)
    )
    refs = [c for c in chosen if isinstance(c, TargetRef)] or lean.refs_for(
        c for c in chosen if isinstance(c, Target)
    )
    # A joining worker reads the ids its run's first worker stored (no write transaction
    # that the other workers' claims and flushes would queue behind).
    found = await anyio.to_thread.run_sync(store.endpoint_ids, lean) if join is not None else None
    ids = (
        found if found is not None else await anyio.to_thread.run_sync(store.upsert_directory, lean)
    )
    by_id = TargetTable(lean, {ids[ref.key]: ref for ref in refs})
    del ids, refs, found
    hosts = host_map(by_id.base_urls())  # each target's host: claims and lanes go by host
    resumed = False
    skipped = 0
    previous = latest_resumable_run(store.engine, RunKind.NIGHTLY) if resume else None
    if join is not None:
        run_id = join
        _check_joinable(store, run_id)
        todo_ids = [eid for eid in unfinished_targets(store.engine, run_id) if eid in by_id]
    elif previous is not None:
        run_id = previous
        resume_run(store.engine, run_id)
        resumed = True
        if not run_has_targets(store.engine, run_id):  # killed before its targets were listed
            register_targets(store.engine, run_id, by_id)
        register_hosts(store.engine, run_id, hosts)
        todo_ids = [eid for eid in unfinished_targets(store.engine, run_id) if eid in by_id]
        skipped = len(by_id) - len(todo_ids)
        clear_target_observations(store.engine, run_id, todo_ids)
        reopen_targets(store.engine, run_id, todo_ids)  # failed ones are redone too
        release_dead_claims(store.engine, run_id)
    else:
        run_id = store.start_run(RunKind.NIGHTLY, options.to_config())
        register_targets(store.engine, run_id, by_id)
        register_hosts(store.engine, run_id, hosts)
        todo_ids = list(by_id)
    if options.size_to_hosts:  # every host of the run gets its lanes (docs/crawl.md)
        count = len(set(hosts.values()))
        options = dataclasses.replace(
            options, concurrency=sized_concurrency(options.concurrency, count, options.per_host)
        )
    del hosts  # one entry per target: not held for the whole run
    gate = Politeness(per_host=options.per_host, rate=options.rate, total=options.total_requests)
    breaker = CircuitBreaker(options.breaker_threshold) if options.breaker_threshold > 0 else None
    log_of = OutcomeLog(options.keep_outcomes)
    status = RunStatus.COMPLETED
    store_error: str | None = None
    reporter.started(run_id, len(todo_ids), resumed)
    writer = store.writer(run_id).start()
    source = ClaimingSource(
        store,
        run_id,
        by_id,
        writer,
        window=options.concurrency,
        per_host=options.per_host,
        store_down_limit=options.store_down_limit,
        lease=timedelta(seconds=options.lease),
        host_interval=1.0 / options.rate,
        pace=gate,
    )
    ended_run = True
    try:
        guard = AddressGuard()
        for eid in todo_ids:  # the operator's own hosts: they may be on any network
            guard.admit(*by_id.operator_urls(eid))
        client = (
            httpx.AsyncClient(transport=transport, follow_redirects=False)
            if transport is not None
            else new_client(verify=options.verify, guard=guard)
        )
        async with client:
            fetcher = Fetcher(client, options.limits, gate=gate, breaker=breaker, guard=guard)
            crawler = Crawler(fetcher, writer, secrets, options)
            status, store_error = await _run_all(
                crawler, source, len(todo_ids), options, reporter, log_of, handle_signals
            )
    except BaseException:
        status = RunStatus.INTERRUPTED
        raise
    finally:
        with anyio.CancelScope(shield=True):
            # A run that finished during an outage waits (up to the limit) for the database.
            patience = options.store_down_limit if status is RunStatus.COMPLETED else 0.0
            writer_ok = await anyio.to_thread.run_sync(lambda: writer.close(retry_for=patience))
            completed = status is RunStatus.COMPLETED and writer_ok
            await anyio.to_thread.run_sync(lambda: source.finish(completed=completed))
            notes = [f"circuit open for {c.host}: {c.reason}" for c in _circuits(breaker)]
            notes.extend(gate.notes())  # hosts that throttled probe (docs/crawl.md)
            lost = writer.rejected_targets()  # stored `failed`, never `done` (docs/hostile.md)
            outcomes = log_of.kept
            for outcome in outcomes:
                if outcome.endpoint_id in lost and outcome.error is None:
                    outcome.error = lost[outcome.endpoint_id]
            if lost:
                notes.insert(
                    0,
                    f"the store rejected observations of {len(lost)} endpoint(s), marked "
                    f"failed: {next(iter(lost.values()))}",
                )
            if not writer_ok:
                # Endpoints whose observations were not written are not marked done either, so
                # the run is resumable: `probe run --resume` redoes exactly those.
                status = RunStatus.INTERRUPTED
                unwritten = writer.stats()
                store_error = store_error or (
                    f"the store is unreachable ({unwritten.last_error}); "
                    f"{unwritten.buffered} observations could not be written"
                )
                notes.insert(0, store_error)
            note = "; ".join(notes)[:2000] or None
            try:
                status, ended_run = await anyio.to_thread.run_sync(
                    lambda: _finish_share(store, run_id, status, note)
                )
            except SQLAlchemyError as exc:
                log.error("could not record the end of run %s: %s", run_id, exc)
                store_error = store_error or f"could not record the end of the run: {exc}"
        reporter.finished(status, log_of.count)
    summary = CrawlSummary(run_id, status, outcomes, resumed, skipped, gate.stats(), writer_ok)
    summary.probed = log_of.count
    summary.concurrency = options.concurrency
    summary.open_circuits = _circuits(breaker)
    summary.store_error = store_error
    summary.ended_run = ended_run
    summary.claims = source.stats
    # -- nightly drift (probe.drift): compare each endpoint with its previous run, notify --
    # Only the worker that finished the run compares it (exactly one of them does).
    if status is RunStatus.COMPLETED and ended_run and options.drift.enabled:
        summary.drift = await after_run(store, run_id, options.drift)
    return summary


def _check_joinable(store: Store, run_id: int) -> None:
    with store.session() as session:
        row = session.get(ProbeRunRow, run_id)
        if row is None or row.kind != RunKind.NIGHTLY.value:
            raise StoreError(f"no nightly run with id {run_id} to join")
        if row.status != RunStatus.RUNNING.value:
            raise StoreError(f"run {run_id} is {row.status}, not running: nothing to join")


def _finish_share(
    store: Store, run_id: int, status: RunStatus, note: str | None
) -> tuple[RunStatus, bool]:
    """Record the end of this worker's share; returns (status, whether this worker recorded
    the end of the run).

    A completed share completes the run when nothing of it is left. While other workers hold
    hosts of the run it stays running for them; otherwise what is left makes it interrupted
    (resumable), as does an interrupted share that no other worker carries on.
    """
    if status is RunStatus.COMPLETED:
        if complete_if_finished(store.engine, run_id, note=note):
            return status, True
        with store.session() as session:
            row = session.get(ProbeRunRow, run_id)
            if row is not None and row.status != RunStatus.RUNNING.value:
                return status, False  # another worker recorded the end (and compared drift)
        if queue_state(store.engine, run_id).held > 0:
            return status, False
        status = RunStatus.INTERRUPTED
    elif queue_state(store.engine, run_id).held > 0:
        return status, False
    store.finish_run(run_id, status, note=note)
    return status, True


def _circuits(breaker: CircuitBreaker | None) -> list[OpenCircuit]:
    return breaker.open_circuits() if breaker is not None else []


async def _run_all(
    crawler: Crawler,
    source: ClaimingSource,
    total: int,
    options: CrawlOptions,
    reporter: CrawlReporter,
    outcomes: OutcomeLog,
    handle_signals: bool,
) -> tuple[RunStatus, str | None]:
    """Probe every target; returns the status and, if the store stopped the run, why."""
    limiter = anyio.CapacityLimiter(options.concurrency)
    interrupted = False
    store_gave_up: str | None = None

    async def one(target: Target, endpoint_id: int) -> None:
        async with limiter:
            try:
                outcome = await crawler.probe(target, endpoint_id)
            except Exception as exc:  # a bug in probe must not end the night for everyone
                outcome = TargetOutcome(target, endpoint_id, error=f"{type(exc).__name__}: {exc}")
                await anyio.to_thread.run_sync(
                    lambda: crawler.writer.mark_target(
                        endpoint_id, TargetStatus.FAILED, error=outcome.error
                    )
                )
        outcomes.add(outcome)
        reporter.target_done(outcome, outcomes.count, max(total, outcomes.count))

    async def watch(scope: anyio.CancelScope) -> None:
        nonlocal interrupted
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for _ in signals:
                interrupted = True
                scope.cancel()
                return

    async def watch_store(scope: anyio.CancelScope) -> None:
        # The writer keeps observations and retries while the database is down; past the limit
        # the run stops cleanly rather than buffer without end (a resume finishes it later).
        nonlocal store_gave_up
        failing_since: float | None = None
        while True:
            await anyio.sleep(0.25)
            stats = crawler.writer.stats()
            now = anyio.current_time()
            if stats.consecutive_failures == 0:
                failing_since = None
                continue
            failing_since = now if failing_since is None else failing_since
            if now - failing_since >= options.store_down_limit:
                store_gave_up = (
                    f"the store has been unreachable for {now - failing_since:.0f} s "
                    f"({stats.last_error}); the run stopped with {stats.buffered} observations "
                    "unwritten"
                )
                log.error("%s", store_gave_up)
                scope.cancel()
                return

    async with anyio.create_task_group() as outer:
        if handle_signals:
            outer.start_soon(watch, outer.cancel_scope)
        outer.start_soon(watch_store, outer.cancel_scope)
        await source.run(one)
        outer.cancel_scope.cancel()
    store_gave_up = store_gave_up or source.gave_up
    if store_gave_up is not None:
        return RunStatus.INTERRUPTED, store_gave_up
    return (RunStatus.INTERRUPTED if interrupted else RunStatus.COMPLETED), None
