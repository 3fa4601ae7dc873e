"""Records the worker could not accept, published to the dead-letter topic with the reason."""

from __future__ import annotations

import base64

from pydantic import AwareDatetime, BaseModel, ConfigDict


def encode_payload(raw: bytes) -> tuple[str, str]:
    """Original bytes as JSON-safe text: (text, "utf-8") when they decode, else (base64, "base64").

    >>> encode_payload(b'{"a": 1}'), encode_payload(bytes([255, 0]))
    (('{"a": 1}', 'utf-8'), ('/wA=', 'base64'))
    """
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode(), "base64"


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
