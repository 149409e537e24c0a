"""CachePrimitive: a TTL + LRU cache with single flight, and its clock."""

from __future__ import annotations

import inspect
import math
import numbers
import reprlib
from collections.abc import Awaitable, Callable, Hashable
from types import TracebackType
from typing import TYPE_CHECKING, Any, NoReturn, final

import attrs
import cachetools
import trio

from ._base import (
    In,
    Out,
    Primitive,
    WorkflowPrimitive,
    primitive_validator,
)
from ._clock import TIMELINE
from ._context import WorkflowContext
from ._hooks import Hooks
from ._lambda import Step, describe_callable, run_step, step_of
from ._observe import CacheExpiry, CacheHit, CacheMiss, call_of

_checkpoint_if_cancelled = trio.lowlevel.checkpoint_if_cancelled

if TYPE_CHECKING:
    pass


class _Entries(cachetools.TTLCache[Hashable, Any, float]):
    """A TTLCache on the shared timeline that counts the entries it expires.

    Expirations inside an observed call of *owner* become CacheExpiry events.
    """

    def __init__(self, maxsize: int, ttl: float, owner: object) -> None:
        super().__init__(maxsize, ttl, TIMELINE.now)
        self.expirations = 0
        self.owner = owner

    def expire(self, time: float | None = None) -> list[tuple[Hashable, Any]]:
        expired = super().expire(time)
        self.expirations += len(expired)
        if expired and Hooks.active and (call := call_of(self.owner)) is not None:
            for key, _ in expired:
                call.emit(CacheExpiry, key=key)
        return expired


@attrs.define(eq=False)
class _Flight:
    """One running call of the wrapped primitive, shared by every miss on its key."""

    done: trio.Event | None = None  # created by the first waiter only
    settled: bool = False
    value: Any = None
    error: Exception | None = None
    traceback: TracebackType | None = None


@final
@attrs.frozen
class CacheStats:
    """A snapshot of a CachePrimitive's counters.

    ``hits`` counts calls served from the cache; ``misses`` counts calls that
    found no live entry (concurrent misses that shared one run of the wrapped
    primitive are each a miss); ``expirations`` counts entries removed because
    their TTL ran out; ``size`` is the number of live entries; ``hit_rate`` is
    ``hits / (hits + misses)``, in [0, 1], and 0.0 before any lookup.
    """

    hits: int
    misses: int
    expirations: int
    size: int
    hit_rate: float


_check_primitive = primitive_validator("CachePrimitive")


def _check_key_fn(
    instance: object, attribute: attrs.Attribute[Any], value: object
) -> None:
    if not callable(value):
        hint = (
            "the signature is CachePrimitive(primitive, cache_key_fn, "
            "ttl_seconds=3600.0, max_size=1024), so pass ttl_seconds by keyword"
            if isinstance(value, numbers.Real)  # TTA.dev's order: (p, ttl, key_fn)
            else "e.g. cache_key_fn=lambda data, ctx: str(data)"
        )
        msg = (
            f"CachePrimitive cache_key_fn must be a callable "
            f"cache_key_fn(input_data, context) that returns a hashable key, got "
            f"{type(value).__qualname__} ({value!r}); {hint}"
        )
        raise TypeError(msg)
    if _is_async_function(value):
        msg = (
            f"CachePrimitive cache_key_fn must be a sync function, got the async "
            f"function {describe_callable(value)}; compute the key without "
            f"awaiting, e.g. cache_key_fn=lambda data, ctx: str(data)"
        )
        raise TypeError(msg)


def _is_async_function(func: object) -> bool:
    # An async def function, a partial of one, or an object with async __call__.
    return inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(
        type(func).__call__
    )


def _to_ttl(value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        hint = (
            "; the signature is CachePrimitive(primitive, cache_key_fn, "
            "ttl_seconds=3600.0, max_size=1024), so pass ttl_seconds by keyword"
            if callable(value)  # TTA.dev's order: (primitive, ttl, cache_key_fn)
            else "; e.g. ttl_seconds=3600.0"
        )
        msg = (
            f"CachePrimitive ttl_seconds must be a number of seconds, got "
            f"{type(value).__qualname__} ({value!r}){hint}"
        )
        raise TypeError(msg)
    ttl = float(value)
    if not (ttl > 0 and math.isfinite(ttl)):
        msg = (
            f"CachePrimitive ttl_seconds must be a positive finite number of "
            f"seconds, got {value!r}; e.g. ttl_seconds=3600.0 keeps entries for "
            f"an hour"
        )
        raise ValueError(msg)
    return ttl


def _check_max_size(
    instance: object, attribute: attrs.Attribute[Any], value: object
) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        msg = (
            f"CachePrimitive max_size must be an int (the most entries kept), got "
            f"{type(value).__qualname__} ({value!r}); e.g. max_size=1024"
        )
        raise TypeError(msg)
    if value < 1:
        msg = (
            f"CachePrimitive max_size must be >= 1, got {value!r}; to cache "
            f"nothing, call the primitive without a CachePrimitive"
        )
        raise ValueError(msg)


@final
@attrs.define(eq=False, repr=False, on_setattr=attrs.setters.NO_OP)
class CachePrimitive(Primitive[In, Out]):
    """Cache the results of *primitive* by ``cache_key_fn(input_data, context)``.

    Entries live ``ttl_seconds`` and at most ``max_size`` of them are kept;
    beyond that, the least recently used live entry is evicted. Any result is
    cached, ``None`` included; exceptions and cancellations never are. A hit
    returns the stored object itself (not a copy) without running *primitive*.

    Single flight: concurrent misses on one key run *primitive* once, in the
    first caller's task; the others wait and get the same result, or the same
    exception object when it raises (nothing is stored). When that first
    caller is cancelled, one waiter takes over and runs *primitive* itself,
    so one caller's cancellation never fails another. Different keys never
    wait for each other. ``invalidate(key)`` and ``clear()`` also detach a
    run in flight: it still answers the callers that were waiting for it,
    but its result, computed from data that may have changed, is not stored,
    and later callers start a run of their own.

    Time is trio's: under a MockClock (``autojump_clock``) virtual time drives
    expiry; otherwise a process-wide monotonic timeline survives trio's
    per-run clock offset, so one instance can serve many ``trio.run`` calls,
    one after the other (an instance is not thread-safe; use one per thread).
    ``stats`` and ``repr`` work outside a run.

    On cancellation: a cancelled caller always sees ``trio.Cancelled``, on a
    hit too (a hit checks for cancellation without adding a checkpoint);
    ``cache_key_fn`` is called directly and must be a sync function.

    Raises:
        TypeError: at construction, for a *primitive* that is not a
            primitive, a *cache_key_fn* that is not a sync callable, or a
            non-numeric *ttl_seconds* / non-int *max_size*; at call time, when
            ``cache_key_fn`` returns an unhashable key or an awaitable.
        ValueError: at construction, for a *ttl_seconds* that is not positive
            and finite, or a *max_size* below 1.
    """

    _primitive: WorkflowPrimitive[In, Out] = attrs.field(validator=_check_primitive)
    _cache_key_fn: Callable[[In, WorkflowContext], Hashable] = attrs.field(
        validator=_check_key_fn
    )
    _ttl_seconds: float = attrs.field(default=3600.0, converter=_to_ttl)
    _max_size: int = attrs.field(default=1024, validator=_check_max_size)
    _entries: _Entries = attrs.field(init=False)
    _inflight: dict[Hashable, _Flight] = attrs.field(init=False, factory=dict)
    _step: Step = attrs.field(init=False)
    _hits: int = attrs.field(init=False, default=0)
    _misses: int = attrs.field(init=False, default=0)

    def __attrs_post_init__(self) -> None:
        self._entries = _Entries(self._max_size, self._ttl_seconds, self)
        self._step = step_of(self._primitive)

    @property
    def primitive(self) -> WorkflowPrimitive[In, Out]:
        """The wrapped primitive."""
        return self._primitive

    @property
    def cache_key_fn(self) -> Callable[[In, WorkflowContext], Hashable]:
        """The function that maps ``(input_data, context)`` to a cache key."""
        return self._cache_key_fn

    @property
    def ttl_seconds(self) -> float:
        """How long an entry lives, in seconds of trio time."""
        return self._ttl_seconds

    @property
    def max_size(self) -> int:
        """The most entries kept at once."""
        return self._max_size

    def __repr__(self) -> str:
        return (
            f"CachePrimitive({self._primitive!r}, "
            f"cache_key_fn={describe_callable(self._cache_key_fn)}, "
            f"ttl_seconds={self._ttl_seconds!r}, max_size={self._max_size!r}, "
            f"size={len(self._entries)})"
        )

    async def _run(self, input_data: In, context: WorkflowContext) -> Out:
        key = self._cache_key_fn(input_data, context)
        try:
            value = self._entries[key]
        except KeyError:
            pass
        except TypeError as exc:
            raise self._unhashable(key, context.workflow_id) from exc
        else:
            await _checkpoint_if_cancelled()
            self._hits += 1
            if Hooks.active and (call := call_of(self)) is not None:
                call.emit(CacheHit, key=key)
            return value  # type: ignore[no-any-return]
        # Outside the except block, so that the primitive's own exceptions are
        # not chained to the KeyError.
        return await self._miss(key, input_data, context)

    async def _miss(
        self, key: Hashable, input_data: In, context: WorkflowContext
    ) -> Out:
        if isinstance(key, Awaitable):
            self._awaitable_key(key, context.workflow_id)
        self._misses += 1
        # Expired entries are dropped (and counted) as soon as a lookup
        # misses, not only at the next insert.
        self._entries.expire()
        if Hooks.active and (call := call_of(self)) is not None:
            call.emit(CacheMiss, key=key)
        inflight = self._inflight
        while (flight := inflight.get(key)) is not None:
            done = flight.done
            if done is None:
                done = flight.done = trio.Event()
            await done.wait()
            if flight.error is not None:
                raise flight.error.with_traceback(flight.traceback)
            if flight.settled:
                return flight.value  # type: ignore[no-any-return]
            # Its caller was cancelled. Another run may have stored the value
            # before this task woke up; else take over (or wait for whoever did).
            try:
                return self._entries[key]  # type: ignore[no-any-return]
            except KeyError:
                pass
        flight = inflight[key] = _Flight()
        try:
            value = await run_step(self._primitive, self._step, input_data, context)
            if inflight.get(key) is flight:  # not invalidated meanwhile
                self._entries[key] = value
            flight.value = value
            flight.settled = True
            return value  # type: ignore[no-any-return]
        except Exception as exc:
            flight.error = exc
            flight.traceback = exc.__traceback__
            raise
        finally:
            # A cancellation leaves the flight unsettled: its waiters take over.
            if inflight.get(key) is flight:
                del inflight[key]
            if flight.done is not None:
                flight.done.set()

    def _unhashable(self, key: object, workflow_id: str | None = None) -> TypeError:
        where = "" if workflow_id is None else f" in workflow {workflow_id!r}"
        msg = (
            f"{self!r}{where}: the key {reprlib.repr(key)} is unhashable "
            f"({type(key).__qualname__}); cache_key_fn must return a hashable "
            f"value, e.g. a tuple or a str"
        )
        return TypeError(msg)

    def _awaitable_key(self, key: Awaitable[Any], workflow_id: str | None) -> NoReturn:
        close = getattr(key, "close", None)
        if close is not None:
            close()  # no "coroutine was never awaited" warning on top
        msg = (
            f"{self!r} in workflow {workflow_id!r}: cache_key_fn must return a "
            f"hashable key, got an awaitable "
            f"({type(key).__qualname__}); cache_key_fn is called without await, "
            f"so make it a sync function"
        )
        raise TypeError(msg)

    @property
    def stats(self) -> CacheStats:
        """The counters now, as a frozen `CacheStats`. Works outside a trio run."""
        entries = self._entries
        size = len(entries)  # expires first, so expirations are up to date
        hits = self._hits
        lookups = hits + self._misses
        return CacheStats(
            hits=hits,
            misses=self._misses,
            expirations=entries.expirations,
            size=size,
            hit_rate=hits / lookups if lookups else 0.0,
        )

    def get_stats(self) -> dict[str, int | float]:
        """The counters as TTA.dev's dict: size, hits, misses, expirations, hit_rate.

        ``hit_rate`` is a percentage (0-100) rounded to 2 decimals, as in
        TTA.dev; `stats` gives it as a fraction.
        """
        stats = self.stats
        return {
            "size": stats.size,
            "hits": stats.hits,
            "misses": stats.misses,
            "expirations": stats.expirations,
            "hit_rate": round(stats.hit_rate * 100, 2),
        }

    def get_hit_rate(self) -> float:
        """The hit rate as a percentage (0-100) rounded to 2 decimals (TTA.dev)."""
        return self.get_stats()["hit_rate"]

    def invalidate(self, key: Hashable) -> bool:
        """Remove the entry for *key*; return whether a live entry was removed.

        A run of the wrapped primitive in flight for *key* is detached: it
        still answers its waiting callers, but its result is not stored.

        Raises:
            TypeError: when *key* is not hashable.
        """
        try:
            hash(key)
        except TypeError as exc:
            raise self._unhashable(key) from exc
        entries = self._entries
        self._inflight.pop(key, None)
        with entries.timer as now:  # one instant: expire, then remove
            entries.expire(now)
            try:
                del entries[key]
            except KeyError:
                return False
        return True

    def clear(self) -> None:
        """Remove every entry and detach every run in flight. Stats are kept.

        Entries whose TTL had already run out are counted as expirations
        first; the hit and miss counters keep counting (as TTA.dev's
        ``clear_cache``).
        """
        self._inflight.clear()
        self._entries.expire()
        self._entries.clear()

    def clear_cache(self) -> None:
        """TTA.dev's name for `clear`."""
        self.clear()

    def evict_expired(self) -> int:
        """Remove entries whose TTL has run out now; return how many (TTA.dev).

        Expired entries never serve a hit anyway; this only frees them early.
        """
        return len(self._entries.expire())
