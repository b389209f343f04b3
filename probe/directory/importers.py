"""Building `endpoints.yaml` entries from published payer directories.

Two sources feed the directory:

* ``payers.csv`` (columns payer, base_url, sandbox_url, vendor, portal_url, source): rows naming
  the same payer are merged into one entry; :func:`seed_from_csv` and :func:`render_seed`.
* The official CMS State Medicaid Agency (SMA) endpoint directory, exactly as CMS publishes it
  (UTF-8 BOM, two header rows, multi-line cells, non-breaking spaces): :func:`import_cms`.

Both share the cell cleaning: a directory cell is free text that may hold zero, one or several
URLs, each perhaps a resource URL (``.../Patient``), a ``/metadata`` link, a template with
placeholders (``{patientId}``, ``[base]``) or a query string. :func:`base_urls_in_cell` turns a
cell into FHIR base URLs and says, for everything it could not use, why. Every such value is
reported as an :class:`ImportIssue`; nothing is dropped silently. docs/directory.md describes the
rules and the CMS columns.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import yaml

from probe.directory.schema import (
    Directory,
    Endpoint,
    Environment,
    LineOfBusiness,
    LinesOfBusiness,
    Payer,
    dump_directory,
)

# --------------------------------------------------------------------------------------------
# Text and URL cleaning
# --------------------------------------------------------------------------------------------

# FHIR resource type names (R4, R4B and R5, plus STU3 names still seen in the wild). A trailing
# path segment with one of these names is a resource URL, not part of the FHIR base.
FHIR_RESOURCE_TYPES = frozenset(
    """
    Account ActivityDefinition ActorDefinition AdministrableProductDefinition AdverseEvent
    AllergyIntolerance Appointment AppointmentResponse ArtifactAssessment AuditEvent Basic Binary
    BiologicallyDerivedProduct BiologicallyDerivedProductDispense BodySite BodyStructure Bundle
    CapabilityStatement CarePlan CareTeam CatalogEntry ChargeItem ChargeItemDefinition Citation
    Claim ClaimResponse ClinicalImpression ClinicalUseDefinition CodeSystem Communication
    CommunicationRequest CompartmentDefinition Composition ConceptMap Condition
    ConditionDefinition Consent Contract Coverage CoverageEligibilityRequest
    CoverageEligibilityResponse DataElement DetectedIssue Device DeviceAssociation
    DeviceComponent DeviceDefinition DeviceDispense DeviceMetric DeviceRequest DeviceUsage
    DeviceUseStatement DiagnosticReport DocumentManifest DocumentReference EffectEvidenceSynthesis
    EligibilityRequest EligibilityResponse Encounter EncounterHistory Endpoint EnrollmentRequest
    EnrollmentResponse EpisodeOfCare EventDefinition Evidence EvidenceReport EvidenceVariable
    ExampleScenario ExpansionProfile ExplanationOfBenefit FamilyMemberHistory Flag FormularyItem
    GenomicStudy Goal GraphDefinition Group GuidanceResponse HealthcareService ImagingManifest
    ImagingSelection ImagingStudy Immunization ImmunizationEvaluation ImmunizationRecommendation
    ImplementationGuide Ingredient InsurancePlan InventoryItem InventoryReport Invoice Library
    Linkage List Location ManufacturedItemDefinition Measure MeasureReport Media Medication
    MedicationAdministration MedicationDispense MedicationKnowledge MedicationRequest
    MedicationStatement MedicinalProduct MedicinalProductAuthorization
    MedicinalProductContraindication MedicinalProductDefinition MedicinalProductIndication
    MedicinalProductIngredient MedicinalProductInteraction MedicinalProductManufactured
    MedicinalProductPackaged MedicinalProductPharmaceutical MedicinalProductUndesirableEffect
    MessageDefinition MessageHeader MolecularSequence NamingSystem NutritionIntake NutritionOrder
    NutritionProduct Observation ObservationDefinition OperationDefinition OperationOutcome
    Organization OrganizationAffiliation PackagedProductDefinition Parameters Patient
    PaymentNotice PaymentReconciliation Permission Person PlanDefinition Practitioner
    PractitionerRole Procedure ProcedureRequest ProcessRequest ProcessResponse Provenance
    Questionnaire QuestionnaireResponse ReferralRequest RegulatedAuthorization RelatedPerson
    RequestGroup RequestOrchestration Requirements ResearchDefinition ResearchElementDefinition
    ResearchStudy ResearchSubject RiskAssessment RiskEvidenceSynthesis Schedule SearchParameter
    Sequence ServiceDefinition ServiceRequest Slot Specimen SpecimenDefinition
    StructureDefinition StructureMap Subscription SubscriptionStatus SubscriptionTopic Substance
    SubstanceDefinition SubstanceNucleicAcid SubstancePolymer SubstanceProtein
    SubstanceReferenceInformation SubstanceSourceMaterial SubstanceSpecification SupplyDelivery
    SupplyRequest Task TerminologyCapabilities TestPlan TestReport TestScript Transport ValueSet
    VerificationResult VisionPrescription
    """.split()  # noqa: SIM905 (a word list reads better than 180 quoted strings)
)
_RESOURCE_TYPES_LOWER = frozenset(name.lower() for name in FHIR_RESOURCE_TYPES)

_SPACES = str.maketrans(
    {
        "\u00a0": " ",  # no-break space
        "\u2007": " ",  # figure space
        "\u202f": " ",  # narrow no-break space
        "\u200b": None,  # zero-width space
        "\u200c": None,
        "\u200d": None,
        "\u2060": None,  # word joiner
        "\ufeff": None,  # BOM / zero-width no-break space
    }
)
_URL = re.compile(r"https?://[^\s<>\"'`|\\]+", re.IGNORECASE)
_PLACEHOLDER = re.compile(r"[\[\]{}<>]")
_INSTANCE_PART = re.compile(r"^(\$[A-Za-z][\w\-]*|_history|_search|[A-Za-z0-9\-\.]{1,64})$")
_DESCRIPTION_FILES = frozenset(
    {"openapi.json", "openapi.yaml", "openapi.yml", "swagger.json", "swagger.yaml", "swagger.yml"}
)
_PAGE_SUFFIXES = (".html", ".htm", ".aspx", ".php", ".jsp", ".pdf")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_EMAIL = re.compile(r"[\w.+\-]+@[\w\-]+\.[\w.\-]+")


def clean_text(value: str) -> str:
    """`value` with no-break and zero-width spaces normalised and surrounding space removed."""
    return value.translate(_SPACES).strip()


def one_line(value: str, limit: int | None = None) -> str:
    """`value` on one line (runs of whitespace, newlines included, become one space)."""
    text = " ".join(value.translate(_SPACES).split())
    if limit is not None and len(text) > limit:
        return text[: limit - 1] + "…"
    return text


class UnusableValue(ValueError):
    """A directory value that cannot become a FHIR base URL; the message says why."""


@dataclass(frozen=True, slots=True)
class CellUrl:
    """One URL found in a cell, with the label written before it (``"Token URL:"``)."""

    label: str
    raw: str


def _trim_url(raw: str) -> str:
    """Drop sentence punctuation and unbalanced closing brackets glued to the end of a URL."""
    pairs = {")": "(", "]": "[", "}": "{"}
    while raw:
        last = raw[-1]
        unbalanced = last in pairs and raw.count(last) > raw.count(pairs[last])
        if last in ".,;:!?*" or unbalanced:
            raw = raw[:-1]
        else:
            break
    return raw


def urls_in_cell(cell: str) -> tuple[list[CellUrl], str]:
    """The URLs written in a cell (in order, each with its label) and the text around them."""
    text = cell.translate(_SPACES)
    found: list[CellUrl] = []
    rest: list[str] = []
    pos = 0
    for match in _URL.finditer(text):
        between = text[pos : match.start()]
        rest.append(between)
        label_lines = [line.strip() for line in between.splitlines() if line.strip()]
        label = label_lines[-1].rstrip(":-\u2013 ").strip() if label_lines else ""
        found.append(CellUrl(label=label, raw=_trim_url(match.group())))
        pos = match.start() + len(found[-1].raw)
    rest.append(text[pos:])
    return found, one_line(" ".join(rest))


def describe_text(text: str) -> str:
    """Why a cell's text (holding no URL) gives no base URL: 'not applicable', 'TBD', ..."""
    flat = one_line(text)
    low = flat.lower()
    if not flat:
        return "empty"
    if re.match(r"^(n/?a|none|not applicable)\b", low):
        return "not applicable (N/A): no URL"
    if low in {"yes", "no", "y", "n", "true", "false", "x"}:
        return f"answers {flat!r} instead of giving a URL"
    if re.search(r"\btbd\b|to be determined", low):
        return "to be determined (TBD): no URL yet"
    if "not yet" in low or "targeted for" in low or "coming soon" in low:
        return "not available yet: no URL"
    if re.search(r"\bsame\b", low):
        return "says it is the same as another column: no separate URL"
    if _EMAIL.search(flat):
        return "contact details (an e-mail address), not a URL"
    return "free text without an http(s) URL"


def _is_resource_type(segment: str) -> bool:
    """A resource type name, exactly, or in odd casing/plural (``Explanationofbenefits``).

    All-lowercase segments (``/base/patient``) are taken as part of the base, not as a type.
    """
    if segment in FHIR_RESOURCE_TYPES:
        return True
    if segment == segment.lower():
        return False
    low = segment.lower()
    return low in _RESOURCE_TYPES_LOWER or (low.endswith("s") and low[:-1] in _RESOURCE_TYPES_LOWER)


def _strip_resource_path(segments: list[str]) -> tuple[list[str], str | None]:
    """Cut ``<Type>[/<id>[/$op|_history...]]`` off the end of a path; say what was cut."""
    lower = [s.lower() for s in segments]
    if ".well-known" in lower:
        cut = lower.index(".well-known")
        return segments[:cut], "/".join(segments[cut:])
    if lower and lower[-1] == "metadata":
        return segments[:-1], "metadata"
    if lower and lower[-1] in _DESCRIPTION_FILES:
        return segments[:-1], segments[-1]
    for i in range(len(segments) - 1, max(-1, len(segments) - 5), -1):
        if _is_resource_type(segments[i]) and all(
            _INSTANCE_PART.match(s) for s in segments[i + 1 :]
        ):
            return segments[:i], "/".join(segments[i:])
    if segments and segments[-1].startswith("$"):
        return segments[:-1], segments[-1]
    return segments, None


def normalize_base_url(raw: str) -> tuple[str, list[str]]:
    """The FHIR base URL a directory URL points at, and what was removed to get it.

    Removes surrounding and no-break spaces, a query string or fragment, placeholders
    (``{patientId}``, ``[base]``, ``<id>``) and everything after them, a trailing ``metadata``,
    ``.well-known/...``, OpenAPI description file, operation, or resource path (``Patient``,
    ``ExplanationOfBenefit/123``), and trailing slashes; lower-cases scheme and host and drops a
    default port. Raises :class:`UnusableValue` when no base URL can be had (no http(s) scheme,
    no or placeholder host, user:password in the URL, a web page).
    """
    text = one_line(raw)
    if not text:
        raise UnusableValue("empty")
    if " " in text:
        raise UnusableValue("contains spaces: not a single URL")
    authority = re.match(r"(?i)https?://([^/?#]*)", text)
    if authority is None:
        raise UnusableValue("not an http(s) URL")
    host_part = re.sub(r"^\[[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*\]", "ipv6", authority.group(1))
    if _PLACEHOLDER.search(unquote(host_part)):
        raise UnusableValue("the host is a placeholder, not a real server")
    try:
        parts = urlsplit(text)
    except ValueError:
        raise UnusableValue("malformed URL") from None
    scheme = parts.scheme.lower()
    if "@" in parts.netloc:
        raise UnusableValue("contains user:password@ (never put credentials in a directory)")
    try:
        host = parts.hostname
        port = parts.port
    except ValueError:
        raise UnusableValue("malformed host or port") from None
    if not host or ("." not in host and ":" not in host and host != "localhost"):
        raise UnusableValue("no valid host name")
    removed: list[str] = []
    if parts.query:
        removed.append(f"?{parts.query}")
    if parts.fragment:
        removed.append(f"#{parts.fragment}")
    segments = [s for s in parts.path.split("/") if s]
    for i, segment in enumerate(segments):
        if _PLACEHOLDER.search(unquote(segment)):
            removed.insert(0, "/".join(segments[i:]))
            segments = segments[:i]
            break
    if segments and segments[-1].lower().endswith(_PAGE_SUFFIXES):
        raise UnusableValue(f"a web page or document ({segments[-1]}), not a FHIR base URL")
    segments, cut = _strip_resource_path(segments)
    if cut:
        removed.insert(0, cut)
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        netloc += f":{port}"
    path = "/" + "/".join(segments) if segments else ""
    return f"{scheme}://{netloc}{path}", removed


_OAUTH_LABEL = re.compile(r"oauth|\bauth|authori[sz]|token", re.IGNORECASE)
_OTHER_API_LABEL = re.compile(r"formulary|provider|directory", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class BaseUrl:
    """A FHIR base URL taken from a cell: the URL, the text it came from, what was removed."""

    url: str
    raw: str
    removed: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Rejected:
    """A part of a cell that gave no base URL: the value as written and why."""

    value: str
    reason: str


def base_urls_in_cell(cell: str) -> tuple[list[BaseUrl], list[Rejected]]:
    """Every FHIR base URL a cell gives (distinct, in order) and every part it could not use.

    A cell may hold several URLs (one a line, or separated by spaces). Labelled URLs for OAuth
    endpoints or for other APIs (``Formulary base URL: ...``) are rejected; a bare host listed
    beside a longer URL on the same host (``https://sb.example.com/pa/api/v1`` and
    ``https://sb.example.com``) is dropped as redundant. Text with no URL is rejected with
    :func:`describe_text`'s reason; an empty cell gives nothing and no rejection.
    """
    if not clean_text(cell):
        return [], []
    found, _ = urls_in_cell(cell)
    if not found:
        return [], [Rejected(one_line(cell), describe_text(cell))]
    bases: list[BaseUrl] = []
    rejected: list[Rejected] = []
    for item in found:
        shown = f"{item.label}: {item.raw}" if item.label else item.raw
        if _OAUTH_LABEL.search(item.label):
            rejected.append(Rejected(shown, "an OAuth endpoint, not a FHIR base URL"))
            continue
        if _OTHER_API_LABEL.search(item.label):
            rejected.append(Rejected(shown, "labelled as another API (Formulary/Provider)"))
            continue
        try:
            url, removed = normalize_base_url(item.raw)
        except UnusableValue as exc:
            rejected.append(Rejected(shown, str(exc)))
            continue
        if all(b.url != url for b in bases):
            bases.append(BaseUrl(url, item.raw, tuple(removed)))
    kept: list[BaseUrl] = []
    for base in bases:
        longer = [o for o in bases if o is not base and _is_path_prefix(base.url, o.url)]
        if longer:
            reason = f"only the host of {longer[0].url}, listed beside it"
            rejected.append(Rejected(base.raw, reason))
        else:
            kept.append(base)
    return kept, rejected


def _base_or_none(url: str | None) -> str | None:
    if url is None:
        return None
    try:
        return normalize_base_url(url)[0]
    except UnusableValue:
        return None


def _is_path_prefix(short: str, long: str) -> bool:
    """`long` is `short` plus more path segments (same scheme, host and port)."""
    return long.startswith(short + "/")


def portal_in_cell(cell: str) -> tuple[str | None, list[Rejected]]:
    """The developer-portal URL of a cell: the one about registration if any, else the first."""
    if not clean_text(cell):
        return None, []
    found, _ = urls_in_cell(cell)
    urls: list[tuple[str, str]] = []
    for item in found:
        try:
            parts = urlsplit(item.raw)
            usable = parts.scheme.lower() in ("http", "https") and bool(parts.hostname)
            _ = parts.port
        except ValueError:
            usable = False
        if usable and not _PLACEHOLDER.search(parts.netloc):
            urls.append((item.label, item.raw))
    if not urls:
        return None, [Rejected(one_line(cell), describe_text(cell))]
    for label, url in urls:
        if "regist" in label.lower() or "regist" in url.lower():
            return url, []
    return urls[0][1], []


def clean_vendor(raw: str) -> str | None:
    """A vendor name usable for vendor scoring: annotations and descriptions removed.

    ``"Patient360 (bcbsdirect/anthem P360Member platform) [inferred from host]"`` gives
    ``"Patient360"``; text after ``;`` (a second, secondary vendor note) is dropped.
    """
    first = clean_text(raw).split(";", 1)[0]
    name = re.sub(r"\[[^\]]*\]|\([^)]*\)", " ", first)
    name = " ".join(name.split())
    return name or None


# --------------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ImportIssue:
    """A value an import could not use.

    `row` is the record number in the file (header rows count, as a spreadsheet shows it);
    `line` the physical line where that record starts (multi-line cells make them differ).
    `row_imported` is False when nothing at all could be used from the row.
    """

    row: int
    line: int
    payer: str
    column: str
    value: str
    reason: str
    row_imported: bool


class ImportFormatError(Exception):
    """A file that cannot be read or is not the expected directory format."""


@dataclass(frozen=True, slots=True)
class _Record:
    row: int
    line: int
    cells: list[str]

    def get(self, index: int | None) -> str:
        if index is None or index >= len(self.cells):
            return ""
        return self.cells[index]


def _read_records(path: Path) -> list[_Record]:
    """Every CSV record of a file, numbered by record and by starting line."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImportFormatError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if b"\x00" in data:
        raise ImportFormatError(f"{path}: binary data, not a CSV file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = data.decode("cp1252")
        except UnicodeDecodeError:
            raise ImportFormatError(f"{path}: not UTF-8 or Windows-1252 text") from None
    if not clean_text(text):
        raise ImportFormatError(f"{path}: the file is empty")
    records: list[_Record] = []
    reader = csv.reader(io.StringIO(text, newline=""))
    previous = 0
    try:
        for number, cells in enumerate(reader, start=1):
            records.append(_Record(number, previous + 1, cells))
            previous = reader.line_num
    except csv.Error as exc:
        raise ImportFormatError(f"{path}:{previous + 1}: not valid CSV: {exc}") from None
    return records


def _norm_header(value: str) -> str:
    return one_line(value).lower()


# --------------------------------------------------------------------------------------------
# Endpoint assembly (shared)
# --------------------------------------------------------------------------------------------


def build_endpoints(
    production: Sequence[tuple[str, str | None]], sandbox: Sequence[tuple[str, str | None]]
) -> list[Endpoint]:
    """Endpoints for (url, portal) pairs: one production + one sandbox URL form one endpoint
    (``base_url`` + ``sandbox_url``); otherwise each URL is an endpoint with its environment."""
    if len(production) == 1 and len(sandbox) == 1:
        (base, portal), (sandbox_url, sandbox_portal) = production[0], sandbox[0]
        return [
            Endpoint(base_url=base, sandbox_url=sandbox_url, portal_url=portal or sandbox_portal)
        ]
    out = [Endpoint(base_url=url, portal_url=portal) for url, portal in production]
    out += [
        Endpoint(environment=Environment.SANDBOX, base_url=url, portal_url=portal)
        for url, portal in sandbox
    ]
    return out


def _add(urls: list[tuple[str, str | None]], url: str, portal: str | None) -> None:
    if all(u != url for u, _ in urls):
        urls.append((url, portal))


# --------------------------------------------------------------------------------------------
# The CMS State Medicaid Agency endpoint directory
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CmsColumns:
    """Indexes of the CMS directory's columns this importer reads (None: absent)."""

    state: int
    claims: int
    pdex: int | None
    chip: int | None
    status: int | None
    as_of: int | None
    capability: int | None
    fhir_version: int | None
    sandbox: int | None
    registration: int | None
    names: tuple[str, ...]

    def name(self, index: int) -> str:
        """How reports name a column: its spreadsheet letter and role, e.g. ``"F claims"``."""
        roles = {
            self.state: "state",
            self.claims: "claims",
            self.pdex: "PDex",
            self.chip: "CHIP",
            self.sandbox: "sandbox",
            self.registration: "registration",
        }
        return f"{column_letter(index)} {roles.get(index) or one_line(self.names[index])}"


def column_letter(index: int) -> str:
    """The spreadsheet letter of a 0-based column index: 0 → A, 25 → Z, 26 → AA."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters


def _find_cms_columns(records: list[_Record], path: Path) -> tuple[CmsColumns, int]:
    """Locate the header row (within the first 5 records) and the columns; the header's index."""
    for index, record in enumerate(records[:5]):
        headers = [_norm_header(c) for c in record.cells]
        if "state" not in headers:
            continue
        claims = next((i for i, h in enumerate(headers) if "base url for claims" in h), None)
        if claims is None:
            continue
        group = records[index - 1].cells if index > 0 else []
        section_end = len(headers)
        for i, h in enumerate(headers):
            in_group = i < len(group) and "provider directory" in _norm_header(group[i])
            if i > claims and (in_group or h.startswith("provider directory")):
                section_end = i
                break

        def first(test: Any, headers: list[str] = headers, end: int = section_end) -> int | None:
            return next((i for i, h in enumerate(headers[:end]) if test(h)), None)

        columns = CmsColumns(
            state=headers.index("state"),
            claims=claims,
            pdex=first(lambda h: "member health data" in h or "pdex" in h),
            chip=first(lambda h: "chip" in h),
            status=first(lambda h: h.startswith("status")),
            as_of=first(lambda h: h.startswith("information as of")),
            capability=first(lambda h: "capability statement" in h),
            fhir_version=first(lambda h: h.startswith("fhir version")),
            sandbox=first(lambda h: h.startswith("sandbox")),
            registration=first(lambda h: "registration" in h),
            names=tuple(record.cells),
        )
        return columns, index
    raise ImportFormatError(
        f"{path}: not the CMS State Medicaid Agency endpoint directory: no header row with "
        "'State' and 'Production Base URL for Claims Data' in the first 5 rows"
    )


@dataclass
class CmsImport:
    """The result of :func:`import_cms`: the directory, every unusable value, and counts."""

    directory: Directory
    issues: list[ImportIssue]
    rows_read: int
    rows_imported: int
    first_row: int
    last_row: int
    completed_from_capability: list[str] = field(default_factory=list)

    @property
    def rows_not_imported(self) -> int:
        """State rows that gave no endpoint at all."""
        return self.rows_read - self.rows_imported

    @property
    def production_urls(self) -> int:
        """Production base URLs in the directory."""
        return sum(
            1
            for p in self.directory.payers
            for e in p.endpoints
            if e.environment is Environment.PRODUCTION
        )

    @property
    def sandbox_urls(self) -> int:
        """Sandbox base URLs in the directory (endpoints and declared sandbox_url)."""
        return _sandbox_count(self.directory)

    def summary(self, source: str) -> list[str]:
        """Summary lines (counts) for people."""
        return [
            f"CMS SMA endpoint directory {source}: {self.rows_read} state rows "
            f"(file rows {self.first_row}-{self.last_row})",
            f"imported: {len(self.directory.payers)} payers, {self.production_urls} production "
            f"and {self.sandbox_urls} sandbox base URLs "
            f"({len(self.completed_from_capability)} completed from the Capability Statement "
            "link)",
            f"not imported: {self.rows_not_imported} rows without a usable base URL; "
            f"{sum(1 for i in self.issues if i.row_imported)} values ignored in imported rows "
            "(report on stderr)",
        ]


def _sandbox_count(directory: Directory) -> int:
    return sum(
        (e.environment is Environment.SANDBOX) + (e.sandbox_url is not None)
        for p in directory.payers
        for e in p.endpoints
    )


def cms_payer_name(state: str) -> str:
    """The directory name of a state's Medicaid agency.

    ``"Alabama"`` gives ``"Alabama Medicaid (FFS)"``, ``"Guam (GU)"`` ``"Guam Medicaid (FFS)"``.
    """
    state = re.sub(r"\s*\([A-Z]{2}\)\s*$", "", one_line(state))
    return f"{state} Medicaid (FFS)"


def _refine(url: str, capability: list[str]) -> str:
    """`url` made more specific by the one Capability Statement base that extends it, if any.

    `capability` holds the bases of the row's ``.../metadata`` links: the FHIR base is where
    ``metadata`` lives, so a bare host in the claims column (``https://api.x.com``) with a
    Capability Statement at ``https://api.x.com/r4/metadata`` means the base ``.../r4``.
    """
    longer = [c for c in capability if _is_path_prefix(url, c)]
    return longer[0] if len(longer) == 1 else url


def import_cms(path: Path) -> CmsImport:
    """Read the CMS State Medicaid Agency endpoint directory into directory entries.

    Raises :class:`ImportFormatError` for a file that cannot be read or is not that directory.
    """
    records = _read_records(path)
    columns, header_index = _find_cms_columns(records, path)
    data = [r for r in records[header_index + 1 :] if any(clean_text(c) for c in r.cells)]
    issues: list[ImportIssue] = []
    payers: dict[str, dict[str, Any]] = {}
    completed: list[str] = []
    rows_imported = 0
    source_name = path.name

    for record in data:
        state = one_line(record.get(columns.state))
        row_issues: list[tuple[int | None, str, str]] = []  # column, value, reason
        if not state:
            issues.append(
                ImportIssue(
                    record.row,
                    record.line,
                    "",
                    columns.name(columns.state),
                    "",
                    "no state name",
                    False,
                )
            )
            continue
        portal, portal_rejected = portal_in_cell(record.get(columns.registration))
        row_issues += [(columns.registration, r.value, r.reason) for r in portal_rejected]
        capability = [
            b.url
            for b in base_urls_in_cell(record.get(columns.capability))[0]
            if b.removed[:1] == ("metadata",)
        ]
        production: list[tuple[str, str | None]] = []
        for column in (columns.claims, columns.pdex, columns.chip):
            if column is None:
                continue
            bases, rejected = base_urls_in_cell(record.get(column))
            row_issues += [(column, r.value, r.reason) for r in rejected]
            for base in bases:
                url = _refine(base.url, capability)
                if url != base.url:
                    completed.append(f"{state}: {base.url} -> {url}")
                _add(production, url, portal)
        sandbox: list[tuple[str, str | None]] = []
        bases, rejected = base_urls_in_cell(record.get(columns.sandbox))
        row_issues += [(columns.sandbox, r.value, r.reason) for r in rejected]
        for base in bases:
            if any(base.url == url for url, _ in production):
                reason = "same as the production base URL: not a separate sandbox"
                row_issues.append((columns.sandbox, base.raw, reason))
            else:
                _add(sandbox, base.url, portal)

        imported = bool(production or sandbox)
        status = one_line(record.get(columns.status))
        if not imported and not any(c in (columns.claims, columns.pdex) for c, _, _ in row_issues):
            reason = "empty: no production base URL"
            row_issues.insert(
                0, (columns.claims, "", reason + (f" (status {status})" if status else ""))
            )
        row_issues.sort(key=lambda issue: issue[0] or 0)
        for column, value, reason in row_issues:
            assert column is not None
            issues.append(
                ImportIssue(
                    record.row,
                    record.line,
                    state,
                    columns.name(column),
                    value,
                    reason,
                    imported,
                )
            )
        if not imported:
            continue
        rows_imported += 1
        name = cms_payer_name(state)
        details = [f"row {record.row}"]
        if status:
            details.append(f"status {status}")
        version = one_line(record.get(columns.fhir_version))
        if version:
            details.append(f"FHIR {version}")
        as_of = one_line(record.get(columns.as_of))
        if as_of and as_of.upper() != "N/A":
            details.append(f"as of {as_of}")
        source = f"CMS State Medicaid Agency endpoint directory ({source_name}), " + ", ".join(
            details
        )
        entry = payers.setdefault(name, {"sources": [], "production": [], "sandbox": []})
        entry["sources"].append(source)
        for url, p in production:
            _add(entry["production"], url, p)
        for url, p in sandbox:
            _add(entry["sandbox"], url, p)

    directory = Directory(
        payers=[
            Payer(
                name=name,
                source=" | ".join(entry["sources"]),
                lines_of_business=LinesOfBusiness(
                    offered=[LineOfBusiness.MEDICAID], supported=[LineOfBusiness.MEDICAID]
                ),
                endpoints=build_endpoints(entry["production"], entry["sandbox"]),
            )
            for name, entry in payers.items()
        ]
    )
    return CmsImport(
        directory=directory,
        issues=issues,
        rows_read=len(data),
        rows_imported=rows_imported,
        first_row=data[0].row if data else 0,
        last_row=data[-1].row if data else 0,
        completed_from_capability=completed,
    )


def render_cms(result: CmsImport, source: str) -> str:
    """The imported directory as YAML (``dump_directory``) under a provenance comment."""
    header = [
        f"# Generated by `probe directory import-cms {source}` from the CMS State Medicaid "
        "Agency endpoint directory; schema in docs/directory.md. Review it before use.",
        *(f"# {line}" for line in result.summary(source)),
    ]
    return "".join(_comment(line) for line in header) + dump_directory(result.directory)


# --------------------------------------------------------------------------------------------
# payers.csv: seeding endpoints.yaml
# --------------------------------------------------------------------------------------------

SEED_COLUMNS = ("payer", "base_url", "sandbox_url", "vendor", "portal_url", "source")
_QUALIFIER = re.compile(r"\s*\(([^()]*)\)\s*$")
_NAME_NOISE = frozenset({"of", "the", "inc", "healthcare", "corp", "corporation", "co", "llc"})


def payer_key(name: str) -> str:
    """A matching key for payer names: case, punctuation, 'of'/'Inc.'/'Healthcare' ignored and
    'Blue Cross Blue Shield' spelled 'BCBS' (so "Blue Cross Blue Shield of Minnesota" and
    "BCBS Minnesota", "Cigna" and "Cigna Healthcare" match)."""
    text = re.sub(r"blue\s*cross\s*(and\s*)?blue\s*shield", "bcbs", name.casefold())
    return " ".join(t for t in re.findall(r"[a-z0-9]+", text) if t not in _NAME_NOISE)


@dataclass
class SeedPayer:
    """One payer of a seed: the merged entry (or None when no row gave a base URL)."""

    name: str
    rows: list[int]
    names: list[str]
    payer: Payer | None
    portal: str | None
    notes: list[str]


@dataclass
class Seed:
    """The result of :func:`seed_from_csv`."""

    payers: list[SeedPayer]
    issues: list[ImportIssue]
    rows_read: int

    @property
    def directory(self) -> Directory:
        """The payers that have endpoints, as a Directory."""
        return Directory(payers=[p.payer for p in self.payers if p.payer is not None])

    def summary(self, source: str) -> list[str]:
        """Summary lines (counts) for people."""
        directory = self.directory
        endpoints = sum(len(p.endpoints) for p in directory.payers)
        missing = [p for p in self.payers if p.payer is None]
        return [
            f"payers.csv {source}: {self.rows_read} rows naming {len(self.payers)} payers",
            f"seeded: {len(directory.payers)} payers, {endpoints} endpoints, "
            f"{_sandbox_count(directory)} sandbox base URLs",
            f"not seeded: {len(missing)} payers without a usable base URL; "
            f"{sum(1 for i in self.issues if i.row_imported)} values ignored (report on stderr)",
        ]


def _group_rows(records: list[_Record]) -> dict[str, list[_Record]]:
    """Rows per payer: same key, or a name with a trailing qualifier ("Aetna (v2 ...)") whose
    bare name matches another row's name."""
    keys = {payer_key(r.get(0)) for r in records}
    groups: dict[str, list[_Record]] = {}
    for record in records:
        name = one_line(record.get(0))
        key = payer_key(name)
        match = _QUALIFIER.search(name)
        if match:
            bare = payer_key(name[: match.start()])
            if bare in keys and bare != key:
                key = bare
        groups.setdefault(key, []).append(record)
    return groups


def seed_from_csv(path: Path) -> Seed:
    """Merge the rows of a payers.csv into one directory entry per payer.

    Raises :class:`ImportFormatError` for a file that cannot be read or lacks the columns.
    """
    records = _read_records(path)
    header = [_norm_header(c) for c in records[0].cells]
    missing = [c for c in ("payer", "base_url", "sandbox_url") if c not in header]
    if missing:
        raise ImportFormatError(
            f"{path}:1: not a payers.csv: missing column(s) {', '.join(missing)} "
            f"(expected {', '.join(SEED_COLUMNS)})"
        )
    index = {name: header.index(name) if name in header else None for name in SEED_COLUMNS}
    rows = [
        _Record(r.row, r.line, [r.get(index[c]) for c in SEED_COLUMNS])
        for r in records[1:]
        if any(clean_text(c) for c in r.cells)
    ]
    issues = [
        ImportIssue(r.row, r.line, "", "payer", "", "no payer name", False)
        for r in rows
        if not one_line(r.get(0))
    ]
    rows = [r for r in rows if one_line(r.get(0))]
    seeded: list[SeedPayer] = []
    for key, group in _group_rows(rows).items():
        seeded.append(_seed_payer(key, group, issues))
    seeded.sort(key=lambda p: (p.name.casefold(), p.name))
    issues.sort(key=lambda i: i.row)
    return Seed(payers=seeded, issues=issues, rows_read=len(rows))


def _seed_payer(group_key: str, group: list[_Record], issues: list[ImportIssue]) -> SeedPayer:
    names = [one_line(r.get(0)) for r in group]
    name = next((n for n in names if payer_key(n) == group_key), names[0])
    found: list[tuple[_Record, list[str], list[str], str | None]] = []
    pending: list[tuple[_Record, str, str, str]] = []  # record, column, value, reason
    for record in group:
        portal, rejected = portal_in_cell(record.get(4))
        pending += [(record, "portal_url", r.value, r.reason) for r in rejected]
        prod_bases, rejected = base_urls_in_cell(record.get(1))
        pending += [(record, "base_url", r.value, r.reason) for r in rejected]
        sandbox_bases, rejected = base_urls_in_cell(record.get(2))
        pending += [(record, "sandbox_url", r.value, r.reason) for r in rejected]
        portal_base = _base_or_none(portal)
        kept_sandboxes: list[str] = []
        for base in sandbox_bases:
            if base.url == portal_base:
                reason = "the developer portal (a web page), not a FHIR base URL"
                pending.append((record, "sandbox_url", base.raw, reason))
            else:
                kept_sandboxes.append(base.url)
        found.append((record, [b.url for b in prod_bases], kept_sandboxes, portal))

    sandbox_only = {u for _, prods, sbs, _ in found for u in sbs if u not in prods}
    production: list[tuple[str, str | None]] = []
    sandbox: list[tuple[str, str | None]] = []
    used_rows: set[int] = set()
    for record, prods, sbs, portal in found:
        for url in prods:
            used_rows.add(record.row)
            if url in sandbox_only:
                others = sorted({r.row for r, p, s, _ in found if url in s and url not in p})
                rows = ", ".join(map(str, others))
                reason = f"row {rows} lists it as a sandbox: used as a sandbox, not production"
                pending.append((record, "base_url", url, reason))
                _add(sandbox, url, portal)
            else:
                _add(production, url, portal)
        for url in sbs:
            used_rows.add(record.row)
            if url in prods and url not in sandbox_only:
                reason = "same as this row's production base URL: kept as production only"
                pending.append((record, "sandbox_url", url, reason))
            elif url not in prods:
                _add(sandbox, url, portal)

    vendors: list[tuple[str, str]] = []
    for record in group:
        raw = one_line(record.get(3))
        cleaned = clean_vendor(raw) if raw else None
        if cleaned and all(cleaned != v for v, _ in vendors):
            vendors.append((cleaned, raw))
    notes: list[str] = []
    if len(vendors) > 1:
        notes.append("vendors differ between rows: " + "; ".join(v for v, _ in vendors))
    sources: list[str] = []
    for record in group:
        src = one_line(record.get(5))
        if src and src not in sources:
            sources.append(src)
    sources += [f"vendor: {raw}" for cleaned, raw in vendors[:1] if raw != cleaned]

    has_urls = bool(production or sandbox)
    for record, column, value, reason in pending:
        row_used = record.row in used_rows
        issues.append(ImportIssue(record.row, record.line, name, column, value, reason, row_used))
    for record in group:
        if record.row not in used_rows and not any(
            p[0] is record and p[1] in ("base_url", "sandbox_url") for p in pending
        ):
            issues.append(
                ImportIssue(
                    record.row,
                    record.line,
                    name,
                    "base_url",
                    "",
                    "empty: no base URL known",
                    False,
                )
            )
    portal = next((p for *_, p in found if p), None)
    payer = None
    if has_urls:
        payer = Payer(
            name=name,
            vendor=vendors[0][0] if vendors else None,
            source=" | ".join(sources) or None,
            endpoints=build_endpoints(production, sandbox),
        )
    return SeedPayer(
        name=name,
        rows=[r.row for r in group],
        names=names,
        payer=payer,
        portal=portal,
        notes=notes,
    )


SEED_HEADER = """\
# endpoints.yaml: the payer directory probe crawls (payers and their FHIR base URLs).
# Schema, field by field, with a full example: docs/directory.md.
# Check it with `probe directory validate endpoints.yaml`.
#
# {provenance}
# Rows of the CSV naming the same payer are merged into one entry with distinct endpoints;
# `source` keeps every row's public source (joined with " | "), and the vendor as the CSV
# wrote it when the clean name differs. Lives and organization_status are unknown, so unset.
# The comment above each payer names its CSV rows (row 1 is the header).
#
# Never write secrets in this file: credentials name an environment variable ({{env: NAME}})
# or a key of the file named by `secrets_file` ({{secret: KEY}}).
"""


def _yaml_block(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)


def render_seed(seed: Seed, source: str, provenance: str | None = None) -> str:
    """The seed as commented YAML (deterministic: same CSV, same text).

    Loads with :func:`probe.directory.schema.load_directory` to ``seed.directory``.
    """
    provenance = provenance or (
        f"Generated by `probe directory seed {source}`; review it by hand before use."
    )
    out = [SEED_HEADER.format(provenance=provenance), "\nversion: 1\n"]
    with_payers = [p for p in seed.payers if p.payer is not None]
    out.append("payers:\n" if with_payers else "payers: []\n")
    for entry in with_payers:
        assert entry.payer is not None
        rows = ", ".join(map(str, entry.rows))
        label = "rows" if len(entry.rows) > 1 else "row"
        comment = f"# CSV {label} {rows}"
        if len(set(entry.names)) > 1:
            comment += ": " + "; ".join(dict.fromkeys(entry.names))
        out.append("\n" + _comment(comment))
        for note in entry.notes:
            out.append(_comment(f"# {note}"))
        data = entry.payer.model_dump(mode="json", exclude_defaults=True, exclude_none=True)
        out.append(_yaml_block([data]))
    missing = [p for p in seed.payers if p.payer is None]
    if missing:
        out.append("\n# Payers in the CSV without a usable base URL yet (add them when known):\n")
        for entry in missing:
            rows = ", ".join(map(str, entry.rows))
            portal = f": developer portal {entry.portal}" if entry.portal else ""
            out.append(f"# - {entry.name} (CSV row {rows}){portal}\n")
    return "".join(out)


def _comment(text: str, width: int = 100) -> str:
    """`text` (starting '# ') wrapped as YAML comment lines."""
    words = text[2:].split()
    lines: list[str] = []
    line = "#"
    for word in words:
        if len(line) + 1 + len(word) > width and line != "#":
            lines.append(line)
            line = "#  "
        line += " " + word
    lines.append(line)
    return "\n".join(lines) + "\n"


def issues_by_row(issues: Iterable[ImportIssue]) -> dict[int, list[ImportIssue]]:
    """Issues grouped by file row (for tests and reports)."""
    out: dict[int, list[ImportIssue]] = {}
    for issue in issues:
        out.setdefault(issue.row, []).append(issue)
    return out
