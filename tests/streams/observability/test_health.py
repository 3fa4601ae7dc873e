"""The health record the pipeline's sensors keep: degraded from the first failed attempt until a batch completes."""

from redis import exceptions as redis_errors

from streams.observability.health import BatchHealth
from streams.worker.failures import classify


def test_health_counts_attempts_from_the_first_failure_until_a_batch_completes() -> None:
    clock = iter([10.0, 11.0, 12.5]).__next__  # first failure, report, completion
    health = BatchHealth(clock=clock)
    oom = classify(redis_errors.OutOfMemoryError("no room"))
    health.on_attempt_failed("save", oom, waiting=40)
    health.on_attempt_failed("save", oom, waiting=40)
    report = health.report()
    assert report["status"] == "degraded" and report["since"] == 10.0 and report["attempts"] == 2
    assert report["failing_for_s"] == 1.0 and report["batch_records"] == 40
    health.completed()
    assert health.ok and health.report() == {"status": "ok"} and health.last_recovery_s == 2.5
    assert health.failures_by_cause == {"redis_out_of_memory": 2}
