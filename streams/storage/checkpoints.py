"""Model checkpoints in Redis: restored when the worker starts, saved periodically and on shutdown.

All workers of one app share the key: each saves the models it learned, the newest wins, and a worker that
starts (or restarts) resumes from it. Per-customer state is not here: it is in Redis per customer already.
"""

from __future__ import annotations

import logging
import time

import redis.asyncio as aioredis

from models import checkpoint
from models.personalizer import Personalizer
from streams.storage.keys import checkpoint_key, checkpoint_meta_key

log = logging.getLogger(__name__)


class CheckpointStore:
    def __init__(self, client: aioredis.Redis, app_id: str) -> None:
        self.client = client
        self.key = checkpoint_key(app_id)
        self.meta_key = checkpoint_meta_key(app_id)

    async def restore(self, personalizer: Personalizer) -> bool:
        blob = await self.client.get(self.key)
        if blob is None:
            log.info("no model checkpoint at %s: starting from fresh models", self.key)
            return False
        try:
            info = checkpoint.load_into(personalizer, blob)  # type: ignore[arg-type]  # bytes: no decode_responses
        except checkpoint.IncompatibleCheckpoint as error:
            log.warning("ignoring checkpoint %s: %s", self.key, error)
            return False
        log.info("restored models from checkpoint saved %.0fs ago: %s", time.time() - info.saved_at,
                 info.model_versions)
        if info.fresh:
            log.warning("the checkpoint has no compatible state for learner(s) %s: they start fresh",
                        ", ".join(info.fresh))
        return True

    async def save(self, personalizer: Personalizer) -> int:
        return await self.save_blob(self.serialise(personalizer))

    @staticmethod
    def serialise(personalizer: Personalizer) -> bytes:
        """The models as they are now (the caller picks the moment: between batches)."""
        return checkpoint.dump(personalizer)

    async def save_blob(self, blob: bytes) -> int:
        # The meta hash lets `status` show the checkpoint's age without loading the models.
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.set(self.key, blob)
            pipe.hset(self.meta_key, mapping={"saved_at": time.time(), "bytes": len(blob)})
            await pipe.execute()
        return len(blob)

    async def saved_at(self) -> float | None:
        raw = await self.client.hget(self.meta_key, "saved_at")
        return float(raw) if raw is not None else None

    async def delete(self) -> int:
        return int(await self.client.delete(self.key, self.meta_key))
