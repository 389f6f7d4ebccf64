"""The hand-off webhook: `handoff.requested` POSTed to the assistant's `webhook_url`, signed,
tried again with backoff, each try and the outcome written to the hand-off's row.

Signed like Stripe's: `X-Chatgate-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
"{t}.{body}" with CHATGATE_HANDOFF_WEBHOOK_SECRET>`, so a receiver can refuse forged and replayed
calls. Without a secret nothing is sent (`unsigned_refused`): an unsigned call could be forged by
anyone who finds the receiver, so none is made.

Sent from a task of the process that started the hand-off, off the request path. The retry loop
is a few lines here rather than tenacity (not a dependency; httpx's transport retries cover
connection failures only, not a 500): a process that stops mid-way leaves the row `pending` with
its tries so far, which the hand-off list shows; the person's queue does not depend on it."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import random
import time
import uuid
from datetime import datetime
from typing import Any

import httpx
import orjson
from pydantic import SecretStr
from sqlalchemy import update

from chatgate.core.db import Database
from chatgate.handoff.models import Handoff, WebhookStatus
from chatgate.observability import metrics

log = logging.getLogger("chatgate.handoff.webhook")
ATTEMPTS = 5
# Each try's bound: a receiver that hangs costs this, then the next try.
ATTEMPT_TIMEOUT = httpx.Timeout(5.0, connect=2.0)
ATTEMPT_SECONDS = 10.0  # the whole try, however slowly a receiver trickles its answer
# A receiver's answers worth trying again; any other 4xx is final (the call itself is refused).
RETRY_STATUSES = frozenset({408, 425, 429})
ERROR_CHARS = 500
SIGNATURE_HEADER = "X-Chatgate-Signature"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The header's value: `t=<timestamp>,v1=<hex HMAC-SHA256 of "{timestamp}.{body}">`."""
    mac = hmac.new(secret.encode(), b"%d.%s" % (timestamp, body), hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def requested_event(handoff: Handoff) -> dict[str, Any]:
    """The webhook's body: who is waiting, never what they said."""
    requested_at: datetime = handoff.requested_at
    return {
        "event": "handoff.requested",
        "session_id": str(handoff.session_id),
        "user_id": handoff.user_id,
        "assistant_id": handoff.assistant_id,
        "reason": handoff.reason,
        "requested_at": requested_at.isoformat().replace("+00:00", "Z"),
    }


class HandoffWebhooks:
    """Sends hand-off webhooks in tasks of this process; closing cancels those still trying."""

    def __init__(
        self,
        *,
        database: Database,
        secret: SecretStr | None,
        backoff: float = 1.0,
        attempts: int = ATTEMPTS,
    ) -> None:
        self._database = database
        self._secret = secret.get_secret_value() if secret is not None else None
        self._backoff = backoff
        self._attempts = attempts
        self._http = httpx.AsyncClient(timeout=ATTEMPT_TIMEOUT, follow_redirects=False)
        self._sending: set[asyncio.Task[None]] = set()

    def status_for(self, url: str | None) -> WebhookStatus | None:
        """What a new hand-off's webhook starts as: None without a URL to call."""
        if url is None:
            return None
        return "pending" if self._secret is not None else "unsigned_refused"

    def send(self, handoff: Handoff, url: str | None) -> None:
        """Starts delivering the hand-off's webhook, if it has one to send."""
        if url is None or handoff.webhook_status != "pending":
            return
        body = orjson.dumps(requested_event(handoff))
        delivery = self._deliver(handoff.session_id, handoff.requested_at, url, body)
        task = asyncio.create_task(delivery)
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _deliver(
        self, session_id: uuid.UUID, requested_at: datetime, url: str, body: bytes
    ) -> None:
        assert self._secret is not None
        error = ""
        for attempt in range(1, self._attempts + 1):
            error, retry = await self._try(url, body)
            if not error:
                await self._record(session_id, requested_at, "delivered", attempt, None)
                return
            final = attempt == self._attempts or not retry
            metrics.handoff_webhook_failures.labels("gave_up" if final else "retried").inc()
            if final:
                break
            await self._record(session_id, requested_at, "pending", attempt, error)
            # Exponential, with jitter so that receivers coming back are not hit all at once.
            await asyncio.sleep(self._backoff * 2 ** (attempt - 1) * random.uniform(0.8, 1.2))
        log.warning("hand-off webhook failed", extra={"session_id": str(session_id)})
        await self._record(session_id, requested_at, "failed", attempt, error)

    async def _try(self, url: str, body: bytes) -> tuple[str, bool]:
        """One try, bounded in time: ("", _) when the receiver took it, else why not and
        whether another try may do better (not when the receiver refused the call itself)."""
        assert self._secret is not None
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signature(self._secret, int(time.time()), body),
        }
        try:
            async with asyncio.timeout(ATTEMPT_SECONDS):
                response = await self._http.post(url, content=body, headers=headers)
        except (httpx.HTTPError, TimeoutError) as exc:
            return (f"{type(exc).__name__}: {exc}".strip(": ")[:ERROR_CHARS], True)
        if response.is_success:
            return "", False
        refused = 400 <= response.status_code < 500 and response.status_code not in RETRY_STATUSES
        return f"{'refused' if refused else 'failed'}: HTTP {response.status_code}", not refused

    async def _record(
        self,
        session_id: uuid.UUID,
        requested_at: datetime,
        status: WebhookStatus,
        attempts: int,
        error: str | None,
    ) -> None:
        """Written to the hand-off it was sent for (not to a later one of the same session)."""
        try:
            async with asyncio.timeout(10), self._database.session() as db:
                await db.execute(
                    update(Handoff)
                    .where(Handoff.session_id == session_id, Handoff.requested_at == requested_at)
                    .values(webhook_status=status, webhook_attempts=attempts, webhook_error=error)
                )
                await db.commit()
        except Exception:
            log.warning("recording a hand-off webhook's outcome failed", exc_info=True)

    async def close(self) -> None:
        for task in list(self._sending):
            task.cancel()
        await asyncio.gather(*self._sending, return_exceptions=True)
        await self._http.aclose()
