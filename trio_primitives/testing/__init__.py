"""Test support: MockPrimitive and virtual-time helpers for trio_primitives workflows."""

from ._clock import run_virtual as run_virtual
from ._clock import virtual_clock as virtual_clock
from ._mock import MockPrimitive as MockPrimitive

__all__ = ["MockPrimitive", "run_virtual", "virtual_clock"]

for _name in __all__:  # reprs, tracebacks and pickle all say trio_primitives.testing.X
    globals()[_name].__module__ = __name__
del _name
