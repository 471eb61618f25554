"""The training engine: a small loop with atomic checkpoints, resume, CSV logs and non-finite guards.
It knows nothing of a particular experiment beyond the ``step`` callable it is given."""

from .checkpoint import load_checkpoint, save_checkpoint
from .logger import CSVLogger
from .loop import TrainConfig, fit

__all__ = ["save_checkpoint", "load_checkpoint", "CSVLogger", "TrainConfig", "fit"]
