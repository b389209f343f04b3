"""Cleaning one cell of a published payer directory: free text that may hold zero, one or several
URLs (resource URLs, ``/metadata`` links, templates with placeholders, query strings) becomes
FHIR base URLs, a portal URL or a vendor name, and every value it could not use is named with
its reason. docs/directory.md describes the rules.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

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
        longer = [o for o in bases if o is not base and is_path_prefix(base.url, o.url)]
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


def is_path_prefix(short: str, long: str) -> bool:
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
