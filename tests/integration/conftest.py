"""A FHIR server nobody on this project wrote: sekmet-fhir, in its own virtualenv, on loopback.

The virtualenv lives at ``.cache/sekmet-venv`` in the repository (git-ignored) and is created
once per machine with ``python -m venv`` + ``pip install sekmet-fhir==0.1.1`` (PyPI is the only
network these tests use); later runs reuse it. Each server runs ``sekmet serve`` in its own
process group and is always killed at teardown.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from probe.fleet.app import Fleet
from probe.fleet.config import parse_fleet_config

REPO = Path(__file__).resolve().parents[2]
SEKMET_VERSION = "0.1.1"
SEKMET_VENV = REPO / ".cache" / "sekmet-venv"
STAMP = SEKMET_VENV / f".installed-sekmet-fhir-{SEKMET_VERSION}"
TOKEN = "sekmet-static-token-4f1c9a"  # the bearer token sekmet accepts (not a real secret)


@pytest.fixture(scope="session")
def sekmet_bin() -> Path:
    """The `sekmet` executable in its own virtualenv (created and installed on first use)."""
    exe = SEKMET_VENV / "bin" / "sekmet"
    if STAMP.exists() and exe.exists():
        return exe
    if not (SEKMET_VENV / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(SEKMET_VENV)], check=True, timeout=300)
    install = subprocess.run(
        [
            str(SEKMET_VENV / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            f"sekmet-fhir=={SEKMET_VERSION}",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if install.returncode != 0 or not exe.exists():
        pytest.fail(f"could not install sekmet-fhir=={SEKMET_VERSION}:\n{install.stderr[-3000:]}")
    STAMP.write_text(SEKMET_VERSION + "\n")
    return exe


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class Sekmet:
    """One running sekmet server."""

    base_url: str
    ca_file: Path | None
    log: Path

    @property
    def verify(self) -> ssl.SSLContext | bool:
        """What httpx should verify the server's certificate with."""
        return ssl.create_default_context(cafile=self.ca_file) if self.ca_file else True

    def client(self) -> httpx.Client:
        """An HTTP client for loading data (the bearer token set)."""
        return httpx.Client(
            verify=self.verify, timeout=60, headers={"Authorization": f"Bearer {TOKEN}"}
        )


@contextlib.contextmanager
def run_sekmet(
    exe: Path, workdir: Path, *, tls: tuple[Path, Path] | None = None
) -> Iterator[Sekmet]:
    """Serve sekmet on 127.0.0.1 (HTTPS when `tls` = (cert, key)); killed when the block ends."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    scheme = "https" if tls else "http"
    base_url = f"{scheme}://127.0.0.1:{port}/fhir"
    settings: dict[str, Any] = {
        "base_url": base_url,  # sekmet builds fullUrls and next links from this
        "data_dir": str(workdir / "data"),
        "server_auth": {"types": ["bearer"], "tokens": [TOKEN]},
        # sekmet's own default, stated: the fleet's CARIN-BB data passes its R4B structural check.
        "validation": {"inbound": "strict"},
        # The simulator reacts to writes (e.g. dispenses a MedicationRequest after 2 s), which
        # would add resources to the patient's compartment behind the test's back.
        "simulator": {"enabled": False},
        "log_inbound": False,
    }
    if tls:
        settings["tls_certfile"], settings["tls_keyfile"] = str(tls[0]), str(tls[1])
    config = workdir / "settings.yaml"
    config.write_text(yaml.safe_dump(settings))
    log = workdir / "sekmet.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEKMET_")}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                str(exe),
                "serve",
                "--config",
                str(config),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            cwd=workdir,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    server = Sekmet(base_url, tls[0] if tls else None, log)
    try:
        _wait_until_up(server, proc)
        yield server
    finally:
        _kill(proc)


def _wait_until_up(server: Sekmet, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"sekmet exited with {proc.returncode}:\n{server.log.read_text()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(server.base_url + "/metadata", verify=server.verify, timeout=2).is_success:
                return
        time.sleep(0.2)
    pytest.fail(
        f"sekmet did not answer /metadata in {timeout:g} s:\n{server.log.read_text()[-3000:]}"
    )


def _kill(proc: subprocess.Popen[bytes]) -> None:
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        if proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(wait)


# -- the test patient ------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadedPatient:
    """A patient loaded into sekmet: its server-assigned id and the transaction that made it."""

    patient_id: str
    bundle: dict[str, Any]


def fleet_patient_resources() -> list[dict[str, Any]]:
    """One of the fleet's committed test patients: the record, with the resources it references."""
    fleet = Fleet(parse_fleet_config({"seed": 11, "payers": [{"slug": "sekmet", "patients": 1}]}))
    data = fleet.data("sekmet")
    patient = fleet.patients("sekmet")[0]
    return [json.loads(data.resources[key]) for key in data.everything[patient]]


def transaction_bundle(resources: list[dict[str, Any]]) -> dict[str, Any]:
    """A transaction creating every resource (POST), linked by `urn:uuid:` fullUrls."""
    urns = {
        f"{r['resourceType']}/{r['id']}": "urn:uuid:"
        + str(uuid.uuid5(uuid.NAMESPACE_URL, f"{r['resourceType']}/{r['id']}"))
        for r in resources
    }

    def relink(node: Any, key: str = "") -> Any:
        if isinstance(node, dict):
            return {k: relink(v, k) for k, v in node.items()}
        if isinstance(node, list):
            return [relink(v) for v in node]
        if key == "reference" and isinstance(node, str):
            if node not in urns:
                raise AssertionError(f"reference {node} leaves the loaded record")
            return urns[node]
        return node

    entries = []
    for resource in resources:
        body = relink({k: v for k, v in resource.items() if k != "id"})
        entries.append(
            {
                "fullUrl": urns[f"{resource['resourceType']}/{resource['id']}"],
                "resource": body,
                "request": {"method": "POST", "url": resource["resourceType"]},
            }
        )
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def load_patient(server: Sekmet, bundle: dict[str, Any]) -> LoadedPatient:
    """POST the transaction; sekmet assigns ids and rewrites the urn:uuid references."""
    with server.client() as client:
        response = client.post(
            server.base_url, json=bundle, headers={"Content-Type": "application/fhir+json"}
        )
    assert response.status_code == 200, response.text[:2000]
    answers = response.json()["entry"]
    assert len(answers) == len(bundle["entry"])
    assert {a["response"]["status"] for a in answers} == {"201 Created"}
    # Entries answer in request order; the Patient's location names its new id.
    (location,) = [
        a["response"]["location"]
        for e, a in zip(bundle["entry"], answers, strict=True)
        if e["resource"]["resourceType"] == "Patient"
    ]
    patient_id = location.split("/Patient/", 1)[1].split("/", 1)[0]
    return LoadedPatient(patient_id, bundle)


# -- TLS -------------------------------------------------------------------------------------


def self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (IP SAN) and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path
