"""The ``vrrp_state`` filter: a VRRP instance's state from keepalived's log.

keepalived logs every state change of an instance, in order, as
``(web) Entering MASTER STATE`` (``BACKUP``, ``FAULT``; ``(init)`` may
follow). The last such line is the instance's current state while
keepalived runs: ``{{ 'web' | webinfra.stack.vrrp_state(journal_lines) }}``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

_ENTERING = re.compile(r"^\((?P<name>[^)]+)\) Entering (?P<state>[A-Z]+) STATE\b")


def vrrp_state(name: str, lines: Iterable[str]) -> str:
    """Last state keepalived logged for instance ``name``; ``UNKNOWN`` when none."""
    state = "UNKNOWN"
    for line in lines:
        match = _ENTERING.match(line.strip())
        if match and match.group("name") == name:
            state = match.group("state")
    return state


__all__ = ["FilterModule", "vrrp_state"]


class FilterModule:
    """webinfra.stack VRRP filters."""

    def filters(self) -> dict[str, Any]:
        return {"vrrp_state": vrrp_state}
