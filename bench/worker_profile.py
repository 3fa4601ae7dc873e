"""Where a worker's time goes: sample it with py-spy and add the samples up by part of the system.

Used by `python bench/e2e.py --profile 15` while the worker drains its backlog at full speed. py-spy
(a dev dependency) needs ptrace rights on the worker. It pauses the worker for each sample (50 a second):
its --nonblocking mode reads stacks while they change and misattributes a tenth of them, so the
throughput of a profiled run is a little lower; the shares are what it is for.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# First match wins, most specific first; matched against every frame of a sampled stack.
PARTS = (
    ("models (Personalizer.process)", "Personalizer.process"),
    ("Redis load/save (RedisCustomerStore)", "RedisCustomerStore."),
    ("publish offers and dead letters, wait for acks", "KafkaPublisher.publish"),
    ("validate events (pydantic)", "BatchPipeline._validate"),
    ("build profiles and offers", "profile_from"),
    ("build profiles and offers", "offer_from"),
    ("pipeline glue (cache, triage)", "BatchPipeline."),
    ("Kafka consumer thread (aiokafka fetches)", "WorkerThread.run"),
    ("aiokafka producer (sending)", "aiokafka/producer"),
    ("Faust stream delivery (take_events, acks, on_message)", "faust/streams.py"),
    ("Faust stream delivery (take_events, acks, on_message)", "faust/agents"),
    ("Faust stream delivery (take_events, acks, on_message)", "faust/transport/conductor.py"),
    ("idle (waiting in epoll)", "EpollSelector.select"),
    ("Faust consumer (fetch loop, commits, services)", "faust/transport"),
    ("Faust consumer (fetch loop, commits, services)", "mode/services.py"),
)
OTHER = "asyncio event loop and the rest"


def sample(pid: int, seconds: float, rate: int = 50) -> str:
    """py-spy's raw (collapsed) stacks of process `pid` over `seconds`."""
    beside_python = Path(sys.executable).with_name("py-spy")  # a virtualenv's, even when not activated
    py_spy = str(beside_python) if beside_python.exists() else shutil.which("py-spy")
    if py_spy is None:
        raise SystemExit("py-spy not found: pip install py-spy (it is in the project's dev extras)")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "stacks.txt"
        subprocess.run([py_spy, "record", "--pid", str(pid), "--duration", str(int(seconds)),
                        "--rate", str(rate), "--format", "raw", "--output", str(out)],
                       check=True, capture_output=True)
        return out.read_text()


def breakdown(collapsed: str) -> dict[str, float]:
    """Share of samples per part, in percent, largest first."""
    counts: dict[str, int] = {}
    for line in collapsed.splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        part = next((name for name, marker in PARTS if marker in stack), OTHER)
        counts[part] = counts.get(part, 0) + int(n)
    total = sum(counts.values()) or 1
    return {part: round(100 * n / total, 1) for part, n in sorted(counts.items(), key=lambda kv: -kv[1])}
