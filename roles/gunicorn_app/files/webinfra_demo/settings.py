"""Settings of the demo application, read from the process environment.

The gunicorn_app role writes them to an environment file that gunicorn's
configuration loads, so a change is picked up by a graceful reload.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass, field

DEFAULT_PORT = 3306


@dataclass(frozen=True)
class DbEndpoint:
    """One database server: where it is and which role it plays."""

    host: str
    port: int = DEFAULT_PORT
    role: str = "primary"

    @property
    def label(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Settings:
    """Everything the application needs to know about its surroundings."""

    hostname: str
    version: str = ""
    primary: DbEndpoint | None = None
    replicas: tuple[DbEndpoint, ...] = field(default_factory=tuple)
    db_name: str = "webinfra"
    db_user: str = "webinfra"
    db_password: str = field(default="", repr=False)
    connect_timeout: float = 2.0
    # CA certificate that signed the database servers' certificates; empty
    # connects without TLS. With it, the server certificate is verified, and
    # with verify_identity its names must include the address connected to.
    db_ssl_ca: str = ""
    db_ssl_verify_identity: bool = True

    @property
    def database_configured(self) -> bool:
        return self.primary is not None


def parse_endpoint(value: str, role: str, default_port: int = DEFAULT_PORT) -> DbEndpoint:
    """Parse ``host``, ``host:port`` or ``[v6addr]:port`` into an endpoint."""
    text = value.strip()
    if not text:
        raise ValueError("empty database host")
    if text.startswith("["):
        host, _sep, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, _sep, port_text = text.partition(":")
    else:
        host, port_text = text, ""
    port = int(port_text) if port_text else default_port
    if not 0 < port < 65536:
        raise ValueError(f"database port out of range: {value!r}")
    return DbEndpoint(host=host, port=port, role=role)


def from_environ(environ: Mapping[str, str]) -> Settings:
    """Build settings from WEBINFRA_* variables (see the role README)."""
    port = int(environ.get("WEBINFRA_DB_PORT") or DEFAULT_PORT)
    primary_text = environ.get("WEBINFRA_DB_PRIMARY", "").strip()
    primary = parse_endpoint(primary_text, "primary", port) if primary_text else None
    replicas = tuple(
        parse_endpoint(item, "replica", port)
        for item in environ.get("WEBINFRA_DB_REPLICAS", "").split(",")
        if item.strip()
    )
    return Settings(
        hostname=environ.get("WEBINFRA_HOSTNAME") or socket.gethostname(),
        version=environ.get("WEBINFRA_APP_VERSION", ""),
        primary=primary,
        replicas=replicas,
        db_name=environ.get("WEBINFRA_DB_NAME") or "webinfra",
        db_user=environ.get("WEBINFRA_DB_USER") or "webinfra",
        db_password=environ.get("WEBINFRA_DB_PASSWORD", ""),
        connect_timeout=float(environ.get("WEBINFRA_DB_CONNECT_TIMEOUT") or 2.0),
        db_ssl_ca=environ.get("WEBINFRA_DB_SSL_CA", "").strip(),
        db_ssl_verify_identity=parse_flag(environ.get("WEBINFRA_DB_SSL_VERIFY_IDENTITY", "1")),
    )


def parse_flag(value: str) -> bool:
    """Read 1/0, true/false, yes/no, on/off (any case); refuse anything else."""
    text = value.strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"not a yes/no setting: {value!r}")
