"""A payer's developer portal page, as the fleet serves it (or a parked domain, or a 404)."""

from __future__ import annotations

import html

from starlette.responses import HTMLResponse, Response

_PARKED = """<!DOCTYPE html><html><head><title>{name} - domain for sale</title></head>
<body><h1>This domain may be for sale</h1><p>Buy this domain. Parked free, courtesy of a
registrar.</p></body></html>"""

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{name} Developer Portal</title></head>
<body>
<header><h1>{name} Developer Portal</h1></header>
<main>
<h2>Patient Access API</h2>
<p>Under the CMS Interoperability and Patient Access final rule (CMS-9115-F), members can share
their claims and clinical data with the apps they choose. Our FHIR R4 API implements the CARIN
Consumer Directed Payer Data Exchange (CARIN Blue Button) and US Core implementation guides and
SMART App Launch for authorization.</p>
<h2>Get started</h2>
<ol>
<li>Register your application to receive a client id (and a client secret for confidential
apps).</li>
<li>Test against the sandbox with the synthetic members listed in the sandbox guide.</li>
<li>Request production access once your app passes the attestation review.</li>
</ol>
<p><a href="./register">Register an app</a> &middot;
<a href="./fhir/metadata">CapabilityStatement</a>
&middot; <a href="./fhir/.well-known/smart-configuration">SMART configuration</a></p>
</main>
<footer><p>Questions: interoperability@{slug}.example</p></footer>
</body></html>"""


def portal_page(name: str, kind: str) -> Response:
    """The portal response for `kind`: page, parked or missing (404)."""
    safe = html.escape(name)
    if kind == "parked":
        return HTMLResponse(_PARKED.format(name=safe), 200)
    if kind in ("missing", "none"):
        return HTMLResponse(
            f"<html><head><title>404 Not Found</title></head><body>{safe}</body></html>", 404
        )
    slug = "".join(c for c in name.lower() if c.isalnum())
    return HTMLResponse(_PAGE.format(name=safe, slug=slug), 200)
