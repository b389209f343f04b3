"""Rendering a prerelease for people (Markdown, HTML) and for CI (JUnit XML).

JUnit: one ``<testsuite>`` each for the checks, the syncs, the changes against the baseline and
the score (with a ``<skipped/>`` testcase for each thing not tested: a metric without data, the
baseline, the sync). A testcase fails for a failed required check, a sync that got no data (outcome
failed, auth_failed or timeout), a breaking change, or a score below ``--fail-under``; a skipped
check is ``<skipped/>``; everything else passes, its message in ``<system-out>``. The gate
(``--fail-on``, ``--fail-under``) decides the exit code; JUnit shows why.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import Any

from jinja2 import Environment, select_autoescape

from probe.drift.classify import Change, ChangeKind
from probe.http.redact import scrub_secrets
from probe.http.text import printable, xml_safe
from probe.models import CheckResult, Status
from probe.prerelease.run import PrereleaseResult
from probe.sync.result import SyncResult

FAILED_SYNC_OUTCOMES = frozenset({"failed", "auth_failed", "timeout"})


def value_text(value: Any, width: int = 80) -> str:
    """A value for one line of a report: JSON for non-strings, cut at `width`."""
    if value is None:
        return "—"
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= width else text[: width - 1] + "…"


def verdict(result: PrereleaseResult) -> str:
    """FAILED, PASSED, or NOT GATED when no ``--fail-on`` or ``--fail-under`` was given (a report
    that nothing was asked of does not pass)."""
    if not result.gate.passed:
        return "FAILED"
    gated = result.gate.fail_under is not None or bool(result.gate.fail_on)
    return "PASSED" if gated else "NOT GATED"


def score_line(result: PrereleaseResult) -> str:
    """The score in one sentence: points earned, possible and tested (untested count 0)."""
    s = result.score
    if s.score is None:
        return "prerelease score: none (the rubric has no metric one run can observe)"
    untested = f", {s.untested} not tested count 0" if s.untested else ""
    if s.scope == "discovery":
        return (
            f"discovery score: {s.score}/100 ({s.earned} of {s.possible} points{untested}); "
            "--discovery-only: the gate covers the discovery criteria only; the whole "
            f"prerelease scorecard: {s.prerelease_earned} of {s.prerelease_possible} points, "
            f"{s.prerelease_tested} tested"
        )
    return (
        f"prerelease score: {s.score}/100 ({s.earned} of {s.possible} points possible, "
        f"{s.tested} tested{untested}; rubric total {s.rubric_total}/{s.rubric_max})"
    )


def not_tested_lines(result: PrereleaseResult) -> list[str]:
    """One line per thing the prerelease did not test (metric points count 0)."""
    return [
        f"not tested: {n.title}" + (f" ({n.points} points)" if n.points else "") + f": {n.reason}"
        for n in result.not_tested
    ]


def baseline_line(result: PrereleaseResult) -> str:
    """What the candidate was compared with, in one sentence."""
    if result.baseline is None:
        return "baseline: none (no --baseline or --baseline-run): nothing compared"
    note = "" if result.baseline.has_syncs else " (documents and discovery only: no sync)"
    fetched = result.baseline.snapshot.metadata_fetch
    if fetched is not None and not fetched.ok:
        note += f"; warning: its /metadata answered {fetched.describe()}, little to compare"
    return f"baseline: {result.baseline.description}{note}"


# -- Markdown ------------------------------------------------------------------------------------


_MD_ESCAPES = {c: "\\" + c for c in "\\`*_[]|~$"} | {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_MD_TABLE = str.maketrans(_MD_ESCAPES)


def _plain(text: Any) -> str:
    """One line of server-supplied text: no secret, no control character, no line break."""
    return printable(scrub_secrets(str(text)), one_line=True)


def _md(text: Any) -> str:
    """Text for Markdown (a table cell or a line): HTML and Markdown syntax escaped."""
    return _plain(text).translate(_MD_TABLE)


def _md_code(text: Any) -> str:
    """Text as a Markdown code span, whatever backticks or pipes it holds."""
    body = _plain(text).replace("|", "\\|")
    ticks = 1
    while "`" * ticks in body:
        ticks += 1
    fence = "`" * ticks
    pad = " " if body.startswith("`") or body.endswith("`") else ""
    return f"{fence}{pad}{body}{pad}{fence}"


def render_markdown(result: PrereleaseResult) -> str:
    """The conformance report as Markdown (for a pull request or a release ticket)."""
    report = result.candidate.report
    lines = [
        f"# probe prerelease: {verdict(result)}",
        "",
        f"- candidate: {_md_code(report.base_url)}",
        f"- {_md(baseline_line(result))}",
        f"- started: {result.started_at.isoformat(timespec='seconds')}, "
        f"took {result.duration_s:.1f} s",
        f"- {_md(score_line(result))}",
        *(f"- {_md(entry)}" for entry in not_tested_lines(result)),
    ]
    if result.gate.fail_under is not None or result.gate.fail_on:
        gates = [f"--fail-on {g}" for g in result.gate.fail_on]
        if result.gate.fail_under is not None:
            gates.append(f"--fail-under {result.gate.fail_under}")
        lines.append(f"- gate: {', '.join(gates)}")
    for reason in result.gate.reasons:
        lines.append(f"- **gate failed:** {_md(reason)}")
    counts = result.counts
    lines += ["", "## Changes against the baseline", ""]
    if result.baseline is None:
        lines.append("No baseline was given.")
    elif not result.changes:
        lines.append("No changes.")
    else:
        lines.append(_md(", ".join(f"{n} {k}" for k, n in counts.items())))
        lines += [
            "",
            "| kind | change | path | before | after | reason |",
            "|---|---|---|---|---|---|",
        ]
        for c in result.changes:
            lines.append(
                f"| {c.kind} | {_md_code(c.id)} | {_md_code(c.path)} | "
                f"{_md(value_text(c.before))} | {_md(value_text(c.after))} | {_md(c.reason)} |"
            )
    lines += ["", "## Prerelease score", ""]
    if result.score.scored or result.score.no_data:
        lines += ["| metric | points | outcome | comment |", "|---|---|---|---|"]
        for m in result.score.scored:
            lines.append(
                f"| {_md(m.title)} | {m.points}/{m.max_points} | {_md(m.outcome_label)} | "
                f"{_md(m.comment)} |"
            )
        for m in result.score.no_data:
            lines.append(
                f"| {_md(m.title)} | 0/{m.max_points} (not tested) | no data in this run | "
                f"{_md(m.comment)} |"
            )
    lines += ["", "## Checks", "", "| status | check | severity | message |", "|---|---|---|---|"]
    for r in report.results:
        lines.append(f"| {r.status} | {_md_code(r.id)} | {r.spec.severity} | {_md(r.message)} |")
    lines += ["", "## Test-patient syncs", ""]
    if not result.candidate.syncs:
        lines.append("No test patient was synced (give --patient and credentials).")
    else:
        lines += [
            "| patient | outcome | $everything | resources | pages | seconds | findings |",
            "|---|---|---|---|---|---|---|",
        ]
        for s in result.candidate.syncs:
            seconds = "" if s.duration_ms is None else f"{s.duration_ms / 1000:.2f}"
            findings = ", ".join(sorted({f.code for f in s.findings}))
            lines.append(
                f"| {_md(s.patient_label)} | {_md(s.outcome)} | "
                f"{_md(s.everything.support_level)} | "
                f"{sum(s.resources_by_type.values())} | {s.pages} | {seconds} | {_md(findings)} |"
            )
    return "\n".join(lines) + "\n"


# -- HTML ----------------------------------------------------------------------------------------

_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>probe prerelease {{ verdict }}: {{ candidate }}</title>
<style>
body{font-family:system-ui,sans-serif;margin:2rem;max-width:80rem;color:#222}
h1 .passed{color:#17803d}h1 .failed{color:#b42318}h1 .not-gated{color:#a15c00}
table{border-collapse:collapse;width:100%;margin:.5rem 0 1.5rem}
th,td{border-bottom:1px solid #ddd;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f6f6f6}code{font-size:.9em;word-break:break-all}
.breaking,.fail{color:#b42318;font-weight:600}.notable,.warn{color:#a15c00}
.cosmetic,.skip{color:#777}.pass{color:#17803d}.gate{background:#fdecea;padding:.5rem}
</style></head><body>
<h1>probe prerelease <span class="{{ verdict|lower|replace(' ', '-') }}">{{ verdict }}</span></h1>
<ul>
<li>candidate: <code>{{ candidate }}</code></li>
<li>{{ baseline_line }}</li>
<li>started {{ started }}, took {{ duration }} s</li>
<li>{{ score_line }}</li>
{% for entry in not_tested %}<li class="untested">{{ entry }}</li>{% endfor %}
</ul>
{% for reason in reasons %}<p class="gate">gate failed: {{ reason }}</p>{% endfor %}
<h2>Changes against the baseline</h2>
{% if not has_baseline %}<p>No baseline was given.</p>
{% elif not changes %}<p>No changes.</p>
{% else %}<p>{{ counts }}</p>
<table><tr><th>kind</th><th>change</th><th>path</th><th>before</th><th>after</th><th>reason</th></tr>
{% for c in changes %}<tr><td class="{{ c.kind }}">{{ c.kind }}</td><td><code>{{ c.id }}</code></td>
<td><code>{{ c.path }}</code></td><td>{{ c.before }}</td><td>{{ c.after }}</td>
<td>{{ c.reason }}</td></tr>
{% endfor %}</table>{% endif %}
<h2>Prerelease score</h2>
<table><tr><th>metric</th><th>points</th><th>outcome</th><th>comment</th></tr>
{% for m in scored %}<tr><td>{{ m.title }}</td><td>{{ m.points }}/{{ m.max_points }}</td>
<td>{{ m.outcome_label }}</td><td>{{ m.comment }}</td></tr>
{% endfor %}{% for m in no_data %}<tr><td>{{ m.title }}</td>
<td>0/{{ m.max_points }} (not tested)</td><td>no data in this run</td><td>{{ m.comment }}</td>
</tr>{% endfor %}</table>
<h2>Checks</h2>
<table><tr><th>status</th><th>check</th><th>severity</th><th>message</th></tr>
{% for r in checks %}<tr><td class="{{ r.status }}">{{ r.status }}</td>
<td><code>{{ r.id }}</code></td><td>{{ r.severity }}</td><td>{{ r.message }}</td></tr>
{% endfor %}</table>
<h2>Test-patient syncs</h2>
{% if not syncs %}<p>No test patient was synced.</p>{% else %}
<table><tr><th>patient</th><th>outcome</th><th>$everything</th><th>resources</th><th>pages</th>
<th>seconds</th><th>findings</th></tr>
{% for s in syncs %}<tr><td>{{ s.label }}</td><td>{{ s.outcome }}</td>
<td>{{ s.everything }}</td><td>{{ s.resources }}</td><td>{{ s.pages }}</td>
<td>{{ s.seconds }}</td><td>{{ s.findings }}</td></tr>
{% endfor %}</table>{% endif %}
</body></html>
"""
_env = Environment(autoescape=select_autoescape(default=True, default_for_string=True))


def render_html(result: PrereleaseResult) -> str:
    """The conformance report as one self-contained HTML page (no scripts, no network)."""
    report = result.candidate.report
    template = _env.from_string(_HTML)
    return template.render(
        verdict=verdict(result),
        candidate=report.base_url,
        baseline_line=baseline_line(result),
        started=result.started_at.isoformat(timespec="seconds"),
        duration=f"{result.duration_s:.1f}",
        score_line=score_line(result),
        not_tested=not_tested_lines(result),
        reasons=result.gate.reasons,
        has_baseline=result.baseline is not None,
        counts=", ".join(f"{n} {k}" for k, n in result.counts.items()),
        changes=[
            {
                "kind": str(c.kind),
                "id": c.id,
                "path": c.path,
                "before": value_text(c.before, 200),
                "after": value_text(c.after, 200),
                "reason": c.reason,
            }
            for c in result.changes
        ],
        scored=result.score.scored,
        no_data=result.score.no_data,
        checks=[
            {
                "status": str(r.status),
                "id": r.id,
                "severity": str(r.spec.severity),
                "message": r.message,
            }
            for r in report.results
        ],
        syncs=[
            {
                "label": s.patient_label,
                "outcome": s.outcome,
                "everything": s.everything.support_level,
                "resources": sum(s.resources_by_type.values()),
                "pages": s.pages,
                "seconds": "" if s.duration_ms is None else f"{s.duration_ms / 1000:.2f}",
                "findings": ", ".join(sorted({f.code for f in s.findings})),
            }
            for s in result.candidate.syncs
        ],
    )


# -- JUnit ---------------------------------------------------------------------------------------


def _suite(root: ET.Element, name: str, cases: Sequence[ET.Element], seconds: float = 0.0) -> None:
    suite = ET.SubElement(
        root,
        "testsuite",
        name=name,
        tests=str(len(cases)),
        failures=str(sum(1 for c in cases if c.find("failure") is not None)),
        errors="0",
        skipped=str(sum(1 for c in cases if c.find("skipped") is not None)),
        time=f"{seconds:.3f}",
    )
    suite.extend(cases)


def _case(classname: str, name: str, seconds: float = 0.0) -> ET.Element:
    return ET.Element("testcase", classname=classname, name=name, time=f"{seconds:.3f}")


def _out(case: ET.Element, text: str) -> None:
    ET.SubElement(case, "system-out").text = text


def _check_case(result: CheckResult) -> ET.Element:
    latency = result.evidence.get("latency_ms")
    seconds = latency / 1000 if isinstance(latency, int | float) else 0.0
    case = _case(
        f"probe.checks.{result.id.split('.')[0]}", f"{result.id}: {result.spec.title}", seconds
    )
    detail = f"{result.message}\nspec: {result.spec.spec}"
    if result.blocking:
        ET.SubElement(case, "failure", message=result.message, type="required").text = detail
    elif result.status is Status.SKIP:
        ET.SubElement(case, "skipped", message=result.message)
    else:
        _out(case, f"{result.status} ({result.spec.severity}): {detail}")
    return case


def _sync_case(sync: SyncResult) -> ET.Element:
    seconds = (sync.duration_ms or 0.0) / 1000
    case = _case("probe.sync", f"sync {sync.patient_label}", seconds)
    findings = ", ".join(sorted({f.code for f in sync.findings})) or "none"
    text = (
        f"outcome {sync.outcome}; $everything {sync.everything.support_level}; "
        f"{sum(sync.resources_by_type.values())} resources in {sync.pages} pages; "
        f"findings: {findings}"
    )
    if sync.outcome in FAILED_SYNC_OUTCOMES:
        ET.SubElement(
            case, "failure", message=f"sync ended {sync.outcome}", type="sync"
        ).text = text
    else:
        _out(case, text)
    return case


def _change_case(change: Change) -> ET.Element:
    case = _case(f"probe.drift.{change.kind}", change.id)
    text = (
        f"{change.reason}\npath: {change.path}\nbefore: {value_text(change.before, 500)}\n"
        f"after: {value_text(change.after, 500)}"
    )
    if change.kind is ChangeKind.BREAKING:
        ET.SubElement(case, "failure", message=change.reason, type="breaking").text = text
    else:
        _out(case, f"{change.kind}: {text}")
    return case


def _xml_clean(root: ET.Element) -> None:
    """Make every text and attribute of the tree well-formed XML 1.0 and free of secrets."""
    for element in root.iter():
        for name, value in element.attrib.items():
            element.set(name, xml_safe(scrub_secrets(value)))
        if element.text:
            element.text = xml_safe(scrub_secrets(element.text))
        if element.tail:
            element.tail = xml_safe(element.tail)


def render_junit(result: PrereleaseResult) -> str:
    """JUnit XML for CI: checks, syncs, changes and score (see the module docstring)."""
    report = result.candidate.report
    root = ET.Element("testsuites", name=f"probe prerelease {report.base_url}")
    _suite(root, "prerelease.checks", [_check_case(r) for r in report.results])
    syncs = [_sync_case(s) for s in result.candidate.syncs]
    if not syncs:
        case = _case("probe.sync", "sync")
        ET.SubElement(case, "skipped", message="no test patient given (--patient)")
        syncs = [case]
    _suite(root, "prerelease.sync", syncs)
    changes = [_change_case(c) for c in result.changes]
    summary = _case("probe.drift", "baseline comparison")
    if result.baseline is None:
        ET.SubElement(summary, "skipped", message="no baseline (--baseline or --baseline-run)")
    else:
        counts = ", ".join(f"{n} {k}" for k, n in result.counts.items())
        _out(summary, f"{result.baseline.description}: {counts}")
    _suite(root, "prerelease.changes", [summary, *changes])
    score_case = _case("probe.score", "prerelease score")
    line = score_line(result)
    fail_under = result.gate.fail_under
    score = result.score.score
    if fail_under is not None and (score is None or score < fail_under):
        ET.SubElement(
            score_case, "failure", message=f"{line} < --fail-under {fail_under}", type="score"
        ).text = line
    else:
        _out(score_case, line)
    untested = []
    for n in result.not_tested:
        case = _case("probe.score.not_tested", n.item)
        ET.SubElement(case, "skipped", message=f"not tested: {n.title}: {n.reason}")
        untested.append(case)
    _suite(root, "prerelease.score", [score_case, *untested])
    totals = root.findall("testsuite")
    for attr in ("tests", "failures", "errors", "skipped"):
        root.set(attr, str(sum(int(s.get(attr, "0")) for s in totals)))
    root.set("time", f"{result.duration_s:.3f}")
    ET.indent(root)
    _xml_clean(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
