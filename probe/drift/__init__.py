"""Drift: what changed at an endpoint between two runs, and how much it matters (docs/drift.md).

* :mod:`probe.drift.snapshot`: one endpoint as observed in one run (live or stored).
* :mod:`probe.drift.keys`: the `smart.jwks` observation (key ids at the jwks_uri).
* :mod:`probe.drift.classify`: the change classifier (breaking, notable, cosmetic).
* :mod:`probe.drift.events`: nightly detection over the store, stored drift events, queries.
* :mod:`probe.drift.notify`: posting new drift events to a webhook.
* :mod:`probe.drift.nightly`: what the crawl calls after a run (detect, then notify).
* :mod:`probe.cli.drift`: ``probe drift``.
* drift events become rows of the HTML score report in :mod:`probe.score.report_changes`.
"""
