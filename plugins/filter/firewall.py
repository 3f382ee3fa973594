"""Filters that turn published firewall rules into ufw commands.

Roles publish what they need in ``webinfra_firewall_rules`` (a dictionary
role name -> list of ``{port, proto, from, comment}``; see
docs/developing.md, "dependent-rules pattern"). The ``ufw`` role uses these
filters to:

1. ``firewall_rule_errors``: check the rules and name the variable and the
   rule that is wrong, before anything changes;
2. ``ufw_desired_rules``: expand them into one ufw command per source, each
   tagged with a comment that starts with the managed prefix and encodes the
   rule, so the comment alone identifies a rule;
3. ``ufw_managed_rules``: read ``ufw show added`` back into comment -> ufw
   arguments, so rules nobody publishes any more can be deleted without
   resetting the firewall.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

try:
    from ansible.errors import AnsibleFilterError
except ImportError:  # pragma: no cover - only without ansible installed
    AnsibleFilterError = ValueError  # type: ignore[misc,assignment,unused-ignore]

PROTOCOLS = ("tcp", "udp", "vrrp")
RULE_KEYS = frozenset({"port", "proto", "from", "comment"})
# ufw prints comments between single quotes: keep them printable and quote-free.
_COMMENT_RE = re.compile(r"^[A-Za-z0-9 _.,:;()/+=@#<>-]*$")
_PORT_RE = re.compile(r"^([0-9]{1,5})(?::([0-9]{1,5}))?$")


def _port_error(port: object) -> str | None:
    if isinstance(port, bool):
        return f"port must be a number 1-65535 or a range 'low:high', got {port!r}"
    text = str(port) if isinstance(port, int | str) else None
    match = _PORT_RE.match(text) if text is not None else None
    if match is None:
        return f"port must be a number 1-65535 or a range 'low:high', got {port!r}"
    low = int(match.group(1))
    high = int(match.group(2)) if match.group(2) else low
    if not (1 <= low <= 65535 and 1 <= high <= 65535):
        return f"port must be within 1-65535, got {port!r}"
    if high < low:
        return f"port range must be 'low:high' with low < high, got {port!r}"
    return None


def _source_error(source: object) -> str | None:
    if source == "any":
        return None
    if not isinstance(source, str):
        return f"every entry of 'from' must be 'any', an IP address or a CIDR, got {source!r}"
    try:
        ipaddress.ip_network(source, strict=False)
    except ValueError:
        return f"every entry of 'from' must be 'any', an IP address or a CIDR, got {source!r}"
    return None


def rule_errors(rule: object, where: str) -> list[str]:
    """Messages describing what is wrong with one rule; empty when it is valid."""
    if not isinstance(rule, Mapping):
        return [f"{where} must be a dictionary with port, proto, from and comment, got {rule!r}"]
    errors: list[str] = []
    unknown = sorted(str(k) for k in rule if k not in RULE_KEYS)
    if unknown:
        errors.append(f"{where} has unknown keys {unknown} (allowed: comment, from, port, proto)")
    proto = rule.get("proto", "tcp")
    if proto not in PROTOCOLS:
        errors.append(f"{where}.proto must be one of {', '.join(PROTOCOLS)}, got {proto!r}")
    port = rule.get("port")
    if proto == "vrrp":
        if port is not None:
            errors.append(f"{where}.port must be left out for proto vrrp, got {port!r}")
    elif proto in PROTOCOLS:
        message = _port_error(port)
        if message:
            errors.append(f"{where}.{message}")
    sources = rule.get("from", ["any"])
    if isinstance(sources, str) or not isinstance(sources, Sequence) or not sources:
        errors.append(f"{where}.from must be a non-empty list, got {sources!r}")
    else:
        for index, source in enumerate(sources):
            message = _source_error(source)
            if message:
                errors.append(f"{where}.from[{index}]: {message}")
    comment = rule.get("comment", "")
    if not isinstance(comment, str) or not _COMMENT_RE.match(comment):
        errors.append(
            f"{where}.comment must be plain text (letters, digits, spaces and "
            f"_.,:;()/+=@#<>-), got {comment!r}"
        )
    return errors


def firewall_rule_errors(rules: object, name: str) -> list[str]:
    """Check a list of rules (``name`` is the variable) or a dict role -> list."""
    if isinstance(rules, Mapping):
        errors: list[str] = []
        for role, role_rules in rules.items():
            errors += firewall_rule_errors(role_rules, f"{name}['{role}']")
        return errors
    if isinstance(rules, str) or not isinstance(rules, Sequence):
        return [f"{name} must be a list of rules, got {rules!r}"]
    errors = []
    for index, rule in enumerate(rules):
        errors += rule_errors(rule, f"{name}[{index}]")
    return errors


def _normalise_source(source: str) -> str:
    if source == "any":
        return "any"
    network = ipaddress.ip_network(source, strict=False)
    if network.num_addresses == 1:
        return str(network.network_address)
    return str(network)


def ufw_desired_rules(
    published: Mapping[str, Sequence[Mapping[str, Any]]],
    extra: Sequence[Mapping[str, Any]],
    ssh_port: int,
    ssh_sources: Sequence[str],
    ssh_limit: bool = True,
    prefix: str = "webinfra:",
) -> list[dict[str, Any]]:
    """One ufw command per (action, proto, port, source), sorted, de-duplicated.

    Returns ``[{"comment": ..., "args": [...]}]`` where ``args`` follow
    ``ufw`` on the command line. The comment starts with ``prefix``, names
    the publishers and ends with the rule itself, so two different rules
    never share a comment and ``ufw show added`` identifies them.
    """
    errors = firewall_rule_errors(published, "published rules") + firewall_rule_errors(
        extra, "extra rules"
    )
    if errors:
        raise AnsibleFilterError("; ".join(errors))
    merged: dict[tuple[str, str, str, str], list[str]] = {}

    def add(action: str, proto: str, port: str, source: str, label: str) -> None:
        key = (action, proto, port, _normalise_source(source))
        if label not in merged.setdefault(key, []):
            merged[key].append(label)

    ssh_action = "limit" if ssh_limit else "allow"
    for source in ssh_sources:
        add(ssh_action, "tcp", str(ssh_port), source, "ssh")
    sections: list[tuple[str, Sequence[Mapping[str, Any]]]] = sorted(published.items())
    sections.append(("ufw_rules", extra))
    for role, rules in sections:
        for rule in rules:
            proto = str(rule.get("proto", "tcp"))
            port = "" if proto == "vrrp" else str(rule["port"])
            comment = str(rule.get("comment", "")).strip()
            label = f"{role} {comment}".strip()
            for source in rule.get("from", ["any"]):
                add("allow", proto, port, str(source), label)

    desired = []
    # SSH first: when ufw is active, the new SSH rules exist before any other
    # change, and old ones are only deleted after every addition.
    ordered = sorted(merged.items(), key=lambda item: (item[1] != ["ssh"], item[0]))
    for (action, proto, port, source), labels in ordered:
        target = f"{port}/{proto}" if port else proto
        comment = f"{prefix}{', '.join(sorted(labels))} [{action} {target} from {source}]"
        args = [action, "proto", proto, "from", source]
        if port:
            args += ["to", "any", "port", port]
        desired.append({"comment": comment, "args": [*args, "comment", comment]})
    return desired


def ufw_managed_rules(show_added: str, prefix: str = "webinfra:") -> dict[str, list[str]]:
    """Parse ``ufw show added``: comment -> ufw arguments, managed rules only."""
    managed: dict[str, list[str]] = {}
    for line in show_added.splitlines():
        if not line.startswith("ufw "):
            continue
        try:
            words = shlex.split(line)
        except ValueError:
            continue
        if "comment" not in words[:-1]:
            continue
        comment = words[words.index("comment") + 1]
        if comment.startswith(prefix):
            managed[comment] = words[1:]
    return managed


__all__ = [
    "AnsibleFilterError",
    "FilterModule",
    "firewall_rule_errors",
    "rule_errors",
    "ufw_desired_rules",
    "ufw_managed_rules",
]


class FilterModule:
    """webinfra.stack firewall filters."""

    def filters(self) -> dict[str, Any]:
        return {
            "firewall_rule_errors": firewall_rule_errors,
            "ufw_desired_rules": ufw_desired_rules,
            "ufw_managed_rules": ufw_managed_rules,
        }
