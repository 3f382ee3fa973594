"""Build files/webinfra_greeting into a wheel, on the controller, offline.

The scenario ships it to the target, where pip installs it with --no-index.
The wheel is written byte for byte the same every time (fixed timestamps),
so shipping it again changes nothing.

    python build_wheel.py OUTPUT_DIR
"""

from __future__ import annotations

import base64
import hashlib
import sys
import zipfile
from pathlib import Path

NAME = "webinfra_greeting"
VERSION = "1.0"
SOURCE = Path(__file__).resolve().parent / "files" / NAME
EPOCH = (2024, 1, 1, 0, 0, 0)


def _record_line(path: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def wheel_files() -> dict[str, bytes]:
    """Archive path -> content of every file of the wheel, RECORD last."""
    dist_info = f"{NAME}-{VERSION}.dist-info"
    files: dict[str, bytes] = {
        f"{NAME}/{p.name}": p.read_bytes() for p in sorted(SOURCE.glob("*.py"))
    }
    files[f"{dist_info}/METADATA"] = (
        f"Metadata-Version: 2.1\nName: webinfra-greeting\nVersion: {VERSION}\n"
        "Summary: Test dependency of the gunicorn_app scenario\n"
    ).encode()
    files[f"{dist_info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: webinfra build_wheel.py\n"
        b"Root-Is-Purelib: true\nTag: py3-none-any\n"
    )
    record = [_record_line(path, data) for path, data in files.items()]
    record.append(f"{dist_info}/RECORD,,")
    files[f"{dist_info}/RECORD"] = ("\n".join(record) + "\n").encode()
    return files


def build(output: Path) -> Path:
    output.mkdir(parents=True, exist_ok=True)
    target = output / f"{NAME}-{VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, data in wheel_files().items():
            info = zipfile.ZipInfo(path, date_time=EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return target


if __name__ == "__main__":
    print(build(Path(sys.argv[1])))
