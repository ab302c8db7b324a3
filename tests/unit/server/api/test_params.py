"""REST query parameters are held to what the columns (and the driver) can take: a value beyond
is the caller's mistake, a 400 naming the parameter — never a 503 from the store."""

from __future__ import annotations

import base64
import datetime
import json

import pytest

from webhook.server.api import params
from webhook.server.api.errors import ApiError

NOW = datetime.datetime(2026, 12, 1, 8, 0, tzinfo=datetime.timezone.utc)


def cursor(at: str, action_id: object) -> dict[str, str]:
    raw = json.dumps({"t": at, "i": action_id}).encode()
    return {"cursor": base64.urlsafe_b64encode(raw).decode().rstrip("=")}


def refused(call) -> ApiError:
    with pytest.raises(ApiError) as error:
        call()
    assert error.value.status == 400
    return error.value


@pytest.mark.parametrize("raw", ["9999-12-31T23:59:59-23:00", "0001-01-01T00:00:00+05:00",
                                 "9999-12-31T23:30:00-01:00"])
def test_times_utc_cannot_hold_are_refused_by_name(raw):
    error = refused(lambda: params.moment({"until": raw}, "until", now=NOW))
    assert "until must lie between 0001-01-01 and 9999-12-31 in UTC" in error.message
    assert error.details == [{"loc": "until", "msg": error.message}]


@pytest.mark.parametrize("raw, expected", [
    ("9999-12-31T23:59:59Z", datetime.datetime(9999, 12, 31, 23, 59, 59, tzinfo=datetime.timezone.utc)),
    ("0001-01-01T05:00:00+05:00", datetime.datetime(1, 1, 1, tzinfo=datetime.timezone.utc)),
    ("2026-12-01T09:00:00+01:00", NOW),
    ("2026-12-01T08:00:00", NOW),
    ("2h", NOW - datetime.timedelta(hours=2)),
])
def test_times_within_range_come_back_in_utc(raw, expected):
    value = params.moment({"since": raw}, "since", now=NOW)
    assert value == expected and value.utcoffset() == datetime.timedelta(0)


@pytest.mark.parametrize("query", [
    cursor("2026-01-01T00:00:00+00:00", 10**30),
    cursor("2026-01-01T00:00:00+00:00", 2**63),
    cursor("2026-01-01T00:00:00+00:00", 0),
    cursor("2026-01-01T00:00:00+00:00", -5),
    cursor("9999-12-31T23:59:59-23:00", 5),
    cursor("0001-01-01T00:00:00+05:00", 5),
])
def test_cursors_beyond_the_columns_are_refused(query):
    error = refused(lambda: params.decode_cursor(query))
    assert error.details == [{"loc": "cursor", "msg": error.message}]


def test_a_cursor_this_api_returned_round_trips():
    at = datetime.datetime(2026, 11, 30, 12, 0, tzinfo=datetime.timezone.utc)
    encoded = params.encode_cursor(at, params.MAX_ID)
    assert params.decode_cursor({"cursor": encoded}) == (at, params.MAX_ID)
