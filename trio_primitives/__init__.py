"""trio_primitives: composable async workflow primitives on trio's structured concurrency."""

from ._base import WorkflowPrimitive as WorkflowPrimitive
from ._cache import CachePrimitive as CachePrimitive
from ._cache import CacheStats as CacheStats
from ._compose import ParallelPrimitive as ParallelPrimitive
from ._compose import SequentialPrimitive as SequentialPrimitive
from ._context import WorkflowContext as WorkflowContext
from ._errors import PrimitiveTimeoutError as PrimitiveTimeoutError
from ._fallback import FallbackPrimitive as FallbackPrimitive
from ._lambda import LambdaPrimitive as LambdaPrimitive
from ._retry import RetryPrimitive as RetryPrimitive
from ._retry import RetryStrategy as RetryStrategy
from ._timeout import TimeoutPrimitive as TimeoutPrimitive

__version__ = "0.1.0"

__all__ = [
    "CachePrimitive",
    "CacheStats",
    "FallbackPrimitive",
    "LambdaPrimitive",
    "ParallelPrimitive",
    "PrimitiveTimeoutError",
    "RetryPrimitive",
    "RetryStrategy",
    "SequentialPrimitive",
    "TimeoutPrimitive",
    "WorkflowContext",
    "WorkflowPrimitive",
]

for _name in __all__:  # reprs, tracebacks and pickle all say trio_primitives.X
    globals()[_name].__module__ = __name__
del _name
