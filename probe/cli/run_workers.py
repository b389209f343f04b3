"""`probe run --workers N`: more worker processes on this machine joining the run it starts.

The process started by the user is worker 1. It starts N-1 copies of the same command with
``--join-pipe`` instead of ``--workers`` as soon as its options are checked, so that their
start-up (imports, loading the directory) runs while it loads the directory and registers the
run. Once the run's targets and hosts are in the store (the reporter's `started` event) it
writes the run's id to their standard input; they then join it like ``--join RUN`` and claim
its hosts from the store as it does. When worker 1 stops before that (a bad directory, an
interrupt), it closes their input and they exit without a word: worker 1 reports. At the end it
waits for them, and stops them when it is interrupted itself.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import IO, TYPE_CHECKING

import typer
from rich.console import Console

if TYPE_CHECKING:
    from probe.crawl.crawler import CrawlReporter, CrawlSummary, TargetOutcome
    from probe.store.handle import Store
    from probe.store.tables import RunStatus

#: Options of `probe run` a joining worker must not repeat.
_NOT_FOR_JOINERS = frozenset({"workers", "join", "join_pipe", "resume", "dry_run"})


def join_arguments(ctx: typer.Context, run_id: int | None) -> list[str]:
    """The command line of `probe run` as this context was given it, joining run `run_id`
    (None: the run whose id comes on standard input, ``--join-pipe``)."""
    args: list[str] = []
    positional: list[str] = []
    for param in ctx.command.params:
        name = param.name or ""
        if name in _NOT_FOR_JOINERS or name not in ctx.params:
            continue
        value = ctx.params[name]
        if param.param_type_name == "argument":
            positional.append(str(value))
            continue
        if value is None or value == param.default:
            continue
        flag = max(param.opts, key=len)
        if getattr(param, "is_flag", False):
            if value:
                args.append(flag)
        elif isinstance(value, list | tuple):
            for item in value:
                args += [flag, str(item)]
        else:
            args += [flag, str(value)]
    joining = ["--join-pipe"] if run_id is None else ["--join", str(run_id)]
    return [*positional, *args, *joining]


def wait_for_run_id(stream: IO[str] | None = None) -> int | None:
    """The run id worker 1 writes on this worker's standard input (``--join-pipe``); None when
    the input closes without one (worker 1 stopped before its run existed)."""
    try:
        line = (stream or sys.stdin).readline()
    except (OSError, ValueError):
        return None
    text = line.strip()
    return int(text) if text.isascii() and text.isdigit() else None


class WorkerPool:
    """The extra worker processes of a run: started early, told the run's id once it exists."""

    def __init__(self, ctx: typer.Context, count: int) -> None:
        self.ctx = ctx
        self.count = count
        self.processes: list[subprocess.Popen[bytes]] = []
        self.announced = False

    def spawn(self) -> None:
        """Start the other workers now; they get ready and wait for the run's id on stdin
        (their output: progress lines on stderr)."""
        command = [sys.executable, "-m", "probe", "run", *join_arguments(self.ctx, None)]
        for _ in range(self.count - 1):
            self.processes.append(
                subprocess.Popen(  # noqa: S603 (this very program, with the user's own options)
                    command,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.DEVNULL,
                    env=os.environ.copy(),
                )
            )

    def start(self, run_id: int) -> None:
        """The run exists with its targets and hosts: the workers join it."""
        if self.announced:
            return
        self.announced = True
        for process in self.processes:
            self._close_input(process, f"{run_id}\n".encode())

    @staticmethod
    def _close_input(process: subprocess.Popen[bytes], data: bytes = b"") -> None:
        if process.stdin is None or process.stdin.closed:
            return
        try:
            if data:
                process.stdin.write(data)
            process.stdin.close()
        except OSError:  # it has exited already: its exit code says why
            pass

    def stop(self) -> None:
        """Ask the workers to stop (SIGTERM); what they observed stays, the run resumable."""
        for process in self.processes:
            self._close_input(process)
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)

    def wait(self) -> list[int]:
        """Wait for every worker; their exit codes."""
        return [process.wait() for process in self.processes]

    def finish(self, err: Console) -> None:
        """At the end of this worker's share: wait for the others, or stop them first when
        this process is being interrupted (an exception is on its way out). Workers never told
        a run (this process stopped before it existed) are ended without a word: they had no
        share, and this process says why it stopped."""
        if not self.processes:
            return
        if not self.announced:
            self.stop()
            self.wait()
            return
        if sys.exc_info()[0] is not None:
            self.stop()
        codes = self.wait()
        if any(codes):
            err.print(f"worker exit codes: {codes}", markup=False)


def finish_pooled(store: Store, summary: CrawlSummary) -> CrawlSummary:
    """The run's state once every worker of the pool has exited.

    A run no worker could finish (they were killed, or one was interrupted) is marked
    interrupted so that `probe run --resume` takes it up.
    """
    from probe.store.tables import ProbeRunRow, RunStatus

    with store.session() as session:
        row = session.get(ProbeRunRow, summary.run_id)
        status = RunStatus(row.status) if row is not None else RunStatus.INTERRUPTED
    if status is RunStatus.RUNNING:
        store.finish_run(summary.run_id, RunStatus.INTERRUPTED, note="its workers stopped")
        status = RunStatus.INTERRUPTED
    summary.status = status
    summary.ended_run = True
    return summary


def pooled_line(store: Store, run_id: int) -> str:
    """One line on the whole shared run, from the store: targets by status and workers."""
    from probe.store.claims import run_tally

    tally = run_tally(store.engine, run_id)
    counts = ", ".join(f"{n} {status}" for status, n in sorted(tally.targets.items()))
    shares = ", ".join(str(n) for n in sorted(tally.hosts_by_worker.values(), reverse=True))
    return (
        f"run {run_id} as a whole: {sum(tally.targets.values())} endpoints ({counts}); "
        f"{len(tally.hosts_by_worker)} workers took {shares} hosts"
    )


class PoolReporter:
    """A crawl reporter that starts the pool's workers once the run exists."""

    def __init__(self, inner: CrawlReporter, pool: WorkerPool) -> None:
        self.inner = inner
        self.pool = pool

    def started(self, run_id: int, total: int, resumed: bool) -> None:
        """The run began: start the other workers, then report."""
        self.pool.start(run_id)
        self.inner.started(run_id, total, resumed)

    def target_done(self, outcome: TargetOutcome, done: int, total: int) -> None:
        """One target finished."""
        self.inner.target_done(outcome, done, total)

    def finished(self, status: RunStatus, probed: int) -> None:
        """This worker's share ended: when it was cut short (a signal, the store down), the
        other workers are stopped too rather than awaited."""
        from probe.store.tables import RunStatus

        if status is not RunStatus.COMPLETED:
            self.pool.stop()
        self.inner.finished(status, probed)
