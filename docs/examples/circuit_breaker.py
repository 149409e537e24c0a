#!/usr/bin/env python3
"""Protect a flaky payment service with a CircuitBreakerPrimitive.

A checkout workflow charges orders through a breaker, with a fallback that
queues the order when the charge fails or the breaker rejects it. The service
is down at first: three failures open the breaker, which then rejects calls
at once, without touching the service. After ``recovery_timeout`` (30 s of
trio time) the breaker half-opens and lets exactly one probe through: five
concurrent orders arrive, one probes the (now recovered) service, and the
other four are queued at once instead of piling onto it. The successful probe
closes the breaker.

The waits are on trio's clock, so ``main()`` runs under any trio clock; the
script runs it under a ``MockClock`` that skips idle time, so the demo does
not wait half a minute (drop ``clock=`` in a real program). Run it with
``python docs/examples/circuit_breaker.py``; it prints::

    order 1: queued (breaker closed, 1 failure)
    order 2: queued (breaker closed, 2 failures)
    order 3: queued (breaker open, 3 failures)
    order 4: queued (breaker open, 3 failures)
    service calls so far: 3
    rejected: open, half-opens in 30 s
    30 s later: breaker half_open
    orders 5-9: 1 charged, 4 queued, service calls: 4
    breaker closed
"""

import trio
import trio.testing

from trio_primitives import (
    CircuitBreakerError,
    CircuitBreakerPrimitive,
    FallbackPrimitive,
    LambdaPrimitive,
    WorkflowContext,
)


class PaymentService:
    """A stand-in for a remote service that is down until ``up`` is set."""

    def __init__(self) -> None:
        self.up = False
        self.calls = 0

    async def charge(self, order: dict[str, int], ctx: WorkflowContext) -> str:
        """Charge an order: a 0.5 s round trip, then success or ConnectionError."""
        self.calls += 1
        await trio.sleep(0.5)
        if not self.up:
            raise ConnectionError("payment service unreachable")
        return "charged"


def queue_for_later(order: dict[str, int], ctx: WorkflowContext) -> str:
    """The fallback: keep the order, to charge it when the service is back."""
    return "queued"


async def main() -> None:
    service = PaymentService()
    breaker = CircuitBreakerPrimitive(
        LambdaPrimitive(service.charge),
        failure_threshold=3,
        recovery_timeout=30.0,
        success_threshold=1,
        expected_exception=ConnectionError,
    )
    checkout = FallbackPrimitive(breaker, LambdaPrimitive(queue_for_later))
    ctx = WorkflowContext(workflow_id="checkout")

    # Closed: each failure is counted; the third opens the breaker. Once open,
    # order 4 is queued without a call to the service.
    for number in range(1, 5):
        outcome = await checkout.execute({"id": number}, ctx)
        failures = breaker.failure_count
        plural = "" if failures == 1 else "s"
        print(
            f"order {number}: {outcome} "
            f"(breaker {breaker.state}, {failures} failure{plural})"
        )
    print(f"service calls so far: {service.calls}")

    # Calling the breaker directly shows what the fallback handled.
    try:
        await breaker.execute({"id": 0}, ctx)
    except CircuitBreakerError as error:
        print(f"rejected: {error.state}, half-opens in {error.retry_after:g} s")

    service.up = True  # the service recovers while the breaker waits
    await trio.sleep(30.0)
    print(f"30 s later: breaker {breaker.state}")

    # Half-open: five orders at once; one is the probe, the others are queued.
    outcomes: list[str] = []

    async def place(number: int) -> None:
        outcomes.append(await checkout.execute({"id": number}, ctx))

    async with trio.open_nursery() as nursery:
        for number in range(5, 10):
            nursery.start_soon(place, number)
    print(
        f"orders 5-9: {outcomes.count('charged')} charged, "
        f"{outcomes.count('queued')} queued, service calls: {service.calls}"
    )
    print(f"breaker {breaker.state}")


if __name__ == "__main__":
    # Virtual time: the 30 s recovery timeout passes at once.
    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
