"""One line for the errors an operator meets first: a broker or Redis that cannot be reached, credentials
refused, a setting that does not parse. The CLI prints it instead of a traceback, naming the setting to check.

>>> from redis.exceptions import ConnectionError
>>> from streams.settings import RedisSettings
>>> settings = Settings(redis=RedisSettings(redis_url="redis://127.0.0.1:6390/0"))
>>> print(explain_unreachable(ConnectionError("Connection refused."), settings))
cannot reach Redis at redis://127.0.0.1:6390/0 (check PERSO_REDIS_URL): ConnectionError: Connection refused.
"""

from __future__ import annotations

from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError, NodeNotReadyError
from pydantic import ValidationError
from redis import exceptions as redis_errors

from streams.security import redacted_url
from streams.settings import Settings
from streams.worker.failures import describe, named_cause


def explain_unreachable(error: BaseException, settings: Settings | None = None) -> str | None:
    """A one-line explanation, or None when `error` is not one of these (the caller re-raises it)."""
    if isinstance(error, ValidationError) and error.title.endswith("Settings"):
        problems = "; ".join(f"PERSO_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
                             for e in error.errors(include_url=False))
        return f"invalid configuration: {problems}"
    root = named_cause(error)  # a Redis error raised from the socket's ConnectionRefusedError is still Redis's
    settings = settings or _settings_or_none()
    broker = settings.kafka.bootstrap_servers if settings else "the configured broker"
    redis_at = redacted_url(settings.redis.redis_url) if settings else "the configured Redis"
    if isinstance(root, redis_errors.AuthenticationError):
        return f"Redis at {redis_at} refused the credentials (check PERSO_REDIS_USERNAME, PERSO_REDIS_PASSWORD)"
    if isinstance(root, redis_errors.ConnectionError | redis_errors.TimeoutError):
        return f"cannot reach Redis at {redis_at} (check PERSO_REDIS_URL): {describe(root)}"
    if isinstance(root, KafkaConnectionError | NodeNotReadyError | KafkaTimeoutError) or (
            isinstance(root, KafkaError) and "bootstrap" in str(root).lower()):
        return (f"cannot reach the Kafka broker at {broker} (check PERSO_BROKER_URL, and "
                f"PERSO_KAFKA_SECURITY_PROTOCOL for TLS or SASL): {describe(root)}")
    return None


def _settings_or_none() -> Settings | None:
    try:
        return Settings()
    except ValidationError:
        return None
