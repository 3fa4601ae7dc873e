"""Records the worker could not accept, published to the dead-letter topic with the reason."""

from __future__ import annotations

from pydantic import AwareDatetime, BaseModel, ConfigDict


class DeadLetter(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str  # stable machine-readable code, e.g. "unknown_field", "ts_in_future"
    detail: str
    source_topic: str
    partition: int
    offset: int
    key: str | None
    # The original bytes: UTF-8 text when they decode, else base64 (see payload_encoding).
    payload: str
    payload_encoding: str  # "utf-8" or "base64"
    received_at: AwareDatetime
