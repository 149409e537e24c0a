"""LoggingObserver: one stdlib ``logging`` record per workflow event (CONTRACT section 16)."""

from __future__ import annotations

import logging
import reprlib
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Final, final

from ._observe import (
    BreakerStateChange,
    CacheExpiry,
    CacheHit,
    CacheMiss,
    FallbackTaken,
    PrimitiveEnd,
    PrimitiveStart,
    RetryAttempt,
    RetryBackoff,
    RouteChosen,
    TimeoutFired,
    WorkflowEvent,
    name_of,
)

#: The logger a LoggingObserver writes to unless told otherwise.
DEFAULT_LOGGER: Final = "trio_primitives.events"

# Built-in levels. INFO: the workflow adapted (a retry, a deadline, a
# fallback, a breaker moving), WARNING: a workflow failed; the rest traces.
_DEBUG, _INFO, _WARNING = logging.DEBUG, logging.INFO, logging.WARNING
_DEFAULT_LEVELS: Final[Mapping[str, int]] = MappingProxyType(
    {
        "primitive.start": _DEBUG,
        "primitive.end": _DEBUG,
        "primitive.error": _DEBUG,
        "workflow.error": _WARNING,
        "retry.attempt": _DEBUG,
        "retry.backoff": _INFO,
        "timeout.fired": _INFO,
        "fallback.taken": _INFO,
        "cache.hit": _DEBUG,
        "cache.miss": _DEBUG,
        "cache.expiry": _DEBUG,
        "breaker.state_change": _INFO,
        "route.chosen": _DEBUG,
    }
)

# Keys and route keys may hold user data: only a bounded reprlib form is logged.
_KEYS = reprlib.Repr()
# Exceptions in messages: long enough for a real message, bounded all the same
# (the structured field has the whole text). reprlib also survives a __repr__
# that raises, which would otherwise get the observer removed.
_ERRORS = reprlib.Repr()
_ERRORS.maxother = 160


def _level(value: object, where: str) -> int:
    """*value* as a logging level: a positive int or a level name."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        msg = (
            f"{where} must be a logging level, an int such as logging.INFO or "
            f"a level name such as 'INFO', got {type(value).__qualname__} "
            f"({value!r})"
        )
        raise TypeError(msg)
    if isinstance(value, str):
        number = logging.getLevelNamesMapping().get(value.upper())
        if number is None or number <= 0:
            names = ", ".join(
                name
                for name, known in logging.getLevelNamesMapping().items()
                if known > 0
            )
            msg = f"{where}: unknown level name {value!r}; use one of {names}"
            raise ValueError(msg)
        return number
    if value <= 0:
        msg = (
            f"{where} must be a positive logging level, got {value!r} (NOTSET "
            f"and below log nothing useful); use e.g. logging.DEBUG"
        )
        raise ValueError(msg)
    return value


def _logger_of(logger: object) -> logging.Logger:
    if logger is None:
        return logging.getLogger(DEFAULT_LOGGER)
    if isinstance(logger, str):
        return logging.getLogger(logger)
    if isinstance(logger, logging.Logger):
        return logger
    if isinstance(logger, logging.LoggerAdapter):
        hint = (
            "a LoggerAdapter replaces a record's extra fields with its own; "
            "pass its underlying logger (adapter.logger) instead"
        )
    else:
        hint = f"e.g. LoggingObserver({DEFAULT_LOGGER!r})"
    msg = (
        f"LoggingObserver logger must be a logging.Logger, a logger name or None "
        f"(the {DEFAULT_LOGGER!r} logger), got {type(logger).__qualname__} "
        f"({logger!r}); {hint}"
    )
    raise TypeError(msg)


def _error_type(exc: BaseException) -> str:
    kind = type(exc)
    if kind.__module__ == "builtins":
        return kind.__qualname__
    return f"{kind.__module__}.{kind.__qualname__}"


def _error_message(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # a broken __str__ must not get the observer removed
        return _ERRORS.repr(exc)


def _error_fields(exc: BaseException) -> dict[str, Any]:
    return {"tp_error_type": _error_type(exc), "tp_error_message": _error_message(exc)}


def _seconds(value: float) -> str:
    """A configured (or drawn) number of seconds, readable: 1.5, 60, 1.235."""
    return f"{value:.3f}".rstrip("0").rstrip(".")


def _state(state: object) -> str:
    value = getattr(state, "value", state)
    return value if isinstance(value, str) else str(value)


@final
class LoggingObserver:
    """Log each workflow event as one stdlib `logging` record, with structured fields.

    Attach it like any observer: ``WorkflowContext(observers=[LoggingObserver()])``
    for one run, or ``add_observer(LoggingObserver())`` for every call. Records
    go to *logger*: a `logging.Logger`, a logger name, or None for the
    ``trio_primitives.events`` logger. Neither importing the package nor
    constructing the observer touches logging's configuration (no handler, no
    level): to see the records, configure logging as usual, e.g.
    ``logging.basicConfig(level=logging.DEBUG)``.

    Each record has a readable message (``"fetch ended ok in 0.250 s"``,
    ``"RetryPrimitive attempt 1 of 3 failed with ValueError('x'); retrying in
    1.5 s"``, ``"CircuitBreakerPrimitive state closed -> open"``) built from a
    %-template and ``args``, so tools that group records by template do, and
    fields in the record's ``__dict__`` (logging's ``extra=``) for a JSON
    formatter or a `logging.Filter` to read. Every field name starts with
    ``tp_`` (for trio_primitives), so none clashes with a `logging.LogRecord`
    attribute or with another library's fields; every value is a str, an int,
    a float, a bool or None, so any JSON encoder takes it.

    Fields of every record:

    - ``tp_event``: the event kind, a stable string: ``"primitive.start"``,
      ``"primitive.end"``, ``"retry.attempt"``, ``"retry.backoff"``,
      ``"timeout.fired"``, ``"fallback.taken"``, ``"cache.hit"``,
      ``"cache.miss"``, ``"cache.expiry"``, ``"breaker.state_change"``,
      ``"route.chosen"``.
    - ``tp_primitive``: the event's ``name`` (the function's name for a
      LambdaPrimitive, else the class name); ``tp_primitive_type``: the
      primitive's class name.
    - ``tp_workflow_id``, ``tp_correlation_id``: from the call's context.
    - ``tp_call_id``, ``tp_parent_id``: the call and its enclosing call
      (None for the outermost), to rebuild the tree of calls.

    Fields by kind:

    - ``primitive.end``: ``tp_outcome`` (``"ok"``, ``"error"`` or
      ``"cancelled"``) and ``tp_duration`` (seconds on trio's clock); on
      ``"error"``, ``tp_error_type`` (``"ValueError"``, or module-qualified
      outside builtins: ``"trio_primitives.PrimitiveTimeoutError"``) and
      ``tp_error_message`` (``str(exception)``).
    - ``retry.attempt``: ``tp_attempt`` (from 1), ``tp_max_attempts``.
    - ``retry.backoff``: ``tp_attempt`` (the one that failed),
      ``tp_max_attempts``, ``tp_delay`` (seconds before the next attempt),
      and the error fields of the failure.
    - ``timeout.fired``: ``tp_limit`` (``"timeout_seconds"``,
      ``"attempt_timeout"`` or ``"total_timeout"``), ``tp_timeout_seconds``.
    - ``fallback.taken``: ``tp_fallback`` (the name of the primitive that
      runs next, None for a TimeoutPrimitive's ``default``),
      ``tp_fallback_index`` (1 for the first fallback), and the error fields
      of the failure that caused it.
    - ``cache.hit``, ``cache.miss``, ``cache.expiry``: ``tp_key``.
    - ``breaker.state_change``: ``tp_old_state``, ``tp_new_state``
      (``"closed"``, ``"open"``, ``"half_open"``).
    - ``route.chosen``: ``tp_route`` (a str route as is, another as its
      repr), ``tp_route_key`` (what the router function or condition
      returned), ``tp_target`` (the name of the primitive that runs, None
      when a ConditionalPrimitive passes its input through), ``tp_default``
      (whether the router's default route runs).

    Privacy: inputs and results are never logged, since they may hold
    personal data. Cache keys and router keys, which may be derived from
    them, appear only as a `reprlib` repr, cut to a few dozen characters.
    Exception messages are logged, as logging usually does.

    Levels are chosen per *level key*: the event kinds above, except that a
    ``primitive.end`` record with outcome ``"error"`` is keyed
    ``"workflow.error"`` for the outermost call (its ``parent_id`` is None:
    the workflow failed) and ``"primitive.error"`` for any other call (the
    failure may yet be retried or fallen back from; the retry and fallback
    records say so). Defaults:

    - WARNING: ``workflow.error``;
    - INFO: ``retry.backoff``, ``timeout.fired``, ``fallback.taken``,
      ``breaker.state_change``, the moments a workflow adapts;
    - DEBUG: everything else: ``primitive.start``, ``primitive.end``,
      ``primitive.error``, ``retry.attempt``, the cache kinds,
      ``route.chosen``.

    *level* puts every key at one level; *levels* then sets single keys, e.g.
    ``levels={"breaker.state_change": "WARNING"}``. A cancelled call (a
    timeout around it, a failing sibling, an outer cancel scope) is not a
    failure: its end is logged at the ``primitive.end`` level, never as an
    error, and without a traceback.

    Tracebacks: one failure travels up through every enclosing call, each
    ending with the same exception. Only the record of the outermost failed
    call carries it as ``exc_info``, with the traceback complete by then, so
    a traceback is printed once per failed workflow; the records of the inner
    calls name the exception's type and message only. ``tracebacks=False``
    attaches none.

    Cost: each event first asks ``logger.isEnabledFor(level)``, so an
    observer whose records would be dropped (a logger left at WARNING, or
    `logging.disable`) builds no message and no fields. Records are written
    synchronously, in the trio task of the call, by the logger's handlers: a
    handler that blocks (a network log sink) should sit behind a
    `logging.handlers.QueueHandler`.

    On cancellation: nothing to do; ``on_event`` is synchronous and never
    awaits. The observer keeps no state between events, so one instance may
    serve many workflows, runs and threads at once.

    Args:
        logger: a `logging.Logger`, a logger name (``""`` is the root
            logger), or None for ``logging.getLogger("trio_primitives.events")``.
        level: when given, the level of every record, before *levels*.
        levels: levels of single level keys, overriding the defaults and
            *level*. Levels are ints (``logging.INFO``) or names (``"INFO"``,
            any case).
        tracebacks: whether the record of a failed outermost call carries
            the exception as ``exc_info``.

    Raises:
        TypeError: for a *logger* that is neither a Logger, a str nor None (a
            `logging.LoggerAdapter` included: it would replace the fields),
            a level that is not an int or a str, a *levels* that is not a
            mapping, or a non-bool *tracebacks*.
        ValueError: for an unknown level name, a level below 1, or an unknown
            key in *levels*.
    """

    __slots__ = ("_levels", "_logger", "_tracebacks")

    #: The level of each level key unless *level* or *levels* say otherwise.
    DEFAULT_LEVELS: Final[Mapping[str, int]] = _DEFAULT_LEVELS

    def __init__(
        self,
        logger: logging.Logger | str | None = None,
        *,
        level: int | str | None = None,
        levels: Mapping[str, int | str] | None = None,
        tracebacks: bool = True,
    ) -> None:
        self._logger = _logger_of(logger)
        chosen = dict(_DEFAULT_LEVELS)
        if level is not None:
            number = _level(level, "LoggingObserver level")
            chosen = dict.fromkeys(chosen, number)
        if levels is not None:
            if not isinstance(levels, Mapping):
                msg = (
                    f"LoggingObserver levels must be a mapping of level keys to "
                    f"levels, got {type(levels).__qualname__} ({levels!r}); e.g. "
                    f'levels={{"retry.backoff": logging.WARNING}}'
                )
                raise TypeError(msg)
            for key, value in levels.items():
                if key not in chosen:
                    known = ", ".join(map(repr, _DEFAULT_LEVELS))
                    msg = (
                        f"LoggingObserver levels: unknown level key {key!r}; "
                        f"the keys are {known}"
                    )
                    raise ValueError(msg)
                chosen[key] = _level(value, f"LoggingObserver levels[{key!r}]")
        if not isinstance(tracebacks, bool):
            msg = (
                f"LoggingObserver tracebacks must be True or False, got {tracebacks!r}"
            )
            raise TypeError(msg)
        self._levels: Mapping[str, int] = MappingProxyType(chosen)
        self._tracebacks = tracebacks

    @property
    def logger(self) -> logging.Logger:
        """The logger the records go to."""
        return self._logger

    @property
    def levels(self) -> Mapping[str, int]:
        """The level of each level key (read-only), defaults and overrides applied."""
        return self._levels

    @property
    def tracebacks(self) -> bool:
        """Whether the record of a failed outermost call carries the exception."""
        return self._tracebacks

    def __repr__(self) -> str:
        return f"LoggingObserver(logger={self._logger.name!r})"

    def on_event(self, event: WorkflowEvent) -> None:
        """Log *event* as one record, unless the logger drops its level.

        Events of a kind this class does not know (none today) are ignored.
        """
        handler = _HANDLERS.get(type(event))
        if handler is not None:
            handler(self, event)

    # --- One method per event kind ----------------------------------------

    def _log(
        self,
        level: int,
        kind: str,
        event: WorkflowEvent,
        msg: str,
        args: tuple[object, ...],
        fields: dict[str, Any] | None = None,
        exc_info: BaseException | None = None,
    ) -> None:
        context = event.context
        extra: dict[str, Any] = {
            "tp_event": kind,
            "tp_primitive": event.name,
            "tp_primitive_type": type(event.primitive).__qualname__,
            "tp_workflow_id": context.workflow_id,
            "tp_correlation_id": context.correlation_id,
            "tp_call_id": event.call_id,
            "tp_parent_id": event.parent_id,
        }
        if fields:
            extra.update(fields)
        self._logger.log(level, msg, *args, extra=extra, exc_info=exc_info)

    def _start(self, event: PrimitiveStart) -> None:
        level = self._levels["primitive.start"]
        if self._logger.isEnabledFor(level):
            self._log(level, "primitive.start", event, "%s started", (event.name,))

    def _end(self, event: PrimitiveEnd) -> None:
        outcome = event.outcome
        exception = event.exception
        if outcome == "error":
            outermost = event.parent_id is None
            level = self._levels["workflow.error" if outermost else "primitive.error"]
            if not self._logger.isEnabledFor(level):
                return
            fields: dict[str, Any] = {
                "tp_outcome": outcome,
                "tp_duration": event.duration,
            }
            if exception is not None:
                fields.update(_error_fields(exception))
            self._log(
                level,
                "primitive.end",
                event,
                "%s ended with error %s in %.3f s",
                (event.name, _ERRORS.repr(exception), event.duration),
                fields,
                exception if outermost and self._tracebacks else None,
            )
            return
        level = self._levels["primitive.end"]
        if not self._logger.isEnabledFor(level):
            return
        template = (
            "%s was cancelled after %.3f s"
            if outcome == "cancelled"
            else "%s ended ok in %.3f s"
        )
        self._log(
            level,
            "primitive.end",
            event,
            template,
            (event.name, event.duration),
            {"tp_outcome": outcome, "tp_duration": event.duration},
        )

    def _retry_attempt(self, event: RetryAttempt) -> None:
        level = self._levels["retry.attempt"]
        if self._logger.isEnabledFor(level):
            self._log(
                level,
                "retry.attempt",
                event,
                "%s attempt %d of %d",
                (event.name, event.attempt, event.max_attempts),
                {"tp_attempt": event.attempt, "tp_max_attempts": event.max_attempts},
            )

    def _retry_backoff(self, event: RetryBackoff) -> None:
        level = self._levels["retry.backoff"]
        if not self._logger.isEnabledFor(level):
            return
        # The event does not carry the attempt budget; a RetryPrimitive does.
        most = getattr(event.primitive, "max_attempts", None)
        if isinstance(most, bool) or not isinstance(most, int):
            most = None
        fields: dict[str, Any] = {
            "tp_attempt": event.attempt,
            "tp_max_attempts": most,
            "tp_delay": event.delay,
        }
        fields.update(_error_fields(event.exception))
        error = _ERRORS.repr(event.exception)
        delay = _seconds(event.delay)
        if most is None:
            template = "%s attempt %d failed with %s; retrying in %s s"
            args: tuple[object, ...] = (event.name, event.attempt, error, delay)
        else:
            template = "%s attempt %d of %d failed with %s; retrying in %s s"
            args = (event.name, event.attempt, most, error, delay)
        self._log(level, "retry.backoff", event, template, args, fields)

    def _timeout_fired(self, event: TimeoutFired) -> None:
        level = self._levels["timeout.fired"]
        if self._logger.isEnabledFor(level):
            self._log(
                level,
                "timeout.fired",
                event,
                "%s deadline fired: %s=%s s",
                (event.name, event.limit, _seconds(event.timeout_seconds)),
                {"tp_limit": event.limit, "tp_timeout_seconds": event.timeout_seconds},
            )

    def _fallback_taken(self, event: FallbackTaken) -> None:
        level = self._levels["fallback.taken"]
        if not self._logger.isEnabledFor(level):
            return
        error = _ERRORS.repr(event.exception)
        fallback = None if event.fallback is None else name_of(event.fallback)
        fields: dict[str, Any] = {
            "tp_fallback": fallback,
            "tp_fallback_index": event.index,
        }
        fields.update(_error_fields(event.exception))
        if fallback is None:
            template = "%s answered with its default after %s"
            args: tuple[object, ...] = (event.name, error)
        else:
            template = "%s fell back to %s (fallback %d) after %s"
            args = (event.name, fallback, event.index, error)
        self._log(level, "fallback.taken", event, template, args, fields)

    def _cache(self, event: CacheHit | CacheMiss | CacheExpiry) -> None:
        kind, template = _CACHE[type(event)]
        level = self._levels[kind]
        if self._logger.isEnabledFor(level):
            key = _KEYS.repr(event.key)
            self._log(level, kind, event, template, (event.name, key), {"tp_key": key})

    def _breaker(self, event: BreakerStateChange) -> None:
        level = self._levels["breaker.state_change"]
        if self._logger.isEnabledFor(level):
            old, new = _state(event.old_state), _state(event.new_state)
            self._log(
                level,
                "breaker.state_change",
                event,
                "%s state %s -> %s",
                (event.name, old, new),
                {"tp_old_state": old, "tp_new_state": new},
            )

    def _route(self, event: RouteChosen) -> None:
        level = self._levels["route.chosen"]
        if not self._logger.isEnabledFor(level):
            return
        route = event.route
        shown = _KEYS.repr(route)
        key = _KEYS.repr(event.key)
        fields = {
            "tp_route": route if isinstance(route, str) else shown,
            "tp_route_key": key,
            "tp_target": None if event.target is None else name_of(event.target),
            "tp_default": event.default,
        }
        if event.default:
            template = "%s chose default route %s for key %s"
            args: tuple[object, ...] = (event.name, shown, key)
        else:
            template = "%s chose route %s"
            args = (event.name, shown)
        self._log(level, "route.chosen", event, template, args, fields)


_CACHE: Final[Mapping[type[WorkflowEvent], tuple[str, str]]] = {
    CacheHit: ("cache.hit", "%s hit for key %s"),
    CacheMiss: ("cache.miss", "%s miss for key %s"),
    CacheExpiry: ("cache.expiry", "%s entry for key %s expired"),
}

_HANDLERS: Final[
    Mapping[type[WorkflowEvent], Callable[[LoggingObserver, Any], None]]
] = {
    PrimitiveStart: LoggingObserver._start,
    PrimitiveEnd: LoggingObserver._end,
    RetryAttempt: LoggingObserver._retry_attempt,
    RetryBackoff: LoggingObserver._retry_backoff,
    TimeoutFired: LoggingObserver._timeout_fired,
    FallbackTaken: LoggingObserver._fallback_taken,
    CacheHit: LoggingObserver._cache,
    CacheMiss: LoggingObserver._cache,
    CacheExpiry: LoggingObserver._cache,
    BreakerStateChange: LoggingObserver._breaker,
    RouteChosen: LoggingObserver._route,
}
