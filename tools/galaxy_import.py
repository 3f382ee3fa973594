"""Check a built collection as Galaxy does on an upload, and its plugin docs.

    python tools/galaxy_import.py .cache/build/webinfra-stack-1.0.0.tar.gz

1. galaxy-importer imports the artefact (ansible-doc on every plugin,
   ansible-lint on the content; ansible-test is off). Galaxy installs no
   dependency before it lints, so neither does this check: only the
   collection itself is visible. Every warning and error it logs counts.
2. ansible-doc, on the extracted artefact, must render DOCUMENTATION,
   EXAMPLES and RETURN for every filter and test the plugin files define.

Exit status 0 only when the importer logged nothing above INFO and every
plugin is documented; the last line gives the counts.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Which method of a plugin file's class lists its plugins, per plugin type.
PLUGIN_TYPES = {"filter": ("FilterModule", "filters"), "test": ("TestModule", "tests")}
IMPORTER_CONFIG = "[galaxy-importer]\nrun_ansible_test = False\n"


@dataclass
class Findings:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    undocumented: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.errors or self.warnings or self.undocumented)

    def summary(self) -> str:
        return (
            f"galaxy-importer: {len(self.errors)} errors, {len(self.warnings)} warnings; "
            f"ansible-doc: {len(self.undocumented)} plugins without full documentation"
        )


class _Collect(logging.Handler):
    """Keeps the importer's warnings and errors, and echoes every record."""

    def __init__(self, findings: Findings) -> None:
        super().__init__(logging.INFO)
        self.findings = findings

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if record.levelno >= logging.ERROR:
            self.findings.errors.append(message)
        elif record.levelno >= logging.WARNING:
            self.findings.warnings.append(message)
        prefix = "" if record.levelno == logging.INFO else f"{record.levelname}: "
        print(f"{prefix}{message}", flush=True)


def galaxy_environment(env: Mapping[str, str]) -> dict[str, str]:
    """The environment of an import on Galaxy: no collection but the one imported."""
    out = dict(env)
    out.pop("ANSIBLE_COLLECTIONS_PATH", None)
    out["ANSIBLE_COLLECTIONS_SCAN_SYS_PATH"] = "False"
    return out


def run_importer(tarball: Path, findings: Findings) -> None:
    """Import the artefact with galaxy-importer, collecting what it logs."""
    from galaxy_importer import collection, config

    with tempfile.TemporaryDirectory(prefix="webinfra-importer-") as tmp:
        cfg_file = Path(tmp) / "galaxy-importer.cfg"
        cfg_file.write_text(IMPORTER_CONFIG, encoding="utf-8")
        os.environ["GALAXY_IMPORTER_CONFIG"] = str(cfg_file)
        cfg = config.Config(config_data=config.ConfigFile.load())
        if cfg.run_ansible_test:
            raise RuntimeError(f"{cfg_file} must turn run_ansible_test off")
        logger = logging.getLogger("webinfra.galaxy_import")
        logger.setLevel(logging.INFO)
        logger.propagate = False
        logger.addHandler(_Collect(findings))
        namespace, name, version = tarball.name.removesuffix(".tar.gz").split("-", 2)
        filename = collection.CollectionFilename(namespace, name, version)
        try:
            with tarball.open("rb") as handle:
                collection.import_collection(handle, filename, logger=logger, cfg=cfg)
        except Exception as exc:  # the importer's own failures are findings too
            findings.errors.append(f"import failed: {exc}")


def plugin_names(plugin_dir: Path, plugin_type: str) -> list[str]:
    """The plugin names the files of one plugin folder define, sorted."""
    class_name, method = PLUGIN_TYPES[plugin_type]
    names: list[str] = []
    for path in sorted(plugin_dir.glob("*.py")):
        spec = importlib.util.spec_from_file_location(f"_webinfra_{plugin_type}_{path.stem}", path)
        if spec is None or spec.loader is None:
            continue
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        plugin_class = getattr(module, class_name, None)
        if plugin_class is not None:
            names.extend(getattr(plugin_class(), method)())
    return sorted(names)


def doc_problems(doc_json: Mapping[str, Any], fqcn: str) -> list[str]:
    """What ansible-doc's JSON lacks for one plugin: an empty list when complete."""
    entry = doc_json.get(fqcn)
    if not isinstance(entry, Mapping):
        return [f"{fqcn}: ansible-doc returned nothing"]
    problems = []
    doc = entry.get("doc")
    if not isinstance(doc, Mapping) or not doc.get("short_description"):
        problems.append(f"{fqcn}: no DOCUMENTATION (short_description)")
    if not entry.get("examples"):
        problems.append(f"{fqcn}: no EXAMPLES")
    if not entry.get("return"):
        problems.append(f"{fqcn}: no RETURN")
    return problems


def check_docs(tarball: Path, ansible_doc: str, findings: Findings) -> None:
    """ansible-doc on the extracted artefact documents every filter and test."""
    with tempfile.TemporaryDirectory(prefix="webinfra-docs-") as tmp:
        with tarfile.open(tarball) as archive:
            namespace, name = tarball.name.split("-", 2)[:2]
            root = Path(tmp) / "ansible_collections" / namespace / name
            archive.extractall(root, filter="data")
        env = galaxy_environment(os.environ)
        env["ANSIBLE_COLLECTIONS_PATH"] = tmp
        for plugin_type in PLUGIN_TYPES:
            names = plugin_names(root / "plugins" / plugin_type, plugin_type)
            fqcns = [f"{namespace}.{name}.{n}" for n in names]
            for fqcn in fqcns:
                findings.undocumented.extend(
                    ansible_doc_problems(ansible_doc, plugin_type, fqcn, env)
                )
            print(f"ansible-doc -t {plugin_type}: {len(fqcns)} plugins checked", flush=True)


def ansible_doc_problems(
    ansible_doc: str, plugin_type: str, fqcn: str, env: Mapping[str, str]
) -> list[str]:
    """Run ansible-doc on one plugin (one failure must not hide the others)."""
    result = subprocess.run(
        [ansible_doc, "-t", plugin_type, "--json", fqcn],
        env=dict(env),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        return [f"{fqcn}: {result.stderr.strip() or 'ansible-doc failed'}"]
    return doc_problems(json.loads(result.stdout), fqcn)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tarball", type=Path)
    args = parser.parse_args(argv)
    bin_dir = Path(sys.executable).parent
    ansible_doc = (
        str(bin_dir / "ansible-doc") if (bin_dir / "ansible-doc").exists() else "ansible-doc"
    )
    # The importer runs ansible-doc and ansible-lint from PATH, like Galaxy.
    isolated = galaxy_environment(os.environ)
    os.environ.clear()
    os.environ.update(isolated)
    os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
    findings = Findings()
    run_importer(args.tarball, findings)
    check_docs(args.tarball, ansible_doc, findings)
    for line in findings.undocumented:
        print(f"UNDOCUMENTED: {line}", flush=True)
    print(findings.summary(), flush=True)
    return 0 if findings.ok else 1


if __name__ == "__main__":
    sys.exit(main())
