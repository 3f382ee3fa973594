"""The server_ids filter: one replication server id per database host.

MariaDB needs a server_id unique across the hosts that replicate together.
A host's id is the one set for it (mysql_primary_server_id on primaries,
mysql_replica_server_id on replicas, or the calling host's own override),
and otherwise is derived from its address: an IPv4 address read as a 32-bit
number (unique per address, and readable back), an IPv6 address hashed into
1..4294967294.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

try:
    from ansible.errors import AnsibleFilterError
except ImportError:  # pragma: no cover - only without ansible installed
    AnsibleFilterError = ValueError  # type: ignore[misc,assignment,unused-ignore]

DOCUMENTATION = r"""
name: server_ids
short_description: A replication server id for every database host
version_added: "1.0.0"
description:
  - Maps each host of the database tier to its MariaDB C(server_id).
  - A host's id is the one set for it (C(mysql_primary_server_id) on primaries,
    C(mysql_replica_server_id) on the others, or an entry of O(overrides)); 0 or
    unset derives it from the host's address in O(addresses).
  - An IPv4 address gives its value as a 32-bit number; an IPv6 address a hash in 1..4294967294.
positional: addresses, hostvars, primaries, overrides
options:
  _input:
    description: Inventory hostnames of the database tier.
    type: list
    elements: str
    required: true
  addresses:
    description: The address of each host, in the same order (webinfra.stack.host_addresses).
    type: list
    elements: str
    required: true
  hostvars:
    description: The C(hostvars) of the play.
    type: dict
    required: true
  primaries:
    description: The hostnames that are primaries (they read C(mysql_primary_server_id)).
    type: list
    elements: str
    default: []
  overrides:
    description: Ids that win over the inventory's, by hostname (the calling host's own setting).
    type: dict
    default: {}
"""

EXAMPLES = r"""
- name: Work out the ids of the whole tier
  ansible.builtin.set_fact:
    ids: >-
      {{ tier | webinfra.stack.server_ids(tier | webinfra.stack.host_addresses(hostvars),
                                          hostvars, groups['db_primary']) }}
  vars:
    tier: "{{ groups['db_primary'] + groups['db_replicas'] }}"
"""

RETURN = r"""
_value:
  description: Hostname to server id.
  type: dict
"""


def _explicit(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError) as exc:
        raise AnsibleFilterError(
            f"server_ids: a server id must be a number, got {value!r}"
        ) from exc


def derived_id(address: str) -> int:
    """The id an address stands for when none is set."""
    ip = ipaddress.ip_address(address)
    if ip.version == 4:
        return int(ip)
    return int(hashlib.sha1(address.encode()).hexdigest()[:8], 16) % 4294967294 + 1


def server_ids(
    hosts: Iterable[str],
    addresses: Iterable[str],
    hostvars: Mapping[str, Mapping[str, Any]],
    primaries: Iterable[str] = (),
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, int]:
    """Hostname -> server id for every host, in the order given (duplicates dropped)."""
    if isinstance(hosts, str):
        raise AnsibleFilterError("server_ids expects a list of hostnames, not a string")
    names = list(hosts)
    address_of = dict(zip(names, list(addresses), strict=True))
    primary_set = set(primaries)
    given = dict(overrides or {})
    ids: dict[str, int] = {}
    for host in names:
        if host in ids:
            continue
        if host in given:
            explicit = _explicit(given[host])
        else:
            key = "mysql_primary_server_id" if host in primary_set else "mysql_replica_server_id"
            explicit = _explicit(hostvars.get(host, {}).get(key, 0))
        ids[host] = explicit if explicit > 0 else derived_id(address_of[host])
    return ids


__all__ = ["AnsibleFilterError", "FilterModule", "derived_id", "server_ids"]


class FilterModule:
    """webinfra.stack server id filter."""

    def filters(self) -> dict[str, Any]:
        return {"server_ids": server_ids}
