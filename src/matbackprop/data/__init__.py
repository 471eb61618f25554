from .bsds500 import BSDS500
from .errors import CorruptFileError
