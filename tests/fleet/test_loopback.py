"""The fleet on real loopback sockets: several hosts, per-host stats, resets, the CLI."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import anyio
import httpx
import pytest

from probe.directory.schema import load_directory
from probe.fleet.config import parse_fleet_config
from probe.fleet.serve import running_fleet

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

CONFIG = {
    "seed": 4,
    "hosts": 3,
    "payers": [
        {"slug": "ok"},
        {"slug": "slow", "archetypes": [{"slow": {"median_ms": 80, "sigma": 0.01}}]},
        {"slug": "resets", "archetypes": [{"flaky": {"error_rate": 0, "reset_rate": 1}}]},
        {"slug": "down", "archetypes": ["sandbox_only"]},
    ],
}


async def test_hosts_stats_headers_and_resets() -> None:
    config = parse_fleet_config(CONFIG)
    async with running_fleet(config) as fleet, httpx.AsyncClient(timeout=5) as client:
        assert fleet.addresses == ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
        ok, slow = fleet.site("ok"), fleet.site("slow")
        assert ok.host != slow.host
        response = await client.get(fleet.base_url("ok") + "/metadata")
        assert response.status_code == 200

        async def hit() -> None:
            await client.get(fleet.base_url("slow") + "/metadata")

        async with anyio.create_task_group() as tg:
            for _ in range(6):
                tg.start_soon(hit)
        assert fleet.stats.host(slow.host).max_concurrent == 6
        assert fleet.stats.host(ok.host).max_concurrent == 1

        token = fleet.issue_access_token("ok")
        patient = fleet.patients("ok")[0]
        read = await client.get(
            f"{fleet.base_url('ok')}/Patient/{patient}",
            headers={"Authorization": f"Bearer {token}"},
        )
        assert read.status_code == 200
        seen = fleet.stats.authorization_by_host()
        assert seen == {ok.host: {f"Bearer {token}"}}

        admin = await client.get(f"http://{slow.host}:{fleet.port}/_fleet/stats?records=2")
        body = admin.json()
        assert list(body["hosts"]) == [slow.host]
        assert body["hosts"][slow.host]["requests"] == 6
        assert len(body["records"]) == 2
        everything = await client.get(
            f"http://{ok.host}:{fleet.port}/_fleet/stats?all=1&records=50"
        )
        masked = [
            h for r in everything.json()["records"] for h in r["headers"] if h[0] == "authorization"
        ]
        assert masked and token not in str(masked)

        with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
            await client.get(fleet.base_url("resets") + "/metadata")
        with pytest.raises(httpx.ConnectError):
            await client.get(fleet.base_url("down") + "/metadata")
        sandbox = fleet.site("down").sandbox_url
        assert sandbox is not None
        assert (await client.get(sandbox + "/metadata")).status_code == 200
        port = fleet.port
    with pytest.raises(OSError), socket.create_connection(("127.0.0.2", port), timeout=1):
        pass


async def test_port_conflict_is_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    import probe.fleet.serve as serve_module

    config = parse_fleet_config({"hosts": 2, "payers": [{"slug": "a"}]})
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.3", 0))  # taken on the second address only
        squatter.listen()
        taken = squatter.getsockname()[1]
        real = serve_module._free_port
        offered = iter([taken])
        monkeypatch.setattr(serve_module, "_free_port", lambda a: next(offered, None) or real(a))
        async with running_fleet(config) as fleet, httpx.AsyncClient() as client:
            assert fleet.port != taken
            assert (await client.get(fleet.base_url("a") + "/metadata")).status_code == 200


def test_cli_serve_writes_directory_and_stops_on_sigterm(tmp_path: Path) -> None:
    config = tmp_path / "fleet.yaml"
    config.write_text(
        "seed: 2\nhosts: 2\npayers:\n  - slug: acme\n  - slug: beta\n    archetypes: [r4_400]\n"
    )
    directory_file = tmp_path / "out" / "endpoints.yaml"
    secrets_file = tmp_path / "out" / "secrets.yaml"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "probe.cli",
            "fleet",
            "serve",
            "--config",
            str(config),
            "--directory-out",
            str(directory_file),
            "--secrets-out",
            str(secrets_file),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 20
        while not directory_file.exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        directory = load_directory(directory_file)
        assert directory.secrets_file == str(secrets_file.resolve())
        assert stat.S_IMODE(os.stat(secrets_file).st_mode) == 0o600
        base = directory.payers[1].endpoints[0].base_url
        assert httpx.get(base + "/metadata").json()["fhirVersion"] == "4.0.0"
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=15)
    assert process.returncode == 0, stderr
    assert b"fleet: stopped" in stderr
    with pytest.raises(httpx.ConnectError):
        httpx.get(base + "/metadata", timeout=2)


def test_cli_reports_config_errors(tmp_path: Path) -> None:
    config = tmp_path / "fleet.yaml"
    config.write_text("payers:\n  - slug: acme\n    archetypes: [sluggish]\n")
    result = subprocess.run(
        [sys.executable, "-m", "probe.cli", "fleet", "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "payers.0.archetypes.0" in result.stderr
