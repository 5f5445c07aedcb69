"""The delivery tests use the same sample snapshots as tests/einvoice."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "einvoice"))
