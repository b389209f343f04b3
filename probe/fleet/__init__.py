"""A reference fleet of simulated payer FHIR servers (issue 4): see docs/fleet.md.

In-process API::

    from probe.fleet.app import Fleet
    from probe.fleet.config import parse_fleet_config
    from probe.fleet.serve import running_fleet

    fleet = Fleet(config)                       # ASGI app: fleet.app; fleet.transport() for httpx
    async with running_fleet(config, hosts=4) as fleet:   # real uvicorn servers on loopback
        fleet.base_url("acme"); fleet.directory(); fleet.secrets(); fleet.stats
"""
