"""shared/clock.py Instant: the moments a client may give are those the database stores as given."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import TypeAdapter, ValidationError

from shared.clock import Instant

INSTANT = TypeAdapter(Instant)


@pytest.mark.parametrize("text", [
    "0001-01-01T00:00:00Z",  # datetime.min: asyncpg would store -infinity
    "0001-01-01T09:00:00+09:00",  # the same moment
    "9999-12-31T23:59:59.999999Z",  # datetime.max: infinity
    "0001-01-01T00:00:00+01:00",  # before the year 1 in UTC
    "9999-12-31T23:00:00-02:00",  # after the year 9999 in UTC
    "2026-04-01T09:00:00",  # no offset
    "1700000000",  # Unix time
])
def test_a_moment_the_database_would_not_keep_is_refused(text):
    with pytest.raises(ValidationError):
        INSTANT.validate_python(text)


def test_moments_inside_the_range_are_kept_as_given():
    assert INSTANT.validate_python("2026-04-01T09:00:00+09:00") == datetime(2026, 4, 1, tzinfo=UTC)
    assert INSTANT.validate_python("0001-01-01T00:00:01Z") == datetime(1, 1, 1, 0, 0, 1, tzinfo=UTC)
    edge = datetime(9999, 12, 31, 23, 59, 59, 999998, tzinfo=timezone(timedelta(0)))
    assert INSTANT.validate_python(edge.isoformat()) == edge
