"""A per-person audit log: what was done with the person's account and data, and from where.

One capped Redis list per person, ``{ns}:audit:{<user_tag>}`` (newest first, at most
``MAX_EVENTS``), in the person's hash slot like every other key of theirs
(``memories.keys``), so forgetting the person deletes it too. An event carries the time,
its kind, the client address and a few non-secret details (never a password).
"""

from __future__ import annotations

import time
from typing import Literal

import redis.asyncio as aioredis
from pydantic import BaseModel, Field

from memories.keys import person_key

MAX_EVENTS = 500
AUDIT_TTL_S = 400 * 86400  # a year and a bit after the last event

AuditKind = Literal["sign_up", "sign_in", "sign_out", "sign_out_everywhere", "password_change", "passkey_added",
                    "export", "profile_edit", "outcome_correction", "forget_request"]


class AuditEvent(BaseModel):
    """One thing done with the person's account or data."""

    at: float = Field(description="When (Unix time).")
    kind: AuditKind = Field(description="What was done.")
    address: str = Field(description="The client address the request came from.")
    detail: dict[str, str] = Field(default_factory=dict, description="Non-secret details (method, fields, ids).")


class AuditLog:
    """Append to and read the person's audit log on the app's async Redis client."""

    def __init__(self, client: aioredis.Redis, namespace: str, *, max_events: int = MAX_EVENTS) -> None:
        self.client = client
        self.namespace = namespace
        self.max_events = max_events

    def key(self, user_id: str) -> str:
        return person_key(self.namespace, "audit", user_id=user_id)

    async def record(self, user_id: str, kind: AuditKind, *, address: str, **detail: str) -> AuditEvent:
        """Keep one event (the oldest beyond ``max_events`` are dropped)."""
        event = AuditEvent(at=time.time(), kind=kind, address=address[:64], detail=detail)
        key = self.key(user_id)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.lpush(key, event.model_dump_json())
            pipe.ltrim(key, 0, self.max_events - 1)
            pipe.expire(key, AUDIT_TTL_S)
            await pipe.execute()
        return event

    async def events(self, user_id: str, limit: int = MAX_EVENTS) -> list[AuditEvent]:
        """The person's events, newest first."""
        raw = await self.client.lrange(self.key(user_id), 0, max(limit, 1) - 1)
        return [AuditEvent.model_validate_json(item) for item in raw]

    async def forget(self, user_id: str) -> int:
        """Delete the person's audit log; returns the keys deleted."""
        return int(await self.client.unlink(self.key(user_id)))
