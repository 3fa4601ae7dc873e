import faust
from pydantic import SecretStr

from streams.security import faust_credentials, kafka_options, redacted_url
from streams.settings import KafkaSettings, RedisSettings, Settings, WorkerSettings


def test_plaintext_is_the_default_and_carries_no_security_options() -> None:
    options = kafka_options(KafkaSettings(broker_url="kafka://k1:9092;k2:9092"))
    assert options == {"bootstrap_servers": "k1:9092,k2:9092", "security_protocol": "PLAINTEXT"}
    assert faust_credentials(KafkaSettings()) is None


def test_sasl_over_tls_reaches_every_client_kind() -> None:
    settings = KafkaSettings(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-512",
                             kafka_sasl_username="svc-perso", kafka_sasl_password=SecretStr("s3cr3t-pw"))
    options = kafka_options(settings)
    assert options["security_protocol"] == "SASL_SSL" and options["ssl_context"] is not None
    assert (options["sasl_mechanism"], options["sasl_plain_username"], options["sasl_plain_password"]) == (
        "SCRAM-SHA-512", "svc-perso", "s3cr3t-pw")
    credentials = faust_credentials(settings)
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.protocol.value == "SASL_SSL" and credentials.mechanism.value == "SCRAM-SHA-512"
    assert "s3cr3t-pw" not in repr(credentials)


def test_tls_only_uses_ssl_credentials() -> None:
    assert isinstance(faust_credentials(KafkaSettings(kafka_security_protocol="SSL")), faust.SSLCredentials)


def test_secrets_are_masked_wherever_settings_are_shown() -> None:
    settings = Settings(kafka=KafkaSettings(kafka_sasl_password=SecretStr("kafka-pw")),
                        redis=RedisSettings(redis_password=SecretStr("redis-pw")),
                        worker=WorkerSettings(pseudonymise_key=SecretStr("hmac-key")))
    assert settings.worker.pseudonymise_key_bytes == b"hmac-key"  # set, and only ever shown masked
    shown = repr(settings) + str(settings) + settings.model_dump_json()
    for secret in ("kafka-pw", "redis-pw", "hmac-key"):
        assert secret not in shown


def test_passwords_in_urls_are_redacted_for_logs() -> None:
    assert redacted_url("redis://:pw@cache:6379/0") == "redis://:***@cache:6379/0"
    assert redacted_url("rediss://app:pw@cache:6380/1") == "rediss://app:***@cache:6380/1"
    assert redacted_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
