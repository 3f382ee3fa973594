"""A tiny library shipped to the target as a wheel (see build_wheel.py)."""

from __future__ import annotations

__version__ = "1.0"


def greet(name: str, greeting: str = "Hello") -> str:
    return f"{greeting} from {name} (webinfra-greeting {__version__})"
