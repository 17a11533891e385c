"""The embedded testbed: a known target distribution for self-play (see target.py)."""

from .target import MarkovTarget, make_target

__all__ = ["MarkovTarget", "make_target"]
