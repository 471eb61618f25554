"""The training engine: a small loop with atomic checkpoints, exact (mid-epoch) resume, CSV logs,
non-finite guards and data-parallel training under torchrun. It knows nothing of a particular
experiment beyond the ``step`` and ``batches`` callables it is given."""

from . import distributed
from .checkpoint import load_checkpoint, save_checkpoint
from .logger import CSVLogger
from .loop import TrainConfig, fit

__all__ = ["save_checkpoint", "load_checkpoint", "CSVLogger", "TrainConfig", "fit", "distributed"]
