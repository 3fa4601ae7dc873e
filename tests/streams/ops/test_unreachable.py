"""The one-line explanation a command prints when a service cannot be reached."""

from redis import exceptions as redis_errors

from streams.ops.unreachable import explain_unreachable
from streams.settings import Settings


def test_redis_refusing_a_new_connection_is_explained_not_raised() -> None:
    # redis-py raises its ConnectionError from the socket's ConnectionRefusedError: the explanation must see the
    # Redis error, not stop at the socket error under it (which left the command to print a traceback).
    try:
        try:
            raise ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 6390)")
        except OSError as inner:
            raise redis_errors.ConnectionError("Error 111 connecting to 127.0.0.1:6390.") from inner
    except redis_errors.ConnectionError as error:
        explained = explain_unreachable(error, Settings())
    assert explained is not None
    assert explained.startswith("cannot reach Redis at ") and "(check PERSO_REDIS_URL)" in explained, explained
    assert explained.endswith("ConnectionError: Error 111 connecting to 127.0.0.1:6390."), explained


def test_an_error_of_neither_service_is_left_to_the_caller() -> None:
    assert explain_unreachable(KeyError("x"), Settings()) is None
