"""The output of every renderer: one finished file, ready to store, hash, mail or download.

Renderers (PDF, e-invoice XML, DATEV) return this instead of writing to disk, so that the caller
decides where the bytes go and can hash exactly what it stores (GoBD).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class RenderedFile:
    """A rendered document: the file name to offer, its MIME type and its exact bytes."""

    filename: str
    mimetype: str
    content: bytes

    @property
    def sha256(self) -> str:
        """Hex digest of `content`, the value stored next to an issued invoice."""
        return hashlib.sha256(self.content).hexdigest()
