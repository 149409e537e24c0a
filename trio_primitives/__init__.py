"""trio_primitives: composable async workflow primitives on trio's structured concurrency."""

from ._base import WorkflowPrimitive as WorkflowPrimitive
from ._compose import ParallelPrimitive as ParallelPrimitive
from ._compose import SequentialPrimitive as SequentialPrimitive
from ._context import WorkflowContext as WorkflowContext
from ._errors import PrimitiveTimeoutError as PrimitiveTimeoutError
from ._lambda import LambdaPrimitive as LambdaPrimitive

__version__ = "0.1.0"

__all__ = [
    "LambdaPrimitive",
    "ParallelPrimitive",
    "PrimitiveTimeoutError",
    "SequentialPrimitive",
    "WorkflowContext",
    "WorkflowPrimitive",
]

for _name in __all__:  # reprs, tracebacks and pickle all say trio_primitives.X
    globals()[_name].__module__ = __name__
del _name
