"""Kept for existing imports: the safe loader lives in ``mlopsctl.loading``."""

from mlopsctl.loading import *  # noqa: F403
from mlopsctl.loading import __all__  # noqa: F401
