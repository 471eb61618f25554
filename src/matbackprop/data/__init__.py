"""Dataset readers (BSDS500, MSRC-v2 regions) and where the data lives (:mod:`.locations`)."""

from .bsds500 import BSDS500
from .errors import CorruptFileError
from .locations import data_dir

__all__ = ["BSDS500", "CorruptFileError", "data_dir"]
