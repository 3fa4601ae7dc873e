"""Real services for integration tests: the tansu broker, a redis-server and a worker process.

Nothing is mocked. A missing service binary fails the tests loudly (StackError), it never skips them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2
from pydantic import SecretStr

from schemas.events import EVENT_KINDS
from streams.devstack.stack import LocalStack
from streams.ops.tail import follow_topic
from streams.settings import KafkaSettings, RedisSettings, Settings, StackSettings, WorkerSettings

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


SECTIONS = ("kafka", "redis", "worker", "models", "stack")


def changed(settings: Settings, **fields: Any) -> Settings:
    """A copy of `settings` with fields changed by their flat names (`web_port=...`), whichever section has them."""
    top: dict[str, Any] = {}
    sections: dict[str, dict[str, Any]] = {}
    for name, value in fields.items():
        if name in Settings.model_fields and name not in SECTIONS:
            top[name] = value
            continue
        owner = next((section for section in SECTIONS
                      if name in type(getattr(settings, section)).model_fields), None)
        assert owner is not None, f"no setting named {name!r}"
        sections.setdefault(owner, {})[name] = value
    for section, updates in sections.items():
        top[section] = getattr(settings, section).model_copy(update=updates)
    return settings.model_copy(update=top)


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment of a worker or CLI process with exactly these settings (PERSO_* for every field)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    fields = [(name, value) for name, value in settings if name not in SECTIONS]
    for section in SECTIONS:
        fields += list(getattr(settings, section))
    for name, value in fields:
        if value is None:
            env.pop(f"PERSO_{name.upper()}", None)
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if isinstance(value, list):
            value = ",".join(value)
        env[f"PERSO_{name.upper()}"] = str(value).lower() if isinstance(value, bool) else str(value)
    return env


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    settings = Settings(app_id=f"test-{uuid.uuid4().hex[:8]}",
                        kafka=KafkaSettings(broker_url=f"kafka://127.0.0.1:{free_port()}"),
                        redis=RedisSettings(redis_url=f"redis://127.0.0.1:{free_port()}/0"),
                        worker=WorkerSettings(web_enabled=False),
                        stack=StackSettings(state_dir=tmp_path_factory.mktemp("stack")))
    local = LocalStack(settings)
    local.up()
    yield settings
    local.down()


class Worker:
    def __init__(self, settings: Settings, log_path: Path) -> None:
        self.settings = settings
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log_path, "ab") as out:
            self.process = subprocess.Popen([sys.executable, "-m", "streams.cli", "worker"], cwd=ROOT,
                                            env=settings_env(self.settings), stdout=out, stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def kill(self) -> None:
        """SIGKILL: no shutdown handlers, no final commit or checkpoint; what a crash looks like."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def wait_exit(self, timeout_s: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout_s)

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def assert_alive(self) -> None:
        assert self.process is not None and self.process.poll() is None, f"worker died:\n{self.log_tail()}"


@pytest.fixture(scope="session")
def worker(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    from tests.helpers import click, now_iso

    w = Worker(stack, tmp_path_factory.mktemp("worker") / "worker.log")
    w.start()
    try:
        # Ready means: an event sent now comes out as a profile in Redis.
        produce(stack, [("clickstream", "probe", orjson.dumps(click(customer="probe", at=now_iso())))])
        wait_for(lambda: profile(stack, "probe"), 90, "the worker to process a first event", w)
        yield w
    finally:
        w.stop()


class RedisServer:
    """A redis-server of a test's own, to stop, restart or protect with a password without touching others."""

    def __init__(self, workdir: Path, password: str | None = None, durable: bool = False,
                 extra: Sequence[str] = ()) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.password = password
        self.durable = durable  # an append-only file, fsynced per write: a restart keeps every key
        self.extra = list(extra)  # more redis-server options, e.g. ["--maxmemory", "4mb"]
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        from streams.devstack.stack import wait_for_port

        binary = shutil.which("redis-server")
        assert binary, "redis-server is not installed (./dev setup installs it)"
        argv = [binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--dir", str(self.workdir),
                *(["--appendonly", "yes", "--appendfsync", "always"] if self.durable else ["--appendonly", "no"])]
        if self.password:
            argv += ["--requirepass", self.password]
        argv += self.extra
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port("127.0.0.1", self.port, 10, "redis-server")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, password=self.password)


# Filled by the fault tests, printed at the end of the session (`pytest -m faults` runs just them).
FAULT_REPORT: list[dict[str, Any]] = []


def report_fault(fault: str, sent: int, reflected: int) -> None:
    """Record one fault's outcome; the test then asserts lost == 0."""
    FAULT_REPORT.append({"fault": fault, "sent": sent, "reflected": reflected, "lost": sent - reflected})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test in this directory needs the real services: `-m "not integration"` leaves them all out, not only
    those whose module says so."""
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.integration)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not FAULT_REPORT:
        return
    terminalreporter.section("fault report")
    terminalreporter.write_line(f"{'fault':<58} {'sent':>7} {'reflected':>10} {'lost':>6}")
    for row in FAULT_REPORT:
        terminalreporter.write_line(f"{row['fault']:<58} {row['sent']:>7} {row['reflected']:>10} {row['lost']:>6}")
    (ROOT / ".perso").mkdir(exist_ok=True)
    (ROOT / ".perso" / "fault-report.json").write_text(json.dumps(FAULT_REPORT, indent=2) + "\n")


def isolated(stack: Settings, name: str, redis_db: int, **overrides: Any) -> Settings:
    """Settings with their own topics, consumer group and Redis database, the topics created."""
    from streams.devstack.stack import create_topics

    run = f"{name}-{uuid.uuid4().hex[:6]}"
    fields: dict[str, Any] = {
        "app_id": run, "clickstream_topic": f"{run}-clicks", "purchases_topic": f"{run}-orders",
        "feedback_topic": f"{run}-answers",
        "offers_topic": f"{run}-offers", "dead_letter_topic": f"{run}-dead", "items_topic": f"{run}-items",
        "redis_url": stack.redis.redis_url.rsplit("/", 1)[0] + f"/{redis_db}"}
    settings = changed(stack, **{**fields, **overrides})
    asyncio.run(create_topics(settings.kafka))
    return settings


def partition_of(key: str, partitions: int) -> int:
    """The partition the producer's default partitioner sends `key` to (Kafka's murmur2)."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def produce(settings: Settings, records: Sequence[tuple[str, str | None, bytes]],
            headers: list[tuple[str, bytes]] | None = None) -> None:
    """Send (topic kind or name, key, value) records, each with `headers`, and wait for the broker's
    acknowledgement."""
    kafka = settings.kafka

    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers, acks="all")
        await producer.start()
        try:
            for topic, key, value in records:
                name = kafka.topic_for(topic) if topic in EVENT_KINDS else topic
                await producer.send_and_wait(name, value, key=key.encode() if key else None, headers=headers)
        finally:
            await producer.stop()

    asyncio.run(send())


def read_topic(settings: Settings, topic: str, until: Callable[[list[dict[str, Any]]], bool],
               timeout_s: float = 30) -> list[dict[str, Any]]:
    """Records of `topic` from the beginning, read until `until(records)` holds or the timeout passes."""

    async def read() -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = []

        async def collect() -> None:
            async for record in follow_topic(settings.kafka, topic, from_beginning=True):
                records.append(record)
                if until(records):
                    return

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(collect(), timeout_s)
        return records

    return asyncio.run(read())


def profile(settings: Settings, customer_id: str) -> dict[str, str]:
    client = redis.Redis.from_url(settings.redis.redis_url, decode_responses=True)
    try:
        return client.hgetall(f"profile:{customer_id}")  # type: ignore[return-value]
    finally:
        client.close()


def wait_for(condition: Callable[[], Any], timeout_s: float, what: str, worker: Worker | None = None) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        if worker is not None:
            worker.assert_alive()
        time.sleep(0.2)
    tail = f"\nworker log:\n{worker.log_tail()}" if worker else ""
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}{tail}")
