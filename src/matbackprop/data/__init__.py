from .bsds500 import BSDS500
