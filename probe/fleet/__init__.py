"""A reference fleet of simulated payer FHIR servers (issue 4): see docs/fleet.md.

In-process API::

    from probe.fleet import Fleet, FleetConfig, running_fleet, parse_fleet_config

    fleet = Fleet(config)                       # ASGI app: fleet.app; fleet.transport() for httpx
    async with running_fleet(config, hosts=4) as fleet:   # real uvicorn servers on loopback
        fleet.base_url("acme"); fleet.directory(); fleet.secrets(); fleet.stats
"""

from probe.fleet.app import Fleet, FleetReset
from probe.fleet.archetypes import ArchetypeName
from probe.fleet.config import (
    FleetConfig,
    FleetConfigError,
    PayerConfig,
    default_config,
    load_fleet_config,
    parse_fleet_config,
)
from probe.fleet.serve import running_fleet
from probe.fleet.stats import FleetStats, RequestRecord

__all__ = [
    "ArchetypeName",
    "Fleet",
    "FleetConfig",
    "FleetConfigError",
    "FleetReset",
    "FleetStats",
    "PayerConfig",
    "RequestRecord",
    "default_config",
    "load_fleet_config",
    "parse_fleet_config",
    "running_fleet",
]
