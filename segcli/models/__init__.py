"""Models: the registry (a leaf the models register into), weights, devices, precision, blocks.

Importing this package registers every model segcli knows (torch-free: specs are data).
"""

from segcli.models import zoo
from segcli.models.blocks import spec as blocks_spec

__all__ = ["blocks_spec", "zoo"]
