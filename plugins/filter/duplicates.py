"""The ``duplicates`` filter: the items that occur more than once in a list.

Roles use it in preflight asserts to name what the user repeated, for
example ``keepalived_instances | map(attribute='virtual_router_id') |
webinfra.stack.duplicates``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def duplicates(values: Iterable[Any]) -> list[Any]:
    """Items seen more than once, each listed once, in order of first repetition."""
    seen: list[Any] = []
    repeated: list[Any] = []
    for value in values:
        if value in seen:
            if value not in repeated:
                repeated.append(value)
        else:
            seen.append(value)
    return repeated


__all__ = ["FilterModule", "duplicates"]


class FilterModule:
    """webinfra.stack list filters."""

    def filters(self) -> dict[str, Any]:
        return {"duplicates": duplicates}
