"""`perso replay --topic`: copy a range of another topic into the input topics, in order."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson

from streams.settings import Settings
from tests.helpers import click, now_iso
from tests.integration.conftest import ROOT, isolated, produce, read_topic, settings_env


def test_replay_from_a_topic_between_offsets_keeps_order(stack: Settings, tmp_path: Path) -> None:
    archive = isolated(stack, "archive", redis_db=7)
    target = isolated(stack, "target", redis_db=7)
    bodies = [click(customer="t1", item=f"i{n}", at=now_iso(10 - n)) for n in range(10)]
    produce(archive, [("clickstream", "t1", orjson.dumps(b)) for b in bodies])  # one key: one partition, offsets 0-9

    result = subprocess.run([sys.executable, "-m", "streams.cli", "replay", "--topic", archive.kafka.clickstream_topic,
                             "--start-offset", "2", "--end-offset", "7", "--no-progress",
                             "--rejects", str(tmp_path / "rejects.jsonl")],
                            cwd=ROOT, env=settings_env(target), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "read 5, published 5, rejected 0" in result.stdout, result.stdout

    copied = read_topic(target, target.kafka.clickstream_topic, lambda rs: len(rs) >= 5, timeout_s=20)
    assert [r["event_id"] for r in copied] == [b["event_id"] for b in bodies[2:7]]
