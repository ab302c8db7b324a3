"""Driver exceptions become store errors once, at the edge: an outage is retried, a refused row is
dead-lettered. Taking one for the other either jams the outbox or drops actions."""

from __future__ import annotations

import asyncpg
import pytest

from webhook.store.errors import PostgresUnavailable, RowRefused
from webhook.store.postgres import postgres_error


def server_error(cls: type[asyncpg.PostgresError]) -> asyncpg.PostgresError:
    return cls("refused")


@pytest.mark.parametrize("exc", [
    ConnectionRefusedError(111, "refused"), TimeoutError(), OSError("reset"),
    asyncpg.InterfaceError("connection is closed"),
    server_error(asyncpg.CannotConnectNowError), server_error(asyncpg.TooManyConnectionsError),
    server_error(asyncpg.AdminShutdownError), server_error(asyncpg.SerializationError),
    server_error(asyncpg.LockNotAvailableError), server_error(asyncpg.ConnectionDoesNotExistError),
    asyncpg.exceptions.InternalClientError("cannot perform operation: another operation is in progress"),
])
def test_outages(exc):
    assert isinstance(postgres_error(exc), PostgresUnavailable)


@pytest.mark.parametrize("exc", [
    server_error(asyncpg.NumericValueOutOfRangeError), server_error(asyncpg.UntranslatableCharacterError),
    server_error(asyncpg.InvalidTextRepresentationError), server_error(asyncpg.CheckViolationError),
    server_error(asyncpg.CharacterNotInRepertoireError), UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogate"),
])
def test_refused_rows(exc):
    assert isinstance(postgres_error(exc), RowRefused)


def test_client_side_encoding_errors_are_refused_rows_not_outages():
    # asyncpg raises its client-side DataError (an InterfaceError *and* a ValueError) for a value
    # that does not fit the column type, e.g. 2**31 for an integer: the old gate took it for an outage.
    client_side = next(cls for cls in asyncpg.InterfaceError.__subclasses__() if issubclass(cls, ValueError))
    assert isinstance(postgres_error(client_side("value out of int32 range")), RowRefused)


def test_bugs_are_not_store_errors():
    assert postgres_error(KeyError("x")) is None
