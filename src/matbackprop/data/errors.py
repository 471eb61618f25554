"""The error a reader raises for a file it cannot decode."""

from __future__ import annotations

from pathlib import Path

__all__ = ["CorruptFileError"]


class CorruptFileError(ValueError):
    """A data file exists but cannot be read (truncated, garbage, wrong fields or sizes).

    A ``ValueError`` (so older ``except ValueError`` handlers still catch it) whose message starts
    with the reason and names the file; ``path`` holds the file, so a caller that skips corrupt
    samples (``--skip-corrupt``) can report which ones.
    """

    def __init__(self, path: str | Path, message: str) -> None:
        self.path = Path(path)
        super().__init__(message)
