"""A password-protected Redis: the worker authenticates from PERSO_REDIS_PASSWORD and never logs the secret."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
import redis
from pydantic import SecretStr

from streams.security import redis_sync
from streams.settings import Settings
from tests.helpers import click, now_iso
from tests.integration.conftest import RedisServer, Worker, isolated, produce, wait_for

PASSWORD = "correct-horse-battery-staple"


def test_worker_authenticates_to_redis_and_keeps_the_password_out_of_its_log(stack: Settings, tmp_path: Path) -> None:
    server = RedisServer(tmp_path, password=PASSWORD)
    server.start()
    try:
        settings = isolated(stack, "auth", redis_db=0, redis_url=server.url, redis_password=SecretStr(PASSWORD))
        with pytest.raises(redis.AuthenticationError):
            redis.Redis.from_url(server.url).set("x", "1")  # the server really demands the password
        client = redis_sync(settings.redis, decode_responses=True)
        worker = Worker(settings, tmp_path / "worker.log")
        worker.start()
        try:
            produce(settings, [("clickstream", "sec1", orjson.dumps(click(customer="sec1", at=now_iso())))])
            wait_for(lambda: client.hget("profile:sec1", "events") == "1", 90, "a profile in the protected Redis",
                     worker)
        finally:
            worker.stop()
        assert PASSWORD not in worker.log_path.read_text()
    finally:
        server.stop()
