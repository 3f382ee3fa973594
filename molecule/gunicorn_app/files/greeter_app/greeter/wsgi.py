"""Entry point greeter.wsgi:app (plain WSGI, no framework)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from webinfra_greeting import greet

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    body = greet(os.environ.get("GREETER_NAME", "greeter"), os.environ.get("GREETING", "Hello"))
    data = (body + "\n").encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(data)))])
    return [data]
