"""A purchase history from the 1990s through the real `perso replay --historical` into a running worker: every
event accepted and reflected once, and the profiles scored in the log's own time (stream time), silent
customers re-scored as that time passes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from streams.settings import Settings
from tests.helpers import click, purchase
from tests.integration.conftest import isolated, profile, wait_for
from tests.integration.scenario import replay, start_ready, worker_stat

START = datetime(1997, 3, 1, 10, tzinfo=UTC)


def history_log(path: Path) -> dict[str, int]:
    """40 customers over a year of 1997-98: the first half stop buying after a month, the rest buy monthly.
    Returns each customer's event count."""
    lines, events = [], {}
    for n in range(40):
        customer = f"h{n:02d}"
        months = 1 if n < 20 else 12
        count = 0
        for month in range(months):
            at = START + timedelta(days=30 * month + n * 0.1)
            lines.append((at, click(customer=customer, item=f"ele-{n % 5}", at=at)))
            lines.append((at + timedelta(minutes=5), purchase(customer=customer, at=at + timedelta(minutes=5))))
            count += 2
        events[customer] = count
    lines.sort(key=lambda pair: pair[0])
    path.write_bytes(b"\n".join(orjson.dumps(body) for _, body in lines) + b"\n")
    return events


def test_a_1990s_log_replays_with_historical_and_is_scored_in_its_own_time(stack: Settings, tmp_path: Path) -> None:
    settings = isolated(stack, "history", redis_db=9)
    log = tmp_path / "history.jsonl"
    events = history_log(log)
    total = sum(events.values())

    refused = replay(settings, log, tmp_path)  # without the flag, the live bound refuses every record
    assert f"rejected {total} ts_too_old" in refused.stdout, refused.stdout

    worker = start_ready(settings, tmp_path / "worker.log", probe_at=START)
    try:
        accepted = replay(settings, log, tmp_path, "--historical")
        assert f"published {total}, rejected 0" in accepted.stdout, accepted.stdout
        wait_for(lambda: all(int(profile(settings, c).get("events", 0)) == n for c, n in events.items()), 120,
                 "every historical event to reach the profiles", worker)
        # The stats hash is refreshed every second.
        wait_for(lambda: worker_stat(settings, "accepted") == total + 1, 10, "the stats to count them", worker)
        assert worker_stat(settings, "dead_letters") == 0
        end = max(datetime.fromisoformat(profile(settings, c)["last_event_ts"]) for c in events)
        assert end.year == 1998

        # Those who stopped after a month are re-scored as the log's time moves on, not left at their last event.
        def rescored() -> bool:
            return all(datetime.fromisoformat(profile(settings, f"h{n:02d}")["scored_at"])
                       > START + timedelta(days=180) for n in range(20))

        wait_for(rescored, 60, "silent customers to be re-scored in the log's time", worker)
        assert worker_stat(settings, "rescored") > 0
        lapsed, loyal = profile(settings, "h00"), profile(settings, "h39")
        for fields in (lapsed, loyal):
            assert fields["churn_risk"] != "" and fields["propensity"] != "" and fields["rfm_code"] != ""
            assert datetime.fromisoformat(fields["scored_at"]) <= end  # never ahead of the stream's time
        assert float(lapsed["recency_days"]) > 150  # days since their only purchase, as of the stream's time
        assert int(loyal["rfm_frequency"]) > int(lapsed["rfm_frequency"])
        assert loyal["rfm_group"] != lapsed["rfm_group"]
    finally:
        worker.stop()
