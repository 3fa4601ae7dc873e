"""Connection security in one place: Kafka SASL/TLS and Redis password/TLS, from settings to client options.

Every Kafka client of the project (the Faust worker, replay, feed, status, rebuild, topic creation, the offer
tail) and every Redis client gets its options from here, so a secured cluster needs only environment
variables. Secrets are `SecretStr` in settings (masked in reprs and logs) and leave them only here.
"""

from __future__ import annotations

import ssl
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import faust
import redis
import redis.asyncio as aioredis
from aiokafka.helpers import create_ssl_context

from streams.settings import KafkaSettings, RedisSettings

REDIS_TIMEOUT_S = 5


def kafka_ssl_context(settings: KafkaSettings) -> ssl.SSLContext | None:
    if "SSL" not in settings.kafka_security_protocol:
        return None
    return create_ssl_context(
        cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None,
        certfile=str(settings.kafka_ssl_certfile) if settings.kafka_ssl_certfile else None,
        keyfile=str(settings.kafka_ssl_keyfile) if settings.kafka_ssl_keyfile else None,
        password=settings.kafka_ssl_password.get_secret_value() if settings.kafka_ssl_password else None,
    )


def kafka_options(settings: KafkaSettings) -> dict[str, Any]:
    """Keyword arguments for any aiokafka producer, consumer or admin client."""
    options: dict[str, Any] = {"bootstrap_servers": settings.bootstrap_servers,
                               "security_protocol": settings.kafka_security_protocol}
    context = kafka_ssl_context(settings)
    if context is not None:
        options["ssl_context"] = context
    if settings.kafka_security_protocol.startswith("SASL"):
        options.update(sasl_mechanism=settings.kafka_sasl_mechanism,
                       sasl_plain_username=settings.kafka_sasl_username,
                       sasl_plain_password=(settings.kafka_sasl_password.get_secret_value()
                                            if settings.kafka_sasl_password else None))
    return options


async def start_or_close(client: Any) -> None:
    """Start an aiokafka client; if it cannot start (no broker), stop it before raising, so it is not left open."""
    try:
        await client.start()
    except BaseException:
        await client.stop()
        raise


def faust_credentials(settings: KafkaSettings) -> Any:
    """The `broker_credentials` of the Faust app, or None for PLAINTEXT."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = kafka_ssl_context(settings)
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    return faust.SASLCredentials(
        username=settings.kafka_sasl_username,
        password=settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else None,
        ssl_context=context, mechanism=settings.kafka_sasl_mechanism)


def _redis_options(settings: RedisSettings) -> dict[str, Any]:
    options: dict[str, Any] = {"socket_timeout": REDIS_TIMEOUT_S, "socket_connect_timeout": REDIS_TIMEOUT_S}
    if settings.redis_password is not None:
        options["password"] = settings.redis_password.get_secret_value()
    if settings.redis_username is not None:
        options["username"] = settings.redis_username
    if settings.redis_ssl_ca_certs is not None:  # with a rediss:// URL
        options["ssl_ca_certs"] = str(settings.redis_ssl_ca_certs)
    return options


def redis_async(settings: RedisSettings) -> aioredis.Redis:
    return aioredis.Redis.from_url(settings.redis_url, **_redis_options(settings))


def redis_sync(settings: RedisSettings, decode_responses: bool = False) -> redis.Redis:
    return redis.Redis.from_url(settings.redis_url, decode_responses=decode_responses, **_redis_options(settings))


def redacted_url(url: str) -> str:
    """A URL fit for logs: any password in it replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit((parts.scheme, user + host, parts.path, parts.query, parts.fragment))
