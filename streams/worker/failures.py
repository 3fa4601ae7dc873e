"""What an exception means for a batch: its cause (a stable code for logs, `/health` and `/metrics`) and
whether waiting can heal it.

A healable failure (Redis unreachable, out of memory, read-only during a failover, busy with a script,
still loading; a broker that does not acknowledge in time) is retried with the same batch until it
succeeds. Anything else cannot be retried into success: the worker stops without committing the batch's
offsets, so the consumer group re-delivers it (streams/app.py).

>>> from redis.exceptions import OutOfMemoryError
>>> classify(OutOfMemoryError("command not allowed when used memory > 'maxmemory'"))  # doctest: +ELLIPSIS
Failure(cause='redis_out_of_memory', healable=True, detail="OutOfMemoryError: command not allowed ...")
>>> classify(KeyError("aff_beauty")).healable
False
"""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka.errors import KafkaError, KafkaTimeoutError, MessageSizeTooLargeError
from redis import exceptions as redis_errors

DETAIL_CHARS = 300

# Redis error replies that a failover, a busy script or a restart clears by themselves.
_TRANSIENT_REPLIES = {
    "BUSY": "redis_busy",
    "MASTERDOWN": "redis_unavailable",
    "TRYAGAIN": "redis_unavailable",
    "CLUSTERDOWN": "redis_unavailable",
    "NOREPLICAS": "redis_unavailable",
}


@dataclass(frozen=True)
class Failure:
    cause: str
    healable: bool
    detail: str


def describe(error: BaseException) -> str:
    """`Type: message`, short enough for a log line, a dead letter or a health report."""
    name, message = type(error).__name__, str(error)
    text = message if message.startswith(name) else f"{name}: {message}".strip()
    return text if len(text) <= DETAIL_CHARS else text[: DETAIL_CHARS - 3] + "..."


def causes(error: BaseException) -> list[BaseException]:
    """The error and those it was raised from, outermost first."""
    chain, seen = [error], {id(error)}
    while error.__cause__ is not None and id(error.__cause__) not in seen:
        error = error.__cause__
        chain.append(error)
        seen.add(id(error))
    return chain


def root_cause(error: BaseException) -> BaseException:
    """The error a wrapper was raised from (Faust raises ProducerSendError from the Kafka error)."""
    return causes(error)[-1]


def is_record_too_large(error: BaseException) -> bool:
    """The broker (or the producer's own size limit) refused one record: retrying the same bytes cannot help."""
    return isinstance(root_cause(error), MessageSizeTooLargeError)


def named_cause(error: BaseException) -> BaseException:
    """The outermost Redis or Kafka error in the chain, else the root: a wrapper (Faust's ProducerSendError)
    says less than the Kafka error under it, and the socket error under a Redis ConnectionError
    (ConnectionRefusedError) says less than the Redis error does (Redis is unreachable)."""
    chain = causes(error)
    return next((e for e in chain if isinstance(e, (redis_errors.RedisError, KafkaError))), chain[-1])


def classify(error: BaseException) -> Failure:
    """The failure `named_cause(error)` names.

    >>> try:
    ...     raise redis_errors.ConnectionError("Error 111 connecting") from ConnectionRefusedError(111, "refused")
    ... except redis_errors.ConnectionError as error:
    ...     classify(error).cause
    'redis_unreachable'
    """
    named = named_cause(error)
    cause, healable = _cause_of(named)
    return Failure(cause, healable, describe(named))


def _cause_of(error: BaseException) -> tuple[str, bool]:
    # Subclasses before their bases: OutOfMemoryError, ReadOnlyError, NoScriptError are ResponseErrors,
    # BusyLoadingError is a ConnectionError.
    if isinstance(error, redis_errors.OutOfMemoryError):
        return "redis_out_of_memory", True
    if isinstance(error, redis_errors.ReadOnlyError):
        return "redis_read_only", True
    if isinstance(error, redis_errors.BusyLoadingError):
        return "redis_loading", True
    if isinstance(error, redis_errors.NoScriptError):
        return "redis_script_missing", True
    if isinstance(error, redis_errors.AuthenticationError):
        return "redis_auth", False
    if isinstance(error, redis_errors.NoPermissionError):
        return "redis_no_permission", False
    if isinstance(error, redis_errors.ResponseError):
        first_word = str(error).split(" ", 1)[0].upper()
        transient = _TRANSIENT_REPLIES.get(first_word)
        return (transient, True) if transient else ("redis_error", False)
    if isinstance(error, (redis_errors.ConnectionError, redis_errors.TimeoutError)):
        return "redis_unreachable", True
    if isinstance(error, MessageSizeTooLargeError):
        return "record_too_large", False
    if isinstance(error, KafkaTimeoutError):
        return "broker_timeout", True
    if isinstance(error, KafkaError):
        return ("broker_retriable", True) if error.retriable else ("broker_error", False)
    if isinstance(error, (ConnectionError, TimeoutError)):
        return "connection", True
    return "unexpected", False
