"""The README tells a new user what the example inventory really asks for."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VAULT_NAME = re.compile(r"\bvault_[a-z0-9_]+\b")


def test_the_secrets_table_names_exactly_the_example_vault_variables() -> None:
    files = sorted((ROOT / "inventory" / "example").rglob("*.yml"))
    example = "".join(p.read_text(encoding="utf-8") for p in files)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = [line for line in readme.splitlines() if line.lstrip().startswith("| `vault_")]
    in_table = {VAULT_NAME.findall(line)[0] for line in table}
    assert in_table == set(VAULT_NAME.findall(example))


def test_requirements_list_only_what_the_roles_and_playbooks_use() -> None:
    requirements = (ROOT / "requirements.yml").read_text(encoding="utf-8")
    listed = set(re.findall(r"name: ([a-z_]+\.[a-z_]+)", requirements))
    used: set[str] = set()
    for folder in ("roles", "playbooks"):
        for path in (ROOT / folder).rglob("*.yml"):
            used.update(re.findall(r"\b(ansible\.posix|community\.[a-z_]+)\.", path.read_text()))
    assert listed == used
