"""Metrics to CSV (always) and TensorBoard (when installed)."""

from __future__ import annotations

import csv
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["CSVLogger"]


class CSVLogger:
    """Append rows of scalars to ``path``; the header is the first row's keys (new keys extend it).

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from matbackprop.train import CSVLogger
        >>> path = Path(tempfile.mkdtemp()) / "log.csv"
        >>> log = CSVLogger(path)
        >>> log.log({"epoch": 0, "loss": 0.5})
        >>> log.log({"epoch": 1, "loss": 0.25})
        >>> print(path.read_text().strip())
        epoch,loss
        0,0.5
        1,0.25
    """

    def __init__(self, path: str | Path, tensorboard_dir: str | Path | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fields: list[str] | None = None
        if self.path.exists() and self.path.stat().st_size > 0:
            with open(self.path, newline="") as f:
                self._fields = next(csv.reader(f), None)
        self._writer = None
        if tensorboard_dir is not None:
            try:
                import tensorboard  # noqa: F401  (optional; torch's writer needs it)
                from torch.utils.tensorboard import SummaryWriter

                self._writer = SummaryWriter(str(tensorboard_dir))
            except ImportError:  # tensorboard is optional
                self._writer = None

    def log(self, row: dict[str, Any], step: int | None = None) -> None:
        fields = list(row) if self._fields is None else self._fields + [k for k in row if k not in self._fields]
        if fields != self._fields:
            rows = []
            if self._fields is not None:
                with open(self.path, newline="") as f:
                    rows = list(csv.DictReader(f))
            with open(self.path, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=fields)
                w.writeheader()
                w.writerows(rows)
            self._fields = fields
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, fieldnames=self._fields).writerow(row)
        if self._writer is not None and step is not None:
            for k, v in row.items():
                if isinstance(v, (int, float)):
                    self._writer.add_scalar(k, v, step)

    def keep_only(self, keep: Callable[[dict[str, str]], bool]) -> int:
        """Drop the rows for which ``keep`` is false (atomically); returns how many were dropped.

        A resumed run uses it to forget what the killed run logged after its last checkpoint, since
        that part is trained (and logged) again.
        """
        rows = self.read()
        kept = [r for r in rows if keep(r)]
        if len(kept) < len(rows):
            # rows is not empty here, so the file has a header (read in __init__ or written by log)
            fields = self._fields if self._fields is not None else list(rows[0])
            tmp = self.path.with_name(f".{self.path.name}.tmp")
            with open(tmp, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=fields)
                w.writeheader()
                w.writerows(kept)
            os.replace(tmp, self.path)
        return len(rows) - len(kept)

    def read(self) -> list[dict[str, str]]:
        if not self.path.exists():
            return []
        with open(self.path, newline="") as f:
            return list(csv.DictReader(f))
