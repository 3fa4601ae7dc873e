"""One configuration object with sections, read from the same PERSO_* names as ever."""

import pytest
from pydantic import ValidationError

from streams.settings import Settings


def test_every_section_reads_its_flat_environment_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERSO_BROKER_URL", "kafka://k1:9092;k2:9092")
    monkeypatch.setenv("PERSO_REDIS_URL", "redis://cache:6379/2")
    monkeypatch.setenv("PERSO_BATCH_SIZE", "50")
    monkeypatch.setenv("PERSO_N_SEGMENTS", "6")
    monkeypatch.setenv("PERSO_LEARNERS", "cooccurrence, segments")
    monkeypatch.setenv("PERSO_STATE_DIR", "/tmp/perso-state")
    monkeypatch.setenv("PERSO_APP_ID", "shop-eu")
    settings = Settings()
    assert settings.kafka.bootstrap_servers == "k1:9092,k2:9092"
    assert settings.redis.redis_url == "redis://cache:6379/2"
    assert settings.worker.batch_size == 50
    assert settings.models.n_segments == 6 and settings.models.learners == ["cooccurrence", "segments"]
    assert str(settings.stack.state_dir) == "/tmp/perso-state" and settings.app_id == "shop-eu"


def test_topics_and_event_kinds_map_both_ways() -> None:
    kafka = Settings().kafka
    assert kafka.input_topics == ("clickstream", "purchases", "feedback")
    assert [kafka.kind_of_topic(t) for t in (*kafka.input_topics, kafka.offers_topic)] == [
        "clickstream", "purchases", "feedback", None]
    with pytest.raises(ValueError, match="unknown event kind"):
        kafka.topic_for("returns")


def test_a_bad_value_names_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERSO_PARTITIONS", "zero")
    with pytest.raises(ValidationError, match="partitions"):
        Settings()
