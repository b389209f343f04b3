"""The one screen `probe demo` ends with: the best and worst payers and vendors, the failures
seen most, where the report and the database are, and the commands to run next."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from probe.cli.safe_text import safe


@dataclass(frozen=True, slots=True)
class CommonFailure:
    """A check that failed at `endpoints` endpoints of the run (one of them: `example_url`)."""

    check_id: str
    severity: str
    endpoints: int
    example_url: str


@dataclass(frozen=True, slots=True)
class DemoFacts:
    """What the summary says, read from the store after the demo's run, score and report."""

    run_id: int
    endpoints: int
    payers: int
    vendors: int
    best: tuple[str, str, str]  # payer, "93/100", vendor
    worst: tuple[str, str, str]
    best_vendor: tuple[str, str] | None  # vendor, "52/70"
    worst_vendor: tuple[str, str] | None
    failures: list[CommonFailure]
    database: str


def _payer_line(ranked: object) -> tuple[str, str, str]:
    score = ranked.score  # type: ignore[attr-defined]
    return score.payer, f"{score.total}/{score.max_total}", score.vendor or "-"


def read_facts(db: str | None = None, top: int = 5) -> DemoFacts | None:
    """The summary's facts from the store at `db` (default: as every command resolves it);
    None when there is no scored nightly run to summarize."""
    from sqlalchemy import distinct, func, select

    from probe.cli.reading import read_store, scoring_options
    from probe.score.collect import score_stored
    from probe.store.engine import safe_url
    from probe.store.tables import CheckResultRow, EndpointRow, ProbeRunRow

    scoring = scoring_options(None, None, None)
    with read_store(db) as store, store.session() as session:
        run_id = session.scalar(
            select(func.max(ProbeRunRow.id)).where(ProbeRunRow.kind == "nightly")
        )
        if run_id is None:
            return None
        card, _ = score_stored(session, scoring.rubric, scoring.as_of, scoring.window_months)
        if not card.payers:
            return None
        endpoints = session.scalar(
            select(func.count(distinct(CheckResultRow.endpoint_id))).where(
                CheckResultRow.run_id == run_id
            )
        )
        rows = session.execute(
            select(
                CheckResultRow.check_id,
                func.max(CheckResultRow.severity),
                func.count(distinct(CheckResultRow.endpoint_id)).label("n"),
                func.min(EndpointRow.base_url),
            )
            .join(EndpointRow, EndpointRow.id == CheckResultRow.endpoint_id)
            .where(CheckResultRow.run_id == run_id, CheckResultRow.status == "fail")
            .group_by(CheckResultRow.check_id)
            .order_by(func.count(distinct(CheckResultRow.endpoint_id)).desc())
            .order_by(CheckResultRow.check_id)
            .limit(top)
        ).all()
        database = safe_url(store.engine.url)
        if store.engine.url.get_backend_name() == "sqlite" and store.engine.url.database:
            database = str(Path(store.engine.url.database).resolve())
    scored_vendors = [v for v in card.vendors if v.score.score is not None]
    vendor = [(v.score.vendor, f"{v.score.score:g}/{v.score.max_points}") for v in scored_vendors]
    return DemoFacts(
        run_id=run_id,
        endpoints=endpoints or 0,
        payers=len(card.payers),
        vendors=len(card.vendors),
        best=_payer_line(card.payers[0]),
        worst=_payer_line(card.payers[-1]),
        best_vendor=vendor[0] if vendor else None,
        worst_vendor=vendor[-1] if len(vendor) > 1 else None,
        failures=[CommonFailure(c, str(s), n, u) for c, s, n, u in rows],
        database=database,
    )


def summary_lines(
    facts: DemoFacts, report: Path, seconds: float, secrets: Path | None = None
) -> list[str]:
    """The summary and next steps as lines of at most 80 characters (long URLs aside)."""
    out = [
        f"probe demo: run {facts.run_id} probed {facts.endpoints} endpoints of {facts.payers} "
        f"payers ({facts.vendors} vendor{'s' if facts.vendors != 1 else ''}) in {seconds:.0f}s",
        f"  best payer    {facts.best[1]:>7}  {facts.best[0]} ({facts.best[2]})",
        f"  worst payer   {facts.worst[1]:>7}  {facts.worst[0]} ({facts.worst[2]})",
    ]
    if facts.best_vendor:
        out.append(f"  best vendor   {facts.best_vendor[1]:>7}  {facts.best_vendor[0]}")
    if facts.worst_vendor:
        out.append(f"  worst vendor  {facts.worst_vendor[1]:>7}  {facts.worst_vendor[0]}")
    if facts.failures:
        out.append("  most common failures (endpoints failing them):")
        width = max(len(f.check_id) for f in facts.failures)
        for f in facts.failures:
            out.append(f"    {f.endpoints:>3}  {f.check_id:<{width}}  {f.severity}")
    out.append(f"  report        {report.resolve()}")
    out.append(f"  database      {facts.database}")
    if secrets is not None:
        out.append(f"  secrets       {secrets} (kept, mode 0600)")
    worst = shlex.quote(facts.worst[0])
    steps = [
        (f"probe score --payer {worst}", "why the worst payer scores low"),
        ("probe score --details", "every payer's metrics, evidence"),
    ]
    if facts.failures:
        required = [f for f in facts.failures if f.severity == "required"]
        first = (required or facts.failures)[0]
        steps.append(
            (
                f"probe history {first.example_url} --check {first.check_id}",
                "one failure, run by run",
            )
        )
    steps.append(("probe drift", "what changed since the last demo"))
    steps.append(("make demo", "again: builds the history"))
    if secrets is None:
        steps.append(("probe demo --keep", "keep the fleet's secrets (sync)"))
    else:
        key = "blue-meadow/refresh_token"
        steps.append(
            (
                f"export BM_RT=$(awk '$1 == \"{key}:\" {{print $2}}' {shlex.quote(str(secrets))})",
                "a refresh token for probe sync (README)",
            )
        )
    out.append("next steps:")
    column = max(len(c) for c, _ in steps if len(c) <= 40)
    for command, why in steps:
        if len(command) > column:  # a long command on its own line, the why below it
            out += [f"  {command}", f"  {'':<{column}}  {why}"]
        else:
            out.append(f"  {command:<{column}}  {why}")
    return [safe(line) for line in out]
