"""The seed bench reuses the scenario tests' helpers (tests/mysql_plays.py)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
