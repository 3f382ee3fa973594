"""The molecule runs' strategy plugin hands docker hosts to Mitogen's connection."""

from __future__ import annotations

import importlib.util
from types import ModuleType
from typing import Any

import ansible_mitogen.strategy as mitogen_strategy
import pytest

from tools.molecule_runs import MITOGEN_STRATEGY, STRATEGY_DIR


def load_plugin(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The plugin, loaded with Mitogen's module state restored after the test."""
    for name in ("REDIRECTED_CONNECTION_PLUGINS", "wrap_connection_loader__get_with_context"):
        monkeypatch.setattr(mitogen_strategy, name, getattr(mitogen_strategy, name))
    spec = importlib.util.spec_from_file_location(
        MITOGEN_STRATEGY, STRATEGY_DIR / f"{MITOGEN_STRATEGY}.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_docker_connection_named_in_full_is_redirected_by_its_short_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(mitogen_strategy, "REDIRECTED_CONNECTION_PLUGINS", ("docker", "ssh"))
    asked: list[str] = []

    def mitogen_redirect(name: str, *args: Any, **kwargs: Any) -> str:
        asked.append(name)
        return f"loaded {name}"

    monkeypatch.setattr(
        mitogen_strategy, "wrap_connection_loader__get_with_context", mitogen_redirect
    )
    plugin = load_plugin(monkeypatch)
    assert "community.docker.docker" in mitogen_strategy.REDIRECTED_CONNECTION_PLUGINS
    # StrategyMixin installs whatever the module holds when a run starts.
    installed = mitogen_strategy.wrap_connection_loader__get_with_context
    assert installed is plugin.redirect_fqcn
    assert installed("community.docker.docker") == "loaded docker"
    assert installed("ssh") == "loaded ssh"
    assert asked == ["docker", "ssh"]


def test_the_strategy_is_mitogens_linear_one(monkeypatch: pytest.MonkeyPatch) -> None:
    plugin = load_plugin(monkeypatch)
    assert issubclass(plugin.StrategyModule, mitogen_strategy.StrategyMixin)
    assert any(base.__name__ == "StrategyModule" for base in plugin.StrategyModule.__mro__[2:])
