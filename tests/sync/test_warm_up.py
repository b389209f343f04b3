"""The R4 validator is built once per process in the background when a sync starts."""

from __future__ import annotations

from probe.checks import fhir_schema
from probe.sync import session


def test_warm_up_builds_the_validator_once_in_the_background() -> None:
    session.warm_up_validation()
    first = session._warm_up
    session.warm_up_validation()
    assert first is not None and session._warm_up is first  # one thread per process
    first.join(timeout=120)  # a bound against a hang, not a speed target
    assert not first.is_alive()
    built = fhir_schema._validators  # the common types' validator, or a wider one
    assert any(types >= fhir_schema.COMMON_TYPES for types, _ in built)
