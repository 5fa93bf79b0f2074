"""adapt: few-shot cross-embodiment adaptation of World Action Models.

The CLI (`adapt ...`) is a thin shell over these functions. Importing `adapt` stays light (no torch):
heavy modules load inside the functions that need them.
"""

from adapt.embodiment import EmbodimentSpec, load_embodiment
from adapt.errors import AdaptError

__version__ = "0.1.0"
__all__ = ["AdaptError", "EmbodimentSpec", "load_embodiment"]
