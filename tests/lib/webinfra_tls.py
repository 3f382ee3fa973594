"""TLS as a client sees it: served certificates, HSTS, HTTPS by name to an
address, the lab ACME CA's root and sslyze's profile check.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

from webinfra_testlib import RunOutcome


@dataclass(frozen=True)
class ServedCertificate:
    """The leaf certificate a TLS server presented (already verified)."""

    serial: int
    subject_alt_names: tuple[str, ...]
    issuer: str


def pem_blocks(text: str, kind: str = "CERTIFICATE") -> list[str]:
    """The PEM blocks of type `kind` in `text`, in order, each with its armour."""
    pattern = rf"-----BEGIN {kind}-----\r?\n[A-Za-z0-9+/=\r\n]+?-----END {kind}-----"
    return [match.group(0) + "\n" for match in re.finditer(pattern, text)]


def hsts_max_age(header: str | None) -> int | None:
    """max-age of a Strict-Transport-Security header value (None when absent)."""
    if not header:
        return None
    for directive in header.split(";"):
        name, _, value = directive.strip().partition("=")
        if name.strip().lower() == "max-age":
            value = value.strip().strip('"')
            return int(value) if value.isdigit() else None
    return None


def _verified_context(cafile: str) -> Any:
    import ssl

    context = ssl.create_default_context(cafile=cafile)
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def served_certificate(
    address: str, server_name: str, cafile: str, port: int = 443, timeout: float = 5.0
) -> ServedCertificate:
    """Connect to address:port asking for `server_name` (SNI) and verify the
    chain against `cafile` and the name; return the leaf certificate.

    Raises ssl.SSLCertVerificationError when the certificate is not valid
    for that name under that root.
    """
    import socket

    from cryptography import x509

    context = _verified_context(cafile)
    with (
        socket.create_connection((address, port), timeout=timeout) as raw,
        context.wrap_socket(raw, server_hostname=server_name) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    cert = x509.load_der_x509_certificate(der)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        names = tuple(san.value.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        names = ()
    return ServedCertificate(cert.serial_number, names, cert.issuer.rfc4514_string())


@dataclass(frozen=True)
class HttpsAnswer:
    status: int
    headers: dict[str, str]
    body: bytes


def https_get(
    address: str,
    server_name: str,
    cafile: str,
    path: str = "/",
    port: int = 443,
    timeout: float = 5.0,
) -> HttpsAnswer:
    """GET https://server_name:port/path from `address`, verifying the
    certificate against `cafile` (as a browser would after resolving the
    name to `address`)."""
    import http.client
    import socket

    context = _verified_context(cafile)

    class _Connection(http.client.HTTPSConnection):
        def connect(self) -> None:
            raw = socket.create_connection((address, port), timeout=timeout)
            self.sock = context.wrap_socket(raw, server_hostname=server_name)

    connection = _Connection(server_name, port, timeout=timeout, context=context)
    try:
        connection.request("GET", path, headers={"Host": server_name})
        response = connection.getresponse()
        headers = {name.lower(): value for name, value in response.getheaders()}
        return HttpsAnswer(response.status, headers, response.read())
    finally:
        connection.close()


def fetch_pebble_root(acme_address: str, server_ca: str, dest: str, port: int = 15000) -> str:
    """Write pebble's issuing root to `dest` and return its path.

    Pebble makes a new root at every start, so it is fetched when needed,
    from its management API, trusting `server_ca` (the CA of pebble's own
    TLS certificate, made by playbooks/lab_acme.yml).
    """
    import requests

    answer = requests.get(f"https://{acme_address}:{port}/roots/0", verify=server_ca, timeout=10)
    answer.raise_for_status()
    roots = pem_blocks(answer.text)
    if len(roots) != 1:
        raise ValueError(f"expected one root from pebble, got: {answer.text[:500]}")
    with open(dest, "w", encoding="utf-8") as handle:
        handle.write(roots[0])
    return dest


def sslyze_mozilla_intermediate(
    server_name: str, address: str, ca_file: str, port: int = 443
) -> RunOutcome:
    """Run sslyze's Mozilla intermediate check against address:port by name."""
    done = subprocess.run(
        [
            sys.executable, "-m", "sslyze",
            "--mozilla_config=intermediate",
            f"--certinfo_ca_file={ca_file}",
            f"{server_name}:{port}{{{address}}}",
        ],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    return RunOutcome(done.returncode, done.stdout, done.stderr)


def sslyze_compliant(outcome: RunOutcome, server_name: str, port: int = 443) -> bool:
    """Whether sslyze reported the server compliant with the profile."""
    return outcome.rc == 0 and f"{server_name}:{port}: OK - Compliant." in outcome.stdout
