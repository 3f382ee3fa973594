"""webinfra demo application: makes the stack's design visible.

``/`` names the host that served the request, ``/livez`` says the worker
serves (no database asked), ``/healthz`` reports the application and
database state, ``/api/notes`` writes to the primary and
reads from a replica (falling back to the primary).
"""

from __future__ import annotations

from .app import create_app
from .settings import DbEndpoint, Settings

__all__ = ["DbEndpoint", "Settings", "create_app"]
