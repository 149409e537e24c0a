#!/usr/bin/env python3
"""Book a trip as a saga: what was booked is undone when a later step fails.

``CompensationPrimitive(steps=[(action, undo), ...])`` runs the actions in
order, each on the previous one's output. When one fails, with an exception,
a timeout or a cancellation, the undos of the actions that completed run in
reverse order, each on what its own action returned, shielded from the
cancellation and bounded by ``grace_period``. Here the card of the second
trip is declined and the payment service of the third hangs past its
timeout: both times the hotel, then the flight, are cancelled again. Run it
with ``python docs/examples/saga.py``; it prints::

    trip-1 booked: flight F-trip-1, hotel H-trip-1, payment P-trip-1
    trip-2 failed with PaymentDeclined; undone: hotel H-trip-2, flight F-trip-2
    trip-3 failed with PrimitiveTimeoutError; undone: hotel H-trip-3, flight F-trip-3
    still held: F-trip-1, H-trip-1, P-trip-1

TTA.dev's one-step form, ``CompensationPrimitive(forward, compensation)``,
also works: a failed *forward* is compensated with the call's input.
"""

import trio

from trio_primitives import (
    CompensationPrimitive,
    LambdaPrimitive,
    TimeoutPrimitive,
    WorkflowContext,
)

#: What the (pretend) services currently hold for us.
HELD: set[str] = set()


class PaymentDeclined(Exception):
    """The card was declined."""


async def reserve_flight(order: dict[str, str], ctx: WorkflowContext) -> dict[str, str]:
    """Reserve a seat; the booking carries its reference."""
    flight = f"F-{order['trip']}"
    HELD.add(flight)
    return {**order, "flight": flight}


async def reserve_hotel(
    booking: dict[str, str], ctx: WorkflowContext
) -> dict[str, str]:
    """Reserve a room."""
    hotel = f"H-{booking['trip']}"
    HELD.add(hotel)
    return {**booking, "hotel": hotel}


async def take_payment(booking: dict[str, str], ctx: WorkflowContext) -> dict[str, str]:
    """Charge the card; a slow payment service hangs."""
    if booking["card"] == "declined":
        raise PaymentDeclined(booking["card"])
    if booking["card"] == "slow":
        await trio.sleep(60)  # cancelled by the TimeoutPrimitive below
    payment = f"P-{booking['trip']}"
    HELD.add(payment)
    return {**booking, "payment": payment}


async def cancel_flight(booking: dict[str, str], ctx: WorkflowContext) -> None:
    """Give the seat back."""
    HELD.discard(booking["flight"])
    ctx.state["undone"].append(f"flight {booking['flight']}")


async def cancel_hotel(booking: dict[str, str], ctx: WorkflowContext) -> None:
    """Give the room back."""
    HELD.discard(booking["hotel"])
    ctx.state["undone"].append(f"hotel {booking['hotel']}")


async def refund(booking: dict[str, str], ctx: WorkflowContext) -> None:
    """Refund the payment (never needed here: it is the last step)."""
    HELD.discard(booking["payment"])
    ctx.state["undone"].append(f"payment {booking['payment']}")


def build_trip_saga() -> CompensationPrimitive[dict[str, str], dict[str, str]]:
    """Flight, then hotel, then payment; each undone if a later one fails."""
    return CompensationPrimitive(
        steps=[
            (LambdaPrimitive(reserve_flight), LambdaPrimitive(cancel_flight)),
            (LambdaPrimitive(reserve_hotel), LambdaPrimitive(cancel_hotel)),
            (
                TimeoutPrimitive(LambdaPrimitive(take_payment), timeout_seconds=0.1),
                LambdaPrimitive(refund),
            ),
        ],
        grace_period=10.0,
    )


async def main() -> None:
    """Book three trips and report what happened to each."""
    saga = build_trip_saga()
    for trip, card in [("trip-1", "ok"), ("trip-2", "declined"), ("trip-3", "slow")]:
        ctx = WorkflowContext(workflow_id=trip, state={"undone": []})
        try:
            booking = await saga.execute({"trip": trip, "card": card}, ctx)
        except Exception as exc:
            undone = ", ".join(ctx.state["undone"])
            print(f"{trip} failed with {type(exc).__name__}; undone: {undone}")
        else:
            print(
                f"{trip} booked: flight {booking['flight']}, hotel "
                f"{booking['hotel']}, payment {booking['payment']}"
            )
    print(f"still held: {', '.join(sorted(HELD))}")


if __name__ == "__main__":
    trio.run(main)
