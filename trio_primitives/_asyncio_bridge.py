"""The asyncio bridge: ``await primitive.execute(...)`` from asyncio code.

Imported lazily, by the first ``execute`` awaited outside a trio task, so that
``import trio_primitives`` does not import asyncio.

How it works (CONTRACT section 10):

- The engine runs as a trio *guest run* on the running asyncio loop. A thread
  holds at most one trio run, so calls on one loop share it: the outermost
  call starts a guest run, nested and concurrent calls join its root nursery
  as *jobs*, the run ends with its last job, and the last caller waits for the
  run's end before it returns. `HoldRun` (``hold_run()``) keeps a run alive
  for a block of calls.
- User code (LambdaPrimitive functions, MockPrimitive side effects, retry
  predicates, subclasses that override ``execute``) is asyncio code: each
  awaitable it returns runs as an asyncio Task on the loop, created from a
  ``loop.call_soon`` callback (never inside a trio tick, where an eager task
  factory would run it), in the trio task's contextvars Context. A sync
  function runs in such a Task too, so that sniffio and
  ``asyncio.current_task()`` say asyncio wherever user code runs.
- Cancellation both ways: a trio cancellation (a timeout, a failing sibling)
  cancels the Task and waits until it has finished; a cancelled caller cancels
  its job's cancel scope and waits until the job has finished.
- Only the job's own outcome reaches the caller: never ``trio.Cancelled`` nor a
  group of them; a run that died of Ctrl-C surfaces as ``KeyboardInterrupt``.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Awaitable, Callable, Coroutine, Generator
from types import TracebackType
from typing import Any, final

import sniffio
import trio

from ._base import Primitive, WorkflowPrimitive
from ._context import WorkflowContext
from ._errors import reraise_alone
from ._hooks import Bridge, Hooks
from ._lambda import Step
from ._observe import enter

_local = Bridge.local


# ---------------------------------------------------------------------------
# The trio side: user code as asyncio Tasks


def asyncio_step(step: Step) -> Step:
    """*step* as it runs under the bridge: library primitives stay trio-native."""
    func = step[0]
    owner = getattr(func, "__self__", None)
    if (
        isinstance(owner, Primitive)
        and getattr(func, "__func__", None) is not WorkflowPrimitive._run
    ):
        return step  # the library's own _run: trio code
    # A user function, or the ``execute`` of a user primitive (via _run).
    return functools.partial(call_in_asyncio, func), True


async def call_in_asyncio(func: Callable[..., Any], *args: Any) -> Any:
    """Call user code *func* in an asyncio Task, and await what it returns there.

    A sync function runs in the Task too, so that whatever it asks (sniffio,
    ``asyncio.current_task()``) says asyncio. On trio cancellation the Task is
    cancelled (it sees ``CancelledError``) and this waits, shielded, until it
    has finished; then the cancellation propagates, unless the Task's cleanup
    raised an exception, which then replaces it (as in asyncio).
    """
    return await _run_task(_call(func, args))


async def _call(func: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    result = func(*args)
    if isinstance(result, Awaitable):
        result = await result
    return result


_SPIN_TICKS = 3
_TICKS_PER_CALLBACK = 16


async def _run_task(awaitable: Awaitable[Any]) -> Any:
    loop: asyncio.AbstractEventLoop = _local.loop
    context = trio.lowlevel.current_task().context
    done = trio.Event()
    runner = _TaskRunner(awaitable, context, done)
    loop.call_soon(runner.spawn)
    guest: _Guest = _local.guest
    try:
        # A step that finishes within a few loop iterations is picked up by
        # the next guest ticks; only a longer one makes trio sleep in its I/O
        # thread, whose cross-thread wake-up costs far more than these ticks.
        for _ in range(_SPIN_TICKS):
            guest.host_work = True  # let the loop run the Task between ticks
            await trio.lowlevel.checkpoint()
            if runner.task is not None and runner.task.done():
                break
        else:
            await done.wait()
    except BaseException:
        runner.cancel()
        with trio.CancelScope(shield=True):
            await done.wait()
        task = runner.task
        if task is not None and not task.cancelled():
            error = task.exception()
            if error is not None:
                # Cleanup failed: its error replaces the cancellation, with
                # its own chain (``raise error`` here would set __context__).
                reraise_alone(error)
        raise
    task = runner.task
    assert task is not None
    return task.result()


@final
class _TaskRunner:
    """Creates the asyncio Task of one user step and reports its end to trio."""

    __slots__ = ("awaitable", "cancelled", "context", "done", "task")

    def __init__(
        self,
        awaitable: Awaitable[Any],
        context: contextvars.Context,
        done: trio.Event,
    ) -> None:
        self.awaitable: Awaitable[Any] | None = awaitable
        self.context = context
        self.done = done
        self.task: asyncio.Task[Any] | None = None
        self.cancelled = False

    def spawn(self) -> None:
        # A loop callback, outside any trio tick: an eager task factory may run
        # the Task's first slice right here, where sniffio says "asyncio".
        awaitable, self.awaitable = self.awaitable, None
        assert awaitable is not None
        if self.cancelled:  # pragma: no cover - asyncio runs callbacks FIFO
            # The trio side was cancelled before this callback ran: never
            # start the step. (asyncio's FIFO order runs this callback before
            # the next trio tick, so this is a safeguard for other hosts.)
            _discard(awaitable)
            self.done.set()
            return
        coro = awaitable if isinstance(awaitable, Coroutine) else _await(awaitable)
        loop = asyncio.get_running_loop()
        self.task = task = loop.create_task(coro, context=self.context)
        if task.done():  # pragma: no cover - an eager task factory (3.12+)
            self.done.set()
        else:
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self.done.set()

    def cancel(self) -> None:
        if self.task is None:  # pragma: no cover - see spawn
            self.cancelled = True  # spawn closes the coroutine instead
        elif not self.task.cancelling():
            # Not twice: a second cancel would interrupt the Task's cleanup
            # (asyncio.run's teardown cancels every Task, ours included).
            self.task.cancel()


async def _await(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


def _discard(awaitable: Awaitable[Any]) -> None:  # pragma: no cover - see spawn
    close = getattr(awaitable, "close", None)
    if close is not None:
        close()  # never started: no "coroutine was never awaited" warning


# ---------------------------------------------------------------------------
# The guest run and its jobs


@final
class _Guest:
    """One trio guest run on one asyncio loop, shared by every call on it."""

    __slots__ = (
        "closing",
        "finished",
        "holds",
        "host_work",
        "idle",
        "jobs",
        "live",
        "loop",
        "next_tick",
        "nursery",
        "pending",
        "reported",
        "spare_ticks",
        "ticking",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.nursery: trio.Nursery | None = None
        self.pending: list[tuple[_Job, contextvars.Context]] = []
        self.live: set[_Job] = set()  # jobs not yet answered
        self.jobs = 0
        self.holds = 0
        self.closing = False
        self.reported = False  # a caller has raised the run's fatal error
        self.ticking = False
        self.spare_ticks = 0
        self.next_tick: Callable[[], object] | None = None
        self.host_work = False  # a tick queued asyncio work (a step's Task)
        self.idle = trio.Event()
        self.finished: asyncio.Future[BaseException | None] = loop.create_future()

    def start(self) -> None:
        trio.lowlevel.start_guest_run(
            self._main,
            run_sync_soon_threadsafe=self.loop.call_soon_threadsafe,
            run_sync_soon_not_threadsafe=self._run_soon,
            done_callback=self._done,
            host_uses_signal_set_wakeup_fd=True,
            strict_exception_groups=True,
        )
        _local.guest = self
        _local.loop = self.loop
        Hooks.change(1, guests=1)

    def _run_soon(self, tick: Callable[[], object]) -> None:
        # trio's next guest tick. Consecutive ticks run back to back in one
        # loop callback (up to _TICKS_PER_CALLBACK; each loop iteration costs
        # a select() call), unless a tick queued asyncio work that trio is
        # about to wait for: then the loop runs it first.
        if self.ticking and self.spare_ticks and not self.host_work:
            self.spare_ticks -= 1
            self.next_tick = tick
        else:
            self.loop.call_soon(self._run_ticks, tick)

    def _run_ticks(self, tick: Callable[[], object] | None) -> None:
        self.ticking = True
        self.spare_ticks = _TICKS_PER_CALLBACK
        self.host_work = False
        try:
            while tick is not None:
                self.next_tick = None
                tick()
                tick = self.next_tick
        finally:
            self.ticking = False
            self.next_tick = None

    async def _main(self) -> None:
        async with trio.open_nursery() as nursery:
            self.nursery = nursery
            # The call that started the run runs in this task: a task spawn
            # and a wake-up fewer (two guest ticks of about ten).
            first = self.pending.pop(0)[0] if self.pending else None
            for job, context in self.pending:  # callers that joined meanwhile
                # Spawned in the caller's context, which the task copies.
                context.run(nursery.start_soon, job.run, self)
            self.pending.clear()
            if first is not None:
                await first.run(self)
            if not self.closing:
                await self.idle.wait()

    def add(self, job: _Job) -> None:
        self.jobs += 1
        self.live.add(job)
        if self.nursery is None:
            self.pending.append((job, contextvars.copy_context()))
        else:
            self.nursery.start_soon(job.run, self)

    def release(self) -> bool:
        """One job or hold ended; True when it was the last (the run now ends)."""
        if self.jobs or self.holds or self.closing:
            return False
        self.closing = True
        self.idle.set()
        return True

    def _done(self, run_outcome: Any) -> None:
        # Called by trio on the loop once the run is over (in_trio_run() is
        # False again): the thread may start another trio run from here on.
        self.closing = True
        if _local.guest is self:
            _local.guest = None
            _local.loop = None
        Hooks.change(-1, guests=-1)
        error = getattr(run_outcome, "error", None)
        if not self.finished.done():
            self.finished.set_result(None if error is None else _unwrap(error))
        for job in self.live:  # pragma: no cover - jobs end before the run
            job.answer(_RUN_DIED, None)
        self.live.clear()


def _unwrap(error: BaseException) -> BaseException:
    """The exception a run's group stands for (Ctrl-C arrives as a group of one)."""
    while isinstance(error, BaseExceptionGroup):
        fatal, _ = error.split(_FATAL)
        if fatal is not None:
            error = fatal
        if len(error.exceptions) != 1:
            return error
        error = error.exceptions[0]
    return error


_CANCELLED = object()  # the job ended by its caller's cancellation
_RUN_DIED = object()  # the job was cancelled by the run ending (Ctrl-C)
_FATAL = (KeyboardInterrupt, SystemExit)  # end the whole run, as in trio


@final
class _Job:
    """One ``execute`` awaited from asyncio, running as a task of the guest run."""

    __slots__ = ("context", "data", "future", "last", "outcome", "primitive", "scope")

    def __init__(
        self,
        primitive: Primitive[Any, Any],
        data: Any,
        context: WorkflowContext,
        future: asyncio.Future[tuple[object, Any]],
    ) -> None:
        self.primitive = primitive
        self.data = data
        self.context = context
        self.future = future
        self.scope = trio.CancelScope()
        self.last = False
        self.outcome: tuple[object, Any] | None = None

    async def run(self, guest: _Guest) -> None:
        """Run the call and answer the caller; raise only what ends the run.

        KeyboardInterrupt and SystemExit (Ctrl-C delivered by trio, or raised
        by a step) propagate, so the run cancels every other job and ends
        with them; every caller then raises it once the run is over.
        """
        kind: object = _CANCELLED  # stays so when the scope catches its cancel
        value: Any = None
        try:
            with self.scope:
                value = await enter(self.primitive, self.data, self.context)
                kind = None
        except BaseException as exc:
            kind, value = self._classify(exc)
            if kind is _RUN_DIED and value is not None:
                raise  # the whole run ends with it
        finally:
            guest.live.discard(self)
            guest.jobs -= 1
            self.last = guest.release()
            self.answer(kind, None if kind is _RUN_DIED else value)
            del value  # no reference cycle through a traceback
        if not guest.closing:
            # A held run: stay awake a few ticks, so that a caller's next
            # call (a hot loop) finds trio ticking instead of asleep in its
            # I/O thread, whose cross-thread wake-up costs far more.
            for _ in range(_SPIN_TICKS):
                guest.host_work = True
                await trio.lowlevel.cancel_shielded_checkpoint()

    def answer(self, kind: object, value: Any) -> None:
        self.outcome = (kind, value)
        if not self.future.done():  # else its caller was cancelled: see outcome
            self.future.set_result(self.outcome)

    def _classify(self, exc: BaseException) -> tuple[object, Any]:
        """(kind, value): kind is Exception (value raised), _CANCELLED or _RUN_DIED."""
        if isinstance(exc, BaseExceptionGroup):
            if exc.split(_FATAL)[0] is not None:
                return _RUN_DIED, exc
            _, rest = exc.split(trio.Cancelled)
            if rest is not None:
                return Exception, rest  # a failure that is not a cancellation
        elif isinstance(exc, _FATAL):
            return _RUN_DIED, exc
        elif not isinstance(exc, trio.Cancelled):
            return Exception, exc
        return (_CANCELLED if self.scope.cancel_called else _RUN_DIED), None


# ---------------------------------------------------------------------------
# The asyncio side


async def execute_from_asyncio(
    primitive: Primitive[Any, Any], data: Any, context: WorkflowContext
) -> Any:
    """Run *primitive* from an asyncio task, in this loop's trio guest run.

    On cancellation of the caller, the job's cancel scope is cancelled and the
    caller waits until the job has finished (its asyncio steps saw
    ``CancelledError`` and ran their ``finally`` blocks); then the caller's
    ``CancelledError`` propagates, unless the job failed meanwhile with an
    exception, which then replaces it.

    Raises:
        RuntimeError: when awaited outside an asyncio task.
    """
    loop = _running_loop(primitive)
    guest = await _join(loop)
    job = _Job(primitive, data, context, loop.create_future())
    guest.add(job)
    cancelled: asyncio.CancelledError | None = None
    try:
        # Awaited directly, not through asyncio.shield (one loop iteration
        # less per call): a cancellation cancels this future, so the job's
        # answer then lands in job.outcome and a fresh future.
        await job.future
    except asyncio.CancelledError as exc:
        cancelled = exc
        job.scope.cancel()
        if job.outcome is None:
            job.future = loop.create_future()
            await _wait(job.future)
    assert job.outcome is not None
    kind, value = job.outcome
    run_error = None
    if job.last or kind is _RUN_DIED:
        # The run ends with this job: return only once it has ended, so that
        # the thread is free for another trio run.
        cancelled = await _wait(guest.finished) or cancelled
        run_error = guest.finished.result()
    try:
        if kind is _RUN_DIED or (run_error is not None and kind is not Exception):
            guest.reported = True
            raise run_error or _dead_run(primitive)
        if kind is Exception:
            raise value
        if cancelled is not None:
            raise cancelled
        return value
    finally:
        del value, cancelled, run_error


async def _wait(future: asyncio.Future[Any]) -> asyncio.CancelledError | None:
    """Wait until *future* is done, even if this task is cancelled meanwhile.

    Returns the cancellation received while waiting, if any, for the caller
    to raise once it is done.
    """
    cancelled = None
    while not future.done():
        try:
            await asyncio.shield(future)
        except asyncio.CancelledError as exc:
            cancelled = exc
    return cancelled


def _running_loop(primitive: object) -> asyncio.AbstractEventLoop:
    try:
        library = sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        library = None
    if library == "asyncio":
        return asyncio.get_running_loop()
    msg = (
        f"{primitive!r}.execute() must be awaited from a trio task or an asyncio "
        f"task (found {library or 'no async library'}); run your workflow under "
        f"trio.run(main) or asyncio.run(main())"
    )
    raise RuntimeError(msg)


async def _join(loop: asyncio.AbstractEventLoop) -> _Guest:
    """This loop's live guest run, started if there is none."""
    while True:
        guest: _Guest | None = _local.guest
        if guest is None:
            guest = _Guest(loop)
            guest.start()
            return guest
        if guest.loop is not loop:
            msg = (
                f"a trio guest run of the asyncio bridge is still alive in this "
                f"thread on another event loop ({guest.loop!r}, closed="
                f"{guest.loop.is_closed()}); finish that loop's calls before "
                f"starting another loop in this thread"
            )
            raise RuntimeError(msg)
        if not guest.closing:
            return guest
        # A run that is ending: wait for its end (nothing of ours to clean up
        # if this caller is cancelled meanwhile), then start anew.
        await asyncio.shield(guest.finished)


def _dead_run(primitive: object) -> RuntimeError:  # pragma: no cover - a safeguard
    msg = (
        f"the trio guest run executing {primitive!r} ended before the call "
        f"finished; this is a bug in trio_primitives, please report it"
    )
    return RuntimeError(msg)


@final
class HoldRun:
    """``async with hold_run():`` keeps one trio guest run alive for a block.

    See `trio_primitives.hold_run`. Under trio it does nothing.
    """

    __slots__ = ("_guest",)

    def __init__(self) -> None:
        self._guest: _Guest | None = None

    async def __aenter__(self) -> None:
        if trio.lowlevel.in_trio_task():
            return
        loop = _running_loop("hold_run()")
        guest = await _join(loop)
        guest.holds += 1
        self._guest = guest

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        guest, self._guest = self._guest, None
        if guest is None:
            return
        guest.holds -= 1
        # closing already: the run died (Ctrl-C) while held.
        if guest.release() or guest.closing:
            cancelled = await _wait(guest.finished)
            run_error = guest.finished.result()
            if cancelled is not None and exc is None:
                raise cancelled
            if run_error is not None and exc is None and not guest.reported:
                # A Ctrl-C that trio delivered to an idle held run (tested by
                # hand: needs a real SIGINT under run_until_complete).
                guest.reported = True  # pragma: no cover
                raise run_error  # pragma: no cover

    def __await__(self) -> Generator[Any, None, None]:  # pragma: no cover
        msg = "hold_run() is an async context manager: write 'async with hold_run():'"
        raise TypeError(msg)
