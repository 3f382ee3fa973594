"""Fixtures of the whole-stack failure tests."""

from __future__ import annotations

import pytest
from webinfra_e2e import figure
from webinfra_failures import Report


@pytest.fixture
def report(capsys: pytest.CaptureFixture[str]) -> Report:
    """Print a figure to the real output (pytest captures it otherwise)."""

    def say(name: str, value: float, unit: str) -> None:
        with capsys.disabled():
            print(f"\n{figure(name, value, unit)}", flush=True)

    return say
