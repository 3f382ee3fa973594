"""The ``platform_problem`` filter: why a host's platform is not one the collection tests.

Every role's preflight refuses a platform that `make test` does not run
(``TESTED_PLATFORMS``) before it changes anything, unless the user sets
``webinfra_allow_untested_platform: true``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Distribution (ansible_facts['distribution']) -> major versions tested.
TESTED_PLATFORMS: dict[str, tuple[str, ...]] = {"Debian": ("12", "13")}


def tested_platforms_text() -> str:
    """The tested platforms in words: 'Debian 12 and 13'."""
    return ", ".join(
        f"{name} {' and '.join(versions)}" for name, versions in TESTED_PLATFORMS.items()
    )


def platform_problem(facts: Mapping[str, Any]) -> str:
    """'' for a tested platform, else a message naming the tested ones."""
    name = str(facts.get("distribution", "") or "unknown")
    version = str(facts.get("distribution_major_version", "") or "")
    if version in TESTED_PLATFORMS.get(name, ()):
        return ""
    found = f"{name} {version}".strip()
    return (
        f"{found} is not a platform this collection is tested on (it supports "
        f"{tested_platforms_text()}); set webinfra_allow_untested_platform: true "
        "to go on at your own risk"
    )


__all__ = ["TESTED_PLATFORMS", "FilterModule", "platform_problem"]


class FilterModule:
    """webinfra.stack platform filters."""

    def filters(self) -> dict[str, Any]:
        return {"platform_problem": platform_problem}
