"""``nn.Module`` shells over the functional layers: they hold parameters and options, nothing else."""

from .ncut import NormalizedCut
from .o2p import SecondOrderPooling
from .spd import BiMap, LogEig, ReEig, SPDBatchNorm

__all__ = ["SecondOrderPooling", "BiMap", "ReEig", "LogEig", "SPDBatchNorm", "NormalizedCut"]
