"""Page cursors of the job lists: the key of the last row of a page
(``pgtq._inspection.JobRow.key``), carried in the link to the next page.

A cursor is URL-safe text: base64 of a small JSON array holding the list
order it belongs to and the key's values (times as ISO 8601 text). It is
not secret and needs no signature: every value is checked by type and
bound as a query parameter, so a forged cursor can only move the page.
Pure: no database.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any

from pgtq._inspection import ListOrder, PageKey

# The types of each order's key, in order ("time", "int", "text").
_KEY_TYPES = {
    ListOrder.NEWEST_FINISHED: ("time", "int"),
    ListOrder.NEXT_DUE: ("time", "int"),
    ListOrder.LEASE_EXPIRY: ("time", "int"),
    ListOrder.POP_ORDER: ("text", "int", "int"),
    ListOrder.NEWEST: ("int",),
}
_MAX_CURSOR_LENGTH = 2000
_BIGINT = 2**63 - 1


class CursorError(ValueError):
    """A page cursor that this list cannot use (malformed, or of another list)."""


def encode_cursor(order: ListOrder, key: PageKey) -> str:
    """The cursor of the page that starts after the row with ``key``."""
    values = [value.isoformat() if isinstance(value, datetime) else value for value in key]
    raw = json.dumps([order.value, values], separators=(",", ":"), ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(order: ListOrder, cursor: str) -> PageKey:
    """The key a cursor holds, checked against the list ``order`` it is used with."""
    if len(cursor) > _MAX_CURSOR_LENGTH:
        raise CursorError("page cursor too long")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        tag, values = json.loads(raw)
    except (binascii.Error, ValueError, TypeError) as error:
        raise CursorError("malformed page cursor") from error
    if tag != order.value:
        raise CursorError("this page link belongs to a list with another state filter")
    types = _KEY_TYPES[order]
    if not isinstance(values, list) or len(values) != len(types):
        raise CursorError("malformed page cursor")
    return tuple(_value(kind, value) for kind, value in zip(types, values, strict=True))


def _value(kind: str, value: Any) -> Any:
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int) or not -_BIGINT <= value <= _BIGINT:
            raise CursorError("malformed page cursor: bad number")
        return value
    if not isinstance(value, str):
        raise CursorError("malformed page cursor")
    if kind == "text":
        return value
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as error:
        raise CursorError("malformed page cursor: bad time") from error
    if moment.tzinfo is None:
        raise CursorError("malformed page cursor: time without a time zone")
    return moment
