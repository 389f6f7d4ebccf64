from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from chatgate.handoff.models import Handoff, HandoffReason, HandoffStatus, WebhookStatus


class WebhookOut(BaseModel):
    status: WebhookStatus | None = Field(
        description="pending (being tried), delivered, failed (its tries ran out), "
        "unsigned_refused (no CHATGATE_HANDOFF_WEBHOOK_SECRET: not sent); null: no webhook_url"
    )
    attempts: int
    error: str | None = Field(description="the last try's failure")


class HandoffOut(BaseModel):
    session_id: str
    user_id: str
    assistant_id: str
    status: HandoffStatus
    reason: HandoffReason
    requested_at: datetime
    updated_at: datetime
    agent_id: str | None
    webhook: WebhookOut

    @classmethod
    def of(cls, handoff: Handoff) -> HandoffOut:
        return cls(
            session_id=str(handoff.session_id),
            user_id=handoff.user_id,
            assistant_id=handoff.assistant_id,
            status=handoff.status,
            reason=handoff.reason,
            requested_at=handoff.requested_at,
            updated_at=handoff.updated_at,
            agent_id=handoff.agent_id,
            webhook=WebhookOut(
                status=handoff.webhook_status,
                attempts=handoff.webhook_attempts,
                error=handoff.webhook_error,
            ),
        )


class HandoffList(BaseModel):
    data: list[HandoffOut]


class AgentReply(BaseModel):
    content: str
