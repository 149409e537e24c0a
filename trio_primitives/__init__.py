"""trio_primitives: composable async workflow primitives on trio's structured concurrency."""

from ._base import WorkflowPrimitive as WorkflowPrimitive
from ._base import hold_run as hold_run
from ._breaker import CircuitBreakerConfig as CircuitBreakerConfig
from ._breaker import CircuitBreakerError as CircuitBreakerError
from ._breaker import CircuitBreakerPrimitive as CircuitBreakerPrimitive
from ._breaker import CircuitState as CircuitState
from ._cache import CachePrimitive as CachePrimitive
from ._cache import CacheStats as CacheStats
from ._compensation import CompensationPrimitive as CompensationPrimitive
from ._compose import ParallelPrimitive as ParallelPrimitive
from ._compose import SequentialPrimitive as SequentialPrimitive
from ._context import WorkflowContext as WorkflowContext
from ._control import ConditionalPrimitive as ConditionalPrimitive
from ._control import RouteNotFoundError as RouteNotFoundError
from ._control import RouterPrimitive as RouterPrimitive
from ._errors import PrimitiveTimeoutError as PrimitiveTimeoutError
from ._fallback import FallbackPrimitive as FallbackPrimitive
from ._lambda import LambdaPrimitive as LambdaPrimitive
from ._map import MapPrimitive as MapPrimitive
from ._race import RacePrimitive as RacePrimitive
from ._rate_limit import RateLimitPrimitive as RateLimitPrimitive
from ._retry import RetryPrimitive as RetryPrimitive
from ._retry import RetryStrategy as RetryStrategy
from ._timeout import TimeoutPrimitive as TimeoutPrimitive

__version__ = "0.1.0"

__all__ = [
    "CachePrimitive",
    "CacheStats",
    "CircuitBreakerConfig",
    "CircuitBreakerError",
    "CircuitBreakerPrimitive",
    "CircuitState",
    "CompensationPrimitive",
    "ConditionalPrimitive",
    "FallbackPrimitive",
    "LambdaPrimitive",
    "MapPrimitive",
    "ParallelPrimitive",
    "PrimitiveTimeoutError",
    "RacePrimitive",
    "RateLimitPrimitive",
    "RetryPrimitive",
    "RetryStrategy",
    "RouteNotFoundError",
    "RouterPrimitive",
    "SequentialPrimitive",
    "TimeoutPrimitive",
    "WorkflowContext",
    "WorkflowPrimitive",
    "hold_run",
]

for _name in __all__:  # reprs, tracebacks and pickle all say trio_primitives.X
    globals()[_name].__module__ = __name__
del _name
