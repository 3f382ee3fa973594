"""Ansible's linear strategy run by Mitogen, for the molecule scenarios.

Mitogen keeps one Python interpreter per host and runs each module in a fork
of it, instead of starting Python and unpacking the module's zip for every
task (about 0.2 s of CPU a task and host on the two-core test machine).
Mitogen's own ``mitogen_linear`` only redirects connections named by their
short name (``docker``); molecule's docker driver names the collection's
plugin (``community.docker.docker``), which this strategy redirects too.
Only the test runner uses it (tools/molecule_runs.py); the collection does
not depend on Mitogen.
"""

from __future__ import annotations

from typing import Any

import ansible_mitogen.loaders
import ansible_mitogen.strategy as mitogen_strategy

# The connection plugins molecule names in full, and Mitogen's name for them.
FQCN_TO_SHORT = {"community.docker.docker": "docker"}

_mitogen_redirect = mitogen_strategy.wrap_connection_loader__get_with_context


def redirect_fqcn(name: str, *args: Any, **kwargs: Any) -> Any:
    """Mitogen's connection redirect, given the short name of a redirected FQCN."""
    return _mitogen_redirect(FQCN_TO_SHORT.get(name, name), *args, **kwargs)


# Mitogen checks the play's connection against this tuple before redirecting.
mitogen_strategy.REDIRECTED_CONNECTION_PLUGINS += tuple(FQCN_TO_SHORT)
# Read by StrategyMixin when it installs its wrappers, at the start of a run.
mitogen_strategy.wrap_connection_loader__get_with_context = redirect_fqcn

_Linear = ansible_mitogen.loaders.strategy_loader.get("linear", class_only=True)


class StrategyModule(mitogen_strategy.StrategyMixin, _Linear):  # type: ignore[misc,valid-type]
    """mitogen_linear with redirect_fqcn installed."""
