"""The audit trail of reads of a customer's data and of operators' actions over HTTP: who (name and role), what,
which customer, when. One log line (logger `perso.audit`) and one entry in a bounded Redis stream
(`perso:audit:{app_id}`, the newest AUDIT_MAX_ENTRIES kept), so an auditor finds them without the worker's log."""

from __future__ import annotations

import logging
import time
from typing import Any

import redis.asyncio as aioredis

from streams.access import Principal
from streams.storage.keys import audit_key

log = logging.getLogger("perso.audit")

AUDIT_MAX_ENTRIES = 100_000


class AuditLog:
    def __init__(self, client: aioredis.Redis, app_id: str) -> None:
        self.client = client
        self.key = audit_key(app_id)

    async def record(self, who: Principal | None, action: str, customer: str | None = None,
                     detail: str = "") -> None:
        """Record one access; a Redis failure is logged, never raised (the log line is written first)."""
        name, role = (who.name, who.role) if who is not None else ("-", "-")
        log.info("audit: %s (%s) %s%s%s", name, role, action, f" customer={customer}" if customer else "",
                 f" {detail}" if detail else "")
        fields = {"who": name, "role": role, "action": action, "customer": customer or "", "detail": detail,
                  "at": f"{time.time():.3f}"}
        try:
            await self.client.xadd(self.key, fields, maxlen=AUDIT_MAX_ENTRIES, approximate=True)  # type: ignore[arg-type]
        except Exception as error:  # the read itself must not fail because its audit entry could not be stored
            log.warning("audit entry not stored in Redis (%s); the log line above stands", error)

    async def recent(self, count: int = 50) -> list[dict[str, str]]:
        """The newest entries, newest first."""
        entries: list[tuple[Any, dict[Any, Any]]] = await self.client.xrevrange(self.key, count=count)  # type: ignore[assignment]
        return [{_text(k): _text(v) for k, v in fields.items()} for _, fields in entries]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
