"""Which failures a batch waits out and which stop the worker."""

import pytest
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    NotEnoughReplicasError,
    UnknownTopicOrPartitionError,
)
from faust.exceptions import ProducerSendError
from redis import exceptions as redis_errors

from streams.worker.failures import classify, describe, is_record_too_large


@pytest.mark.parametrize(("error", "cause", "healable"), [
    (redis_errors.ConnectionError("Connection refused"), "redis_unreachable", True),
    (redis_errors.TimeoutError("Timeout reading"), "redis_unreachable", True),
    (redis_errors.OutOfMemoryError("command not allowed when used memory > 'maxmemory'"), "redis_out_of_memory", True),
    (redis_errors.ReadOnlyError("You can't write against a read only replica."), "redis_read_only", True),
    (redis_errors.BusyLoadingError("Redis is loading the dataset in memory"), "redis_loading", True),
    (redis_errors.ResponseError("BUSY Redis is busy running a script."), "redis_busy", True),
    (redis_errors.ResponseError("MASTERDOWN Link with MASTER is down"), "redis_unavailable", True),
    (redis_errors.NoScriptError("No matching script."), "redis_script_missing", True),
    (redis_errors.NoPermissionError("no permissions to run the 'evalsha' command"), "redis_no_permission", False),
    (redis_errors.AuthenticationError("invalid password"), "redis_auth", False),
    (redis_errors.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"),
     "redis_error", False),
    (KafkaTimeoutError(), "broker_timeout", True),
    (NotEnoughReplicasError(), "broker_retriable", True),
    (KafkaConnectionError("Unable to bootstrap"), "broker_retriable", True),
    (UnknownTopicOrPartitionError(), "broker_retriable", True),
    (MessageSizeTooLargeError(), "record_too_large", False),
    (KeyError("aff_beauty"), "unexpected", False),
])
def test_classification(error: Exception, cause: str, healable: bool) -> None:
    failure = classify(error)
    assert (failure.cause, failure.healable) == (cause, healable)
    assert failure.detail.startswith(type(error).__name__)


def test_the_cause_of_a_wrapped_error_is_what_counts() -> None:
    try:
        try:
            raise MessageSizeTooLargeError("611 bytes")
        except MessageSizeTooLargeError as inner:
            raise ProducerSendError(f"Error while sending: {inner!r}") from inner
    except ProducerSendError as wrapped:
        assert is_record_too_large(wrapped)
        assert classify(wrapped).cause == "record_too_large"


def test_a_redis_error_raised_from_a_socket_error_is_redis_unreachable() -> None:
    # redis-py raises its ConnectionError from the socket's ConnectionRefusedError when a new connection is
    # refused; classified by the socket error, /health answered 503 with Redis "up" while Redis was down.
    for socket_error in (ConnectionRefusedError(111, "Connect call failed"), ConnectionResetError(104, "reset"),
                         TimeoutError("timed out")):
        try:
            try:
                raise socket_error
            except OSError as inner:
                raise redis_errors.ConnectionError("Error 111 connecting to 127.0.0.1:6379.") from inner
        except redis_errors.ConnectionError as error:
            failure = classify(error)
        assert (failure.cause, failure.healable) == ("redis_unreachable", True), socket_error
        assert failure.detail.startswith("ConnectionError: Error 111")


def test_details_are_short_and_name_the_error_once() -> None:
    # aiokafka's errors already start their text with their class name
    assert describe(KafkaConnectionError("Unable to bootstrap")) == "KafkaConnectionError: Unable to bootstrap"
    assert describe(KeyError("aff_beauty")) == "KeyError: 'aff_beauty'"
    assert len(describe(ValueError("x" * 5000))) == 300
