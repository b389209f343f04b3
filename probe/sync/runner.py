"""One test-patient sync: `$everything` with paging, per-resource fallback, reference resolution.

Memory is bounded by page size, not patient size: each page is parsed, reduced to ids, types,
reference strings and validation counts, and dropped; exchanges are kept without bodies.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urljoin

import anyio

from probe.http.body import operation_outcome_text, parse_json
from probe.http.fetch import FHIR_JSON, Fetcher
from probe.http.guard import url_host
from probe.http.urls import join, origin_of, printable_url, url_problem
from probe.models import Exchange, ExtractStep
from probe.sync.auth import AuthError, Authorizer
from probe.sync.limits import SyncLimits
from probe.sync.references import R4_ID_LENGTH, ReferenceSet
from probe.sync.result import SyncResult

if TYPE_CHECKING:
    from probe.sync.documents import PendingDocuments
    from probe.sync.searches import SearchPlan

# Fetch-level bounds and faults that become sync findings under their own name (docs/hostile.md).
BOUND_FINDINGS = frozenset(
    {
        "body_too_large",
        "too_many_redirects",
        "redirect_cross_origin",
        "ssrf_refused",
        "circuit_open",
        "timeout",
        "no_response",
        "content_length_mismatch",
        "protocol_error",
    }
)
# Body problems of a 2xx answer that become findings under their own name.
BODY_FINDINGS = frozenset({"too_deep", "invalid_utf8", "invalid_json", "invalid_number"})
MAX_REFERENCE_HOSTS_CHECKED = 10
# Transport failures that say the host cannot be reached at all (nothing about `$everything`).
# No request reached the server (an open circuit never sends one): says nothing of `$everything`.
UNREACHABLE_ERRORS = frozenset({"dns", "connection_refused", "tls", "circuit_open"})


@dataclass(slots=True)
class _Paging:
    ok: bool = True
    broken: str | None = None
    pages: int = 0
    entries: int = 0
    total: int | None = None
    first_status: int | None = None
    first_error: str | None = None
    first_problem: str | None = None


class PatientSync:
    """Runs one sync of one test patient against one FHIR base URL."""

    def __init__(
        self,
        fetcher: Fetcher,
        base_url: str,
        patient_id: str,
        authorizer: Authorizer,
        *,
        patient_label: str | None = None,
        capability: dict[str, Any] | None = None,
        documents: PendingDocuments | None = None,
        limits: SyncLimits | None = None,
        on_exchanges: Callable[[list[Exchange]], None] | None = None,
    ) -> None:
        """`capability` is the server's CapabilityStatement; or `documents` brings it later
        (discovery still in flight), awaited only where the sync reads it: the POST fallback
        of a 405 to `$everything`, and the per-resource searches."""
        self.fetcher = fetcher
        self.base = base_url.rstrip("/")
        self.patient_id = patient_id
        self.auth = authorizer
        self.capability = capability
        self._documents = documents
        self.limits = limits or SyncLimits()
        self.on_exchanges = on_exchanges
        self._scope: anyio.CancelScope | None = None
        self.result = SyncResult(
            base_url=self.base,
            patient_id=patient_id,
            patient_label=patient_label or patient_id,
            created_at=datetime.now(UTC),
            tokens=authorizer.facts,
        )
        self.refs = ReferenceSet(self.base, max_references=self.limits.max_references * 50)
        self.authorizer_record = authorizer.record
        authorizer.record = self._record
        self._auth_failed: str | None = None
        self._incomplete = False  # data lost that no fallback recovered

    async def _everything_declared(self) -> bool:
        """Whether the CapabilityStatement declares `$everything` (for the POST retry)."""
        from probe.checks.metadata import everything_declared

        return bool(everything_declared(await self._capability()))

    async def _capability(self) -> dict[str, Any] | None:
        """The CapabilityStatement, waiting for discovery's answer if it is still in flight."""
        if self._documents is not None:
            self.capability = (await self._documents.get()).capability
            self._documents = None
        return self.capability

    # -- requests ---------------------------------------------------------------------------

    def _record(self, attempts: list[Exchange]) -> None:
        waited = sum(a.wait_ms for a in attempts) / 1000
        if waited > 0 and self._scope is not None:
            self._scope.deadline += waited
        stripped = [dataclasses.replace(a, body=b"", headers=()) for a in attempts]
        self.result.exchanges.extend(stripped)
        if self.on_exchanges is not None:
            self.on_exchanges(stripped)

    async def _fhir(
        self,
        url: str,
        step: ExtractStep,
        *,
        method: str = "GET",
        content: bytes | None = None,
        retries: int | None = None,
    ) -> Exchange:
        """One FHIR request with the patient's token; one token refresh and retry on 401."""
        if origin_of(url) != origin_of(self.base):
            raise ValueError("refusing to send the patient's token to another origin")
        try:
            headers = await self.auth.headers()
        except AuthError as exc:
            self._auth_failed = str(exc)
            raise
        if content is not None:
            headers = {**headers, "Content-Type": FHIR_JSON}
        retry_step = ExtractStep.REFERENCE if step is ExtractStep.REFERENCE else ExtractStep.RETRY
        attempts = await self.fetcher.request(
            method,
            url,
            step=step,
            headers=headers,
            content=content,
            retries=retries,
            retry_step=retry_step,
        )
        self._record(attempts)
        final = attempts[-1]
        self._bound_finding(final, url)
        if final.status == 401 and await self.auth.after_unauthorized():
            headers = await self.auth.headers()
            if content is not None:
                headers = {**headers, "Content-Type": FHIR_JSON}
            retry = await self.fetcher.request(
                method, url, step=retry_step, headers=headers, content=content
            )
            self._record(retry)
            final = retry[-1]
        return final

    def _bound_finding(self, final: Exchange, url: str) -> None:
        """Name a bound or fault the final attempt hit, once per kind (first URL kept)."""
        code = final.error_class
        if code in BOUND_FINDINGS and not any(f.code == code for f in self.result.findings):
            self.result.add_finding(code, final.error_detail or code, url)

    # -- pages ------------------------------------------------------------------------------

    def _take_bundle(
        self,
        bundle: dict[str, Any],
        url: str,
        first: bool,
        keys: set[tuple[str, str]] | None = None,
    ) -> int:
        entries = [e for e in bundle.get("entry") or [] if isinstance(e, dict)]
        r = self.result
        if first:
            if "total" not in bundle:
                r.add_finding("no_total", "Bundle has no total", url)
            for link in bundle.get("link") or []:
                if isinstance(link, dict) and link.get("relation") == "self":
                    href = str(link.get("url", ""))
                    if "/Patient/" in href and f"/Patient/{self.patient_id}" not in href:
                        r.add_finding(
                            "self_link_other_patient",
                            f"self link names another patient: {href}",
                            url,
                        )
        missing_full_url = False
        for entry in entries:
            resource = entry.get("resource")
            if not isinstance(resource, dict):
                continue
            rtype = str(resource.get("resourceType") or "")
            if not rtype:
                continue
            if rtype == "OperationOutcome" and (entry.get("search") or {}).get("mode") == "outcome":
                r.add_finding(
                    "bundle_outcome",
                    f"OperationOutcome in Bundle: {operation_outcome_text(resource)}",
                    url,
                )
                continue
            rid = resource.get("id")
            full_url = entry.get("fullUrl")
            if not full_url:
                missing_full_url = True
            if isinstance(rid, str) and rid:
                r.resource_ids[rtype].add(rid)
                if keys is not None:
                    keys.add((rtype, rid))
            else:
                r.add_finding("resource_without_id", f"a {rtype} has no id", url)
            self.refs.add_resource(resource, full_url if isinstance(full_url, str) else None)
            self._validate(resource, rtype, rid)
        if missing_full_url:
            r.add_finding("no_full_url", "Bundle entries without fullUrl", url)
        return len(entries)

    def _validate(self, resource: dict[str, Any], rtype: str, rid: Any) -> None:
        """Count an invalid R4 resource; name the problems of the first of each type only."""
        if not self.limits.validate:
            return
        # Imported at the first resource, not before the first request (the warm-up has loaded
        # the validator's modules during the wait by then; `probe sync`'s start is shorter).
        from probe.checks import r4_validation as r4

        r = self.result
        if r4.can_validate(rtype) and not r4.is_valid_r4(resource):
            r.validation_failures[rtype] += 1
            if rtype not in r.validation_samples:
                issue = r4.validate_r4(resource)[0]
                sample = f"{rtype}/{rid}: {issue.path}: {issue.message}"
                r.validation_samples[rtype] = sample[:300]

    async def _follow(
        self,
        first_url: str,
        first_step: ExtractStep,
        *,
        method: str = "GET",
        content: bytes | None = None,
    ) -> _Paging:
        """Fetch a searchset and follow its next links to the end, or to a named problem."""
        outcome = _Paging()
        url: str | None = first_url
        seen_urls: set[str] = {first_url}
        empty_run = 0
        followed_empty = False
        walk_keys: set[tuple[str, str]] = set()
        repeat_run = 0
        step = first_step
        while url is not None:
            if self.result.pages >= self.limits.max_pages:
                self.result.add_finding(
                    "page_cap", f"stopped after {self.limits.max_pages} pages", url
                )
                outcome.broken = outcome.broken or "page_cap"
                break
            if self.result.bytes >= self.limits.max_bytes:
                self.result.add_finding("byte_cap", f"stopped after {self.result.bytes} bytes", url)
                outcome.broken = outcome.broken or "byte_cap"
                break
            final = await self._fhir(
                url,
                step,
                method=method if step is first_step else "GET",
                content=content if step is first_step else None,
            )
            self.result.bytes += final.size_bytes
            parsed = parse_json(final, max_depth=0)
            first = outcome.pages == 0
            if first:
                outcome.first_status = final.status
                outcome.first_error = final.error_class
            if final.ok and parsed.problem in BODY_FINDINGS:
                self.result.add_finding(parsed.problem, parsed.detail or parsed.problem, url)
            if not final.ok or parsed.data is None or parsed.data.get("resourceType") != "Bundle":
                why = _why_not_bundle(final, parsed.data, parsed.detail)
                oo = operation_outcome_text(parsed.data)
                detail = f"{why}{f' ({oo})' if oo else ''}"
                if first:
                    outcome.ok = False
                    outcome.first_problem = detail
                else:
                    self.result.add_finding("page_failed", f"a next page failed: {detail}", url)
                    outcome.broken = "page_failed"
                break
            ctype = (final.content_type or "").split(";")[0].strip()
            if ctype == "application/json":
                self.result.add_finding(
                    "content_type_json", "served as application/json, not application/fhir+json"
                )
            outcome.pages += 1
            self.result.pages += 1
            if first and isinstance(parsed.data.get("total"), int):
                outcome.total = parsed.data["total"]
            page_keys: set[tuple[str, str]] = set()
            count = self._take_bundle(parsed.data, url, first, page_keys)
            # Repeats are judged within this walk: a fallback search may well re-deliver what
            # `$everything` already brought, and that is not a paging fault.
            fresh = page_keys - walk_keys
            walk_keys |= page_keys
            outcome.entries += count
            next_url = _next_link(parsed.data)
            if next_url is None:
                break
            if count == 0:
                # Cursor-paging servers may serve empty pages before the data: keep following
                # while each next link is new (loops, the page cap and this run bound it).
                empty_run += 1
                if empty_run == 1 and not followed_empty:
                    followed_empty = True
                    self.result.add_finding(
                        "empty_page", "a page with no entries but a next link (followed)", url
                    )
                if empty_run >= self.limits.empty_pages_tolerated:
                    self.result.add_finding(
                        "empty_pages", f"{empty_run} empty pages in a row with next links", url
                    )
                    outcome.broken = "empty_pages"
                    break
            else:
                empty_run = 0
            if count > 0 and page_keys and not fresh:
                repeat_run += 1
                if repeat_run >= 2:
                    self.result.add_finding(
                        "paging_repeats", "pages repeat resources already received", url
                    )
                    outcome.broken = "paging_repeats"
                    break
            else:
                repeat_run = 0
            absolute, invalid = self._resolve_link(url, next_url)
            if invalid is not None:
                self.result.add_finding(
                    "next_link_invalid", f"next link not followed: {invalid}", absolute
                )
                outcome.broken = "next_link_invalid"
                break
            ssrf = await self.fetcher.guard.refusal(self.base, absolute)
            if ssrf is not None:
                self.result.add_finding("ssrf_refused", f"next link not followed: {ssrf}", absolute)
                outcome.broken = "ssrf_refused"
                break
            if origin_of(absolute) != origin_of(self.base):
                self.result.add_finding(
                    "next_link_cross_origin",
                    f"next link points at another origin ({origin_of(absolute)}); not followed",
                    absolute,
                )
                outcome.broken = "next_link_cross_origin"
                break
            if absolute in seen_urls:
                self.result.add_finding(
                    "paging_loop", "next link returns to a page already fetched", absolute
                )
                outcome.broken = "paging_loop"
                break
            seen_urls.add(absolute)
            url = absolute
            step = ExtractStep.PAGINATION
        if (
            outcome.ok
            and outcome.broken is None
            and outcome.total is not None
            and outcome.entries < outcome.total
        ):
            self.result.add_finding(
                "paging_incomplete",
                f"Bundle.total is {outcome.total} but paging delivered {outcome.entries} "
                "entries (skipped pages?)",
                first_url,
            )
            outcome.broken = "paging_incomplete"
        return outcome

    def _resolve_link(self, current: str, href: str) -> tuple[str, str | None]:
        """A next link made absolute (relative links are relative to the base, FHIR http.html),
        and why it cannot be followed (None when it can); an unusable one is made printable."""
        problem = url_problem(href) if "://" in href else None
        if problem is None:
            try:
                absolute = (
                    urljoin(current, href)
                    if "://" in href or href.startswith(("/", "?"))
                    else join(self.base, href)
                )
            except ValueError as exc:
                return printable_url(href, 300), f"an unparsable URL ({exc})"
            problem = url_problem(absolute)
            if problem is None:
                return absolute, None
            href = absolute
        return printable_url(href, 300), problem

    # -- the sync ---------------------------------------------------------------------------

    async def run(self) -> SyncResult:
        """Run the whole sync within its deadline and return its figures."""
        r = self.result
        try:
            # The deadline bounds the sync's own time: each request's wait for a politeness slot
            # is credited back as it is recorded (probe's congestion is not the server's delay).
            with anyio.CancelScope(
                deadline=anyio.current_time() + self.limits.deadline_s
            ) as self._scope:
                await self._sync()
            if self._scope.cancelled_caught:
                r.add_finding(
                    "deadline", f"sync exceeded its {self.limits.deadline_s:g} s deadline"
                )
                r.outcome = "timeout"
        except AuthError as exc:
            r.add_finding("auth_failed", str(exc))
            r.outcome = "auth_failed"
        r.completed_at = datetime.now(UTC)
        self.auth.record = self.authorizer_record
        return r

    async def _sync(self) -> None:
        r = self.result
        await self._everything()
        if r.everything.fallback_used:
            await self._per_resource()
        await self._resolve_references()
        r.references.found = self.refs.total
        got_data = any(r.resource_ids.values())
        capped = any(f.code in {"page_cap", "byte_cap"} for f in r.findings)
        if self._auth_failed or (not got_data and any(ex.status == 401 for ex in r.exchanges)):
            r.outcome = "auth_failed"
        elif not got_data:
            r.outcome = "failed"
        elif self._incomplete or capped:
            r.outcome = "partial"
        else:
            r.outcome = "completed"

    async def _everything(self) -> None:
        r = self.result
        count = self.limits.page_size
        url = (
            join(self.base, f"Patient/{self.patient_id}/$everything")
            + "?"
            + urlencode({"_count": count})
        )
        paging = await self._follow(url, ExtractStep.EVERYTHING)
        r.everything.method = "GET"
        if not paging.ok and paging.first_status == 405 and await self._everything_declared():
            body = (
                '{"resourceType":"Parameters","parameter":[{"name":"_count","valueInteger":'
                f"{count}}}]}}"
            ).encode()
            post_url = join(self.base, f"Patient/{self.patient_id}/$everything")
            paging = await self._follow(
                post_url, ExtractStep.EVERYTHING, method="POST", content=body
            )
            r.everything.method = "POST"
        r.everything.pages = paging.pages
        if not paging.ok and _says_nothing_about_everything(paging):
            # A rejected token or an unreachable host: `$everything` was never really tried, so
            # its support stays unknown (not "unsupported"), and searches would fail the same way.
            r.everything.reason = paging.first_problem
            if paging.first_status == 401:
                r.add_finding(
                    "token_rejected", f"the access token was refused: {paging.first_problem}", url
                )
            else:
                r.add_finding(
                    "unreachable", f"the server was not reached: {paging.first_problem}", url
                )
            return
        if not paging.ok:
            r.everything.supported = False
            r.everything.paged = False
            r.everything.reason = paging.first_problem
            r.everything.fallback_used = True
            r.add_finding(
                "everything_unsupported", f"$everything failed: {paging.first_problem}", url
            )
            return
        r.everything.supported = True
        patients = len(r.resource_ids.get("Patient", ()))
        if patients > 1:
            r.add_finding(
                "multiple_patients", f"$everything returned {patients} Patient resources", url
            )
        if paging.broken in ("page_cap", "byte_cap"):
            r.everything.paged = True
            r.everything.reason = paging.broken
            return
        if paging.broken:
            r.everything.paged = False
            r.everything.reason = paging.broken
            r.everything.fallback_used = True
            return
        if paging.pages == 1 and paging.entries > count:
            r.add_finding(
                "count_ignored",
                f"one page of {paging.entries} entries although _count={count} was asked",
                url,
            )
            r.everything.paged = False
            r.everything.reason = "count_ignored"
            return
        if not any(r.resource_ids.values()):
            r.everything.paged = False
            r.everything.reason = "empty"
            r.everything.fallback_used = True
            return
        r.everything.paged = True

    def _search_url(self, plan: SearchPlan, category: str | None = None) -> str:
        query = {plan.param: self.patient_id}
        if category is not None:
            query["category"] = category
        if plan.resource_type != "Patient":
            query["_count"] = str(self.limits.page_size)
        return join(self.base, plan.resource_type) + "?" + urlencode(query)

    async def _per_resource(self) -> None:
        # Imported here, in the fallback only (it brings the CapabilityStatement's checks).
        from probe.sync.searches import plan_searches

        for plan in plan_searches(await self._capability()):
            if self.result.pages >= self.limits.max_pages:
                break
            rtype = plan.resource_type
            paging: _Paging | None = None
            if not (plan.category_first and plan.categories):
                paging = await self._follow(self._search_url(plan), ExtractStep.INDIVIDUAL)
                self.result.searched_types[rtype] = paging.first_status
                self.result.search_strategies[rtype] = f"{plan.param}"
            refused = paging is not None and not paging.ok and _refused(paging.first_status)
            if plan.categories and (paging is None or refused):
                if paging is not None:
                    self.result.add_finding(
                        "category_required",
                        f"{rtype}?{plan.param}= was refused ({paging.first_status}: "
                        f"{paging.first_problem}); searched by category instead",
                    )
                paging = await self._by_category(plan)
            assert paging is not None
            if not paging.ok:
                self._incomplete = True
                self.result.add_finding(
                    "search_failed", f"{rtype} search failed: {paging.first_problem}"
                )
            elif paging.broken not in (None, "page_cap", "byte_cap"):
                self._incomplete = True
            if rtype == "Patient" and paging.ok and not self.result.resource_ids.get("Patient"):
                self.result.add_finding("patient_not_found", "Patient search found no Patient")

    async def _by_category(self, plan: SearchPlan) -> _Paging:
        """One search per standard category of the type, their results unioned; ok when any
        category search answered."""
        rtype = plan.resource_type
        merged = _Paging(ok=False)
        answered: list[int | None] = []
        for category in plan.categories:
            if self.result.pages >= self.limits.max_pages:
                break
            paging = await self._follow(self._search_url(plan, category), ExtractStep.INDIVIDUAL)
            answered.append(paging.first_status)
            merged.pages += paging.pages
            merged.entries += paging.entries
            if paging.ok:
                merged.ok = True
                merged.broken = merged.broken or paging.broken
            elif merged.first_problem is None:
                merged.first_problem = paging.first_problem
        ok_status = next((s for s in answered if s is not None and 200 <= s < 300), None)
        merged.first_status = ok_status if ok_status is not None else (answered or [None])[0]
        self.result.searched_types[rtype] = merged.first_status
        self.result.search_strategies[rtype] = f"{plan.param}+category"
        return merged

    async def _resolve_references(self) -> None:
        r = self.result
        refs = self.refs
        have = r.resource_ids
        stats = r.references
        stats.other_origin = len(refs.other_origin)
        internal = await self._internal_references(sorted(refs.other_origin))
        for ref, reason in internal[:5]:
            r.add_finding("ssrf_refused", f"reference not fetched: {reason}", ref)
        named = {ref for ref, _ in internal}
        for ref in [ref for ref in sorted(refs.other_origin) if ref not in named][:5]:
            r.add_finding(
                "reference_other_origin", "reference to another origin (not fetched)", ref
            )
        if refs.long_ids:
            example = sorted(refs.long_ids)[0]
            r.add_finding(
                "id_too_long",
                f"{len(refs.long_ids)} reference(s) use ids longer than the {R4_ID_LENGTH} "
                "characters R4 allows (datatypes.html#id); resolved anyway",
                example,
            )
        in_bundle = refs.contained_resolved
        in_bundle += sum(1 for u in refs.urns if u in refs.full_urls)
        to_fetch: list[str] = []
        for key in sorted(refs.relative):
            rtype, rid = key.split("/", 1)
            if rid in have.get(rtype, ()) or join(self.base, key) in refs.full_urls:
                in_bundle += 1
            else:
                to_fetch.append(join(self.base, key))
        for url in sorted(refs.same_origin):
            if url in refs.full_urls:
                in_bundle += 1
            else:
                to_fetch.append(url)
        stats.in_bundle = in_bundle
        unresolved = [u for u in refs.urns if u not in refs.full_urls]
        unresolved += sorted(refs.unresolvable)
        if refs.contained_found > refs.contained_resolved:
            r.add_finding(
                "contained_missing",
                f"{refs.contained_found - refs.contained_resolved} '#id' references without "
                "a matching contained resource",
            )
        if len(to_fetch) > self.limits.max_references:
            r.add_finding(
                "reference_cap",
                f"{len(to_fetch)} references to fetch; only {self.limits.max_references} tried",
            )
            unresolved += to_fetch[self.limits.max_references :]
            to_fetch = to_fetch[: self.limits.max_references]
        limiter = anyio.CapacityLimiter(self.limits.reference_concurrency)
        resolved = 0

        async def resolve(url: str) -> None:
            nonlocal resolved
            async with limiter:
                # One retry only: servers answer 500 for ids they do not know (HAPI-2001).
                final = await self._fhir(url, ExtractStep.REFERENCE, retries=1)
            parsed = parse_json(final, max_depth=0) if final.ok else None
            data = parsed.data if parsed is not None else None
            if data and data.get("resourceType"):
                resolved += 1
                if isinstance(data.get("id"), str):
                    r.resource_ids[str(data["resourceType"])].add(data["id"])
                self._validate(data, str(data["resourceType"]), data.get("id"))
            else:
                unresolved.append(url)

        async with anyio.create_task_group() as tg:
            for url in to_fetch:
                tg.start_soon(resolve, url)
        stats.fetched = len(to_fetch)
        stats.resolved = in_bundle + resolved
        stats.unresolved = sorted(unresolved)[:50]
        if unresolved:
            r.add_finding("dangling_references", f"{len(unresolved)} references did not resolve")

    async def _internal_references(self, urls: list[str]) -> list[tuple[str, str]]:
        """Other-origin references into internal networks (SSRF), with why; hosts capped."""
        by_host: dict[str, list[str]] = {}
        for url in urls:
            by_host.setdefault(url_host(url), []).append(url)
        found: list[tuple[str, str]] = []

        async def check(host_urls: list[str]) -> None:
            reason = await self.fetcher.guard.refusal(self.base, host_urls[0])
            if reason is not None:
                found.extend((u, reason) for u in host_urls)

        async with anyio.create_task_group() as tg:
            for host_urls in list(by_host.values())[:MAX_REFERENCE_HOSTS_CHECKED]:
                tg.start_soon(check, host_urls)
        return sorted(found)


def _says_nothing_about_everything(paging: _Paging) -> bool:
    """True when the first `$everything` request failed for a reason outside the operation."""
    if paging.first_status is None:
        return paging.first_error in UNREACHABLE_ERRORS
    return paging.first_status == 401


def _why_not_bundle(final: Exchange, data: dict[str, Any] | None, detail: str | None) -> str:
    if final.status is None:
        return f"{final.error_class}: {final.error_detail}"
    if not final.ok:
        return f"HTTP {final.status}"
    if data is None:
        return detail or "not JSON"
    return f"resourceType {data.get('resourceType')!r}, not a Bundle"


def _refused(status: int | None) -> bool:
    """Whether a search was refused as asked (a 4xx other than auth and not-found types)."""
    return status is not None and 400 <= status < 500 and status not in (401, 404, 405, 429)


def _next_link(bundle: dict[str, Any]) -> str | None:
    for link in bundle.get("link") or []:
        if isinstance(link, dict) and link.get("relation") == "next" and link.get("url"):
            return str(link["url"])
    return None
