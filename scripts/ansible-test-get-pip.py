"""Stand-in for the pip bootstrap script ansible-test downloads.

ansible-test creates each sanity test's virtualenv without pip and runs a
"get-pip" script from its CI file host to install it. That host is not
reachable here, so run-tests copies this file into ansible-test's cache.
It bootstraps the interpreter's bundled pip with ensurepip, points the
virtualenv's pip at the system CA bundle (ansible-test scrubs the
environment, so PIP_CERT does not reach it), then installs what
ansible-test asked for (pip at its pinned version) from PyPI.
"""

from __future__ import annotations

import ensurepip
import os
import subprocess
import sys
from pathlib import Path

# get-pip options that mean "do not add setuptools/wheel"; pip knows neither.
GET_PIP_ONLY = {"--no-setuptools", "--no-wheel"}
CA_BUNDLES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt")


def write_venv_pip_conf(prefix: Path) -> None:
    bundle = next((b for b in CA_BUNDLES if os.path.isfile(b)), None)
    if bundle:
        (prefix / "pip.conf").write_text(f"[global]\ncert = {bundle}\n", encoding="utf-8")


def main() -> int:
    config_file = os.environ.get("PIP_CONFIG_FILE")
    ensurepip.bootstrap(upgrade=True)
    # ensurepip points PIP_CONFIG_FILE at /dev/null for its own run; undo it.
    if config_file is None:
        os.environ.pop("PIP_CONFIG_FILE", None)
    else:
        os.environ["PIP_CONFIG_FILE"] = config_file
    write_venv_pip_conf(Path(sys.prefix))
    args = [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY]
    return subprocess.call([sys.executable, "-m", "pip", "install", "--upgrade", *args])


if __name__ == "__main__":
    sys.exit(main())
