"""The training engine: a small loop with atomic checkpoints, exact (mid-epoch) resume, CSV logs,
non-finite guards and data-parallel training under torchrun. It knows nothing of a particular
experiment beyond the ``step`` and ``batches`` callables it is given."""

from .._extras import require

require("tqdm", extra="experiments", feature="matbackprop.train")  # the loop's progress bars

from . import distributed  # noqa: E402  (after the dependency check, so a missing extra is named)
from .checkpoint import UnsafeCheckpointError, load_checkpoint, save_checkpoint  # noqa: E402
from .logger import CSVLogger  # noqa: E402
from .loop import TrainConfig, fit  # noqa: E402

__all__ = [
    "save_checkpoint",
    "load_checkpoint",
    "UnsafeCheckpointError",
    "CSVLogger",
    "TrainConfig",
    "fit",
    "distributed",
]
