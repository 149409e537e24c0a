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
from ._logging import LoggingObserver as LoggingObserver
from ._map import MapPrimitive as MapPrimitive
from ._observe import BreakerStateChange as BreakerStateChange
from ._observe import CacheExpiry as CacheExpiry
from ._observe import CacheHit as CacheHit
from ._observe import CacheMiss as CacheMiss
from ._observe import FallbackTaken as FallbackTaken
from ._observe import Observer as Observer
from ._observe import PrimitiveEnd as PrimitiveEnd
from ._observe import PrimitiveStart as PrimitiveStart
from ._observe import RetryAttempt as RetryAttempt
from ._observe import RetryBackoff as RetryBackoff
from ._observe import RouteChosen as RouteChosen
from ._observe import TimeoutFired as TimeoutFired
from ._observe import WorkflowEvent as WorkflowEvent
from ._observe import add_observer as add_observer
from ._observe import remove_observer as remove_observer
from ._race import RacePrimitive as RacePrimitive
from ._rate_limit import RateLimitPrimitive as RateLimitPrimitive
from ._retry import RetryPrimitive as RetryPrimitive
from ._retry import RetryStrategy as RetryStrategy
from ._timeout import TimeoutPrimitive as TimeoutPrimitive

__version__ = "0.1.0"

__all__ = [
    "BreakerStateChange",
    "CacheExpiry",
    "CacheHit",
    "CacheMiss",
    "CachePrimitive",
    "CacheStats",
    "CircuitBreakerConfig",
    "CircuitBreakerError",
    "CircuitBreakerPrimitive",
    "CircuitState",
    "CompensationPrimitive",
    "ConditionalPrimitive",
    "FallbackPrimitive",
    "FallbackTaken",
    "LambdaPrimitive",
    "LoggingObserver",
    "MapPrimitive",
    "Observer",
    "ParallelPrimitive",
    "PrimitiveEnd",
    "PrimitiveStart",
    "PrimitiveTimeoutError",
    "RacePrimitive",
    "RateLimitPrimitive",
    "RetryAttempt",
    "RetryBackoff",
    "RetryPrimitive",
    "RetryStrategy",
    "RouteChosen",
    "RouteNotFoundError",
    "RouterPrimitive",
    "SequentialPrimitive",
    "TimeoutFired",
    "TimeoutPrimitive",
    "WorkflowContext",
    "WorkflowEvent",
    "WorkflowPrimitive",
    "add_observer",
    "hold_run",
    "remove_observer",
]

for _name in __all__:  # reprs, tracebacks and pickle all say trio_primitives.X
    globals()[_name].__module__ = __name__
del _name
