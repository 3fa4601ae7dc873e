"""Experiments on the real broker, Redis and worker processes: feedback and purchases become attributed
conversions exactly once (also after a replay, a SIGKILL, and a backlog drained with one topic far ahead), bad
feedback is dead-lettered with reasons, two workers report one experiment, and running workers follow
`perso experiment start|stop` without a restart.

The scenario is built so every offer is known in advance: before the experiment starts, teachers view phone and
case together (the only items anyone looks at), so the nbo offer to a customer who then views the phone is the
case, decided at that view (offer id = customer:view event id). Half of the customers then buy the case within
a day (converted), some click the offer without buying (clicked), the rest ignore it or, in the holdout, never
see it. Each order is a moment to decide as well: the phone is offered then, and nobody answers. Feedback from
other customers eleven days later moves every partition's stream time past the 7-day windows, so every offer
closes (feedback decides nothing, so those customers join no arm).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

from models.experiments.assignment import ArmAssignment
from schemas.experiments import ExperimentConfig
from schemas.offers import Offer
from streams.settings import Settings
from tests.helpers import click, feedback, purchase
from tests.integration.conftest import (
    ROOT,
    Worker,
    free_port,
    isolated,
    produce,
    read_topic,
    report_fault,
    settings_env,
    wait_for,
)
from tests.integration.scenario import start_ready, worker_stat, worker_stats
from tests.integration.web import WEB_TOKENS, get_json

pytestmark = pytest.mark.integration

ARMS = "holdout:30,nbo:70"
SALT = "integration"
CUSTOMERS = 120
FIELDS = ("customers", "offers", "published", "delivered", "clicked", "converted_offers", "converted_customers",
          "attributed_revenue", "revenue", "buyers", "outcome:converted", "outcome:clicked", "outcome:ignored",
          "outcome:expired")


def scenario(start: datetime) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Counter[str]]]:
    """The teachers' log (replayed before the experiment starts), the experiment's log (in time order) and what
    each arm must count from it."""
    arms = ArmAssignment(ExperimentConfig.start("x", ARMS, salt=SALT))
    teachers = [click(customer=f"t{n}", item=item, price=20.0 if item == "case" else 500.0, session=f"t{n}",
                      at=start + timedelta(minutes=n))
                for n in range(10) for item in ("phone", "case")]  # phone and case together, nothing else
    events: list[dict[str, Any]] = []
    expected: dict[str, Counter[str]] = {"holdout": Counter(), "nbo": Counter()}
    for n in range(CUSTOMERS):
        customer = f"u{n:03d}"
        arm = arms.arm_of(customer).name
        counts = expected[arm]
        seen = start + timedelta(hours=1, seconds=n)
        view = click(customer=customer, item="phone", price=500.0, session=customer, at=seen)
        events.append(view)
        offer_id = Offer.make_id(customer, view["event_id"])
        counts.update(customers=1, offers=1)
        published = arm == "nbo"
        if published:
            counts["published"] += 1
            events.append(feedback(customer=customer, offer_id=offer_id, kind="delivered",
                                   at=seen + timedelta(minutes=1)))
            counts["delivered"] += 1
            if n % 4 in (0, 1):
                events.append(feedback(customer=customer, offer_id=offer_id, kind="clicked",
                                       at=seen + timedelta(minutes=2)))
                counts["clicked"] += 1
        if n % 2 == 0:  # buys the case within a day (and again two days later: it converts once)
            for days in (1, 3):
                events.append(purchase(customer=customer, items=(("case", "electronics", 20.0),), session=customer,
                                       at=seen + timedelta(days=days)))
            counts.update(converted_offers=1, converted_customers=1, attributed_revenue=20, revenue=40, buyers=1)
            counts["outcome:converted"] += 1
            # Each order is a moment to decide too: the phone (the case was just bought), never answered.
            counts.update(offers=2, published=2 if published else 0)
            counts["outcome:expired"] += 2
        elif published:
            counts["outcome:clicked" if n % 4 == 1 else "outcome:ignored"] += 1
        else:
            counts["outcome:expired"] += 1
    events += [feedback(customer=f"late{n}", offer_id=f"late{n}:none", at=start + timedelta(days=11))
               for n in range(24)]  # on every partition, with these customer ids
    events.sort(key=lambda body: body["ts"])
    return teachers, events, expected


def write_log(path: Path, events: list[dict[str, Any]]) -> None:
    path.write_bytes(b"".join(orjson.dumps(body) + b"\n" for body in events))


def start_experiment(settings: Settings) -> None:
    result = subprocess.run([sys.executable, "-m", "streams.cli", "experiment", "start", "x", "--arms", ARMS,
                             "--salt", SALT], cwd=ROOT, env=settings_env(settings), capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr


def arm_counters(settings: Settings) -> dict[str, dict[str, float]]:
    client = redis.Redis.from_url(settings.redis.redis_url, decode_responses=True)
    try:
        return {arm: {k: float(v) for k, v in client.hgetall(f"experiment:x:arm:{arm}").items()}  # type: ignore[union-attr]
                for arm in ("holdout", "nbo")}
    finally:
        client.close()


def as_expected(settings: Settings, expected: dict[str, Counter[str]]) -> bool:
    counted = arm_counters(settings)
    return all(counted[arm].get(name, 0.0) == float(expected[arm].get(name, 0)) for arm in expected for name in FIELDS)


def wait_as_expected(settings: Settings, expected: dict[str, Counter[str]], worker: Worker) -> None:
    try:
        wait_for(lambda: as_expected(settings, expected), 120, "the experiment's counters", worker)
    except AssertionError as error:
        raise AssertionError(f"{error}\ncounted:  {arm_counters(settings)}\nexpected: {dict(expected)}") from None


def replay(settings: Settings, log: Path, tmp_path: Path, *extra: str) -> str:
    result = subprocess.run([sys.executable, "-m", "streams.cli", "replay", str(log), "--no-progress",
                             "--rejects", str(tmp_path / "rejects.jsonl"), *extra], cwd=ROOT,
                            env=settings_env(settings), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


def replay_as_lived(settings: Settings, events: list[dict[str, Any]], tmp_path: Path, worker: Worker) -> None:
    """The log as live traffic sends it to running workers: the views and their feedback first, the purchases (a
    day later) once those are processed. Replayed at once, a fetch may hand a customer's purchase over a batch
    before the view it followed (cross-topic order within one batch is restored; across batches it is not)."""
    first_order = next(n for n, body in enumerate(events) if body["type"] == "purchase")
    before = worker_stat(settings, "accepted")
    for part, slice_ in enumerate((events[:first_order], events[first_order:])):
        log = tmp_path / f"lived-{part}.jsonl"
        write_log(log, slice_)
        replay(settings, log, tmp_path)
        if part == 0:
            wait_for(lambda: worker_stat(settings, "accepted") - before >= first_order, 60, "the views", worker)


def taught(settings: Settings, teachers: list[dict[str, Any]], tmp_path: Path) -> Worker:
    """A worker that has learned the teachers' log (before any experiment)."""
    worker = start_ready(settings, tmp_path / "worker.log", probe_at=datetime.now(UTC) - timedelta(days=13))
    log = tmp_path / "teachers.jsonl"
    write_log(log, teachers)
    replay(settings, log, tmp_path)
    wait_for(lambda: worker_stat(settings, "accepted") >= len(teachers) + 1, 60, "the teachers' log", worker)
    return worker


def test_conversions_count_exactly_once_across_a_replay_and_a_sigkill(stack: Settings, tmp_path: Path) -> None:
    settings = isolated(stack, "experiment", redis_db=14)
    teachers, events, expected = scenario(datetime.now(UTC) - timedelta(days=12))
    log = tmp_path / "log.jsonl"
    write_log(log, events)
    worker = taught(settings, teachers, tmp_path)
    try:
        # Started while the worker runs: it follows without a restart.
        start_experiment(settings)
        wait_for(lambda: "experiment 'x' running" in worker.log_path.read_text(), 30, "the worker to follow", worker)
        replay_as_lived(settings, events, tmp_path, worker)
        wait_as_expected(settings, expected, worker)
        def ours(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [offer for offer in records if offer["customer_id"].startswith("u")]

        offers = ours(read_topic(settings, settings.kafka.offers_topic,
                                 lambda r: len(ours(r)) >= expected["nbo"]["published"]))
        assert Counter(offer.get("arm") for offer in offers) == {"nbo": expected["nbo"]["published"]}  # none held out

        # The whole log again: every event is a duplicate, nothing counts twice.
        before = worker_stat(settings, "duplicates")
        replay(settings, log, tmp_path)
        wait_for(lambda: worker_stat(settings, "duplicates") - before >= len(events), 60, "the duplicates", worker)
        assert as_expected(settings, expected), arm_counters(settings)

        # A crash: SIGKILL, restart (no probe: it would join the experiment), the log once more.
        worker.kill()
        worker = Worker(settings, tmp_path / "worker2.log")
        worker.start()
        replay(settings, log, tmp_path)
        wait_for(lambda: worker_stat(settings, "duplicates", pid=worker.pid) >= len(events), 90, "the duplicates",
                 worker)
        assert as_expected(settings, expected), arm_counters(settings)
        report_fault("experiment: log replayed twice and worker SIGKILLed", sum(expected["nbo"].values()),
                     sum(expected["nbo"].values()))

        # The report, as an operator reads it.
        result = subprocess.run([sys.executable, "-m", "streams.cli", "experiments", "x", "--json"], cwd=ROOT,
                                env=settings_env(settings), capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)["experiments"][0]["report"]
        nbo = next(arm for arm in report["arms"] if arm["arm"] == "nbo")
        assert nbo["conversion_lift"]["interval"] is not None and report["srm_p_value"] is not None
    finally:
        worker.stop()


def test_a_backlog_with_the_purchases_topic_far_behind_converts_every_offer(stack: Settings, tmp_path: Path) -> None:
    settings = isolated(stack, "backlog", redis_db=15, stream_buffer_maxsize=64)
    teachers, events, expected = scenario(datetime.now(UTC) - timedelta(days=12))
    taught(settings, teachers, tmp_path).stop()
    start_experiment(settings)
    # Ahead of the log's purchases, 20,000 records on the same topic (orders whose total does not add up: dead
    # letters, which join no arm): while the worker drains them, the clickstream and the feedback eleven days
    # later are read long before the purchases that convert the offers.
    filler = [purchase(customer=f"f{n % 500}", items=(("filler", "other", 1.0),), total=50.0) for n in range(20_000)]
    produce(settings, [("purchases", body["customer_id"], orjson.dumps(body)) for body in filler])
    log = tmp_path / "log.jsonl"
    write_log(log, events)
    replay(settings, log, tmp_path)  # all of it waits in the topics before a worker starts
    worker = Worker(settings, tmp_path / "worker-backlog.log")
    worker.start()
    try:
        wait_as_expected(settings, expected, worker)
        # The worker publishes its counters once a second: wait for the report, not the assertion, to catch up.
        wait_for(lambda: worker_stat(settings, "dead_letters") >= len(filler), 30, "every filler dead-lettered",
                 worker)
    finally:
        worker.stop()


def test_bad_feedback_goes_to_dead_letters_with_reasons(stack: Settings, tmp_path: Path) -> None:
    settings = isolated(stack, "bad-feedback", redis_db=3)
    good = feedback(customer="c1", offer_id="c1:e1", at=datetime.now(UTC))
    bad = [{**good, "type": "liked"}, {k: v for k, v in good.items() if k != "offer_id"}, {**good, "revenue": -1},
           {**good, "coupon": "X"}]
    produce(settings, [("feedback", "c1", orjson.dumps(body)) for body in bad] + [("feedback", "c1", b"{nope")])
    worker = start_ready(settings, tmp_path / "worker.log")
    try:
        letters = read_topic(settings, settings.kafka.dead_letter_topic, lambda r: len(r) >= 5)
        assert sorted(letter["reason"] for letter in letters) == ["malformed_json", "missing_field", "out_of_range",
                                                                  "unknown_event_type", "unknown_field"]
        assert {letter["source_topic"] for letter in letters} == {settings.kafka.feedback_topic}
        worker.assert_alive()
    finally:
        worker.stop()


def test_two_workers_report_one_experiment(stack: Settings, tmp_path: Path) -> None:
    ports = [free_port(), free_port()]
    settings = isolated(stack, "two-arms", redis_db=2, web_enabled=True, web_tokens=WEB_TOKENS)
    teachers, events, expected = scenario(datetime.now(UTC) - timedelta(days=12))
    taught(settings, teachers, tmp_path).stop()
    start_experiment(settings)
    workers = [Worker(settings.model_copy(update={"worker": settings.worker.model_copy(update={"web_port": port})}),
                      tmp_path / f"worker{n}.log") for n, port in enumerate(ports)]
    for worker in workers:
        worker.start()
    try:
        wait_for(lambda: len(worker_stats(settings)) >= 2 and worker_stat(settings, "assigned_partitions") >= 2, 90,
                 "two workers in the group", workers[0])
        replay_as_lived(settings, events, tmp_path, workers[0])
        wait_as_expected(settings, expected, workers[0])
        reports = [_get(f"http://127.0.0.1:{port}/experiments/x") for port in ports]
        assert reports[0]["report"] == reports[1]["report"]
        assert {arm["arm"]: arm["customers"] for arm in reports[0]["report"]["arms"]} == {
            arm: expected[arm]["customers"] for arm in expected}
        assert all(worker_stat(settings, "accepted", pid=worker.pid) > 0 for worker in workers), \
            "one worker did all the work: the test did not exercise two"
    finally:
        for worker in workers:
            worker.stop()


def _get(url: str) -> dict[str, Any]:
    return get_json(url)  # type: ignore[no-any-return]
