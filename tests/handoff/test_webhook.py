"""The hand-off webhook, received by a real HTTP server: signed (the receiver's own check),
tried again after 500s with growing waits, and a failure that outlasts its tries visible in the
hand-off list and the metrics; without a signing secret nothing is sent."""

from __future__ import annotations

import time
from datetime import datetime

from tests.conftest import Caller, Double, make_token, open_caller, serve_chatgate
from tests.handoff.conftest import (
    Desk,
    Receiver,
    eventually,
    handoff_settings,
    listed,
    send,
    verify,
)


async def hand_off(user: Caller, assistant_id: str) -> str:
    session = await user.new_session(assistant_id)
    response = await send(user, session["id"], "I need a human")
    assert response.json()["handoff"]["status"] == "waiting", response.text
    return str(session["id"])


async def webhook_of(admin: Caller, session_id: str) -> dict[str, object]:
    found = await listed(admin, session_id)
    assert found is not None
    return found["webhook"]  # type: ignore[no-any-return]


async def test_the_webhook_is_signed_and_says_who_waits(
    desk: Desk, user: Caller, admin: Caller
) -> None:
    session_id = await hand_off(user, "h-ask")

    async def delivered() -> bool:
        return (await webhook_of(admin, session_id))["status"] == "delivered"

    await eventually(delivered)
    (delivery,) = desk.receiver.of(session_id)
    assert abs(verify(delivery) - time.time()) < 60
    event = delivery.event
    assert event["event"] == "handoff.requested"
    assert event["user_id"] == user.user_id and event["assistant_id"] == "h-ask"
    assert event["reason"] == "requested"
    assert datetime.fromisoformat(event["requested_at"]).tzinfo is not None
    assert "I need a human" not in delivery.body.decode()  # who waits, never what they said
    assert await webhook_of(admin, session_id) == {
        "status": "delivered", "attempts": 1, "error": None,
    }  # fmt: skip


async def test_a_failing_receiver_is_tried_again_with_growing_waits(
    desk: Desk, user: Caller, admin: Caller
) -> None:
    session_id = await hand_off(user, "h-flaky")

    async def delivered() -> bool:
        return (await webhook_of(admin, session_id))["status"] == "delivered"

    await eventually(delivered)
    deliveries = desk.receiver.of(session_id)
    assert len(deliveries) == 3
    for delivery in deliveries:
        verify(delivery)
    first_wait = deliveries[1].at - deliveries[0].at
    second_wait = deliveries[2].at - deliveries[1].at
    assert 0.07 < first_wait < second_wait  # 0.1 s, then 0.2 s, each ±20%
    assert (await webhook_of(admin, session_id))["attempts"] == 3


async def test_a_receiver_that_stays_down_shows_in_the_list_and_the_metrics(
    desk: Desk, user: Caller, admin: Caller
) -> None:
    before = gave_up((await user.http.get("/metrics")).text)
    session_id = await hand_off(user, "h-down")

    async def failed() -> bool:
        return (await webhook_of(admin, session_id))["status"] == "failed"

    await eventually(failed)
    assert await webhook_of(admin, session_id) == {
        "status": "failed", "attempts": 5, "error": "failed: HTTP 500",
    }  # fmt: skip
    assert len(desk.receiver.of(session_id)) == 5
    assert gave_up((await user.http.get("/metrics")).text) == before + 1
    # The person's queue does not depend on the webhook.
    found = await listed(admin, session_id, "waiting")
    assert found is not None and found["status"] == "waiting"


async def test_a_receiver_that_refuses_the_call_is_not_asked_again(
    desk: Desk, user: Caller, admin: Caller
) -> None:
    session_id = await hand_off(user, "h-refused")

    async def failed() -> bool:
        return (await webhook_of(admin, session_id))["status"] == "failed"

    await eventually(failed)
    assert await webhook_of(admin, session_id) == {
        "status": "failed", "attempts": 1, "error": "refused: HTTP 401",
    }  # fmt: skip
    assert len(desk.receiver.of(session_id)) == 1


def gave_up(metrics: str) -> float:
    name = 'chatgate_handoff_webhook_failures_total{outcome="gave_up"}'
    line = next((line for line in metrics.splitlines() if line.startswith(name)), None)
    return float(line.split()[-1]) if line else 0.0


async def test_without_a_secret_no_webhook_is_sent(
    database_url: str, openai_double: Double, receiver: Receiver
) -> None:
    settings = handoff_settings(
        database_url, openai_double, receiver.url, handoff_webhook_secret=None
    )
    async with serve_chatgate(settings) as url:
        async with open_caller(url) as user:
            session_id = await hand_off(user, "h-ask")
        token = make_token("operator-2", admin=True)
        async with open_caller(url, "operator-2", token=token) as admin:
            assert await webhook_of(admin, session_id) == {
                "status": "unsigned_refused", "attempts": 0, "error": None,
            }  # fmt: skip
    assert receiver.of(session_id) == []
