"""The rules every stored ``llm_calls`` row satisfies, enforced on a batch's columns before they are written.

Whatever built the attributes (our processor, another service's processor re-sent through the
receiver, an application that wrote our names itself), a row is stored only in this shape:

- token counts are integers, ``0 <= n <= MAX_TOKEN_COUNT`` (10^12, far above any real call);
  ``total_tokens = input_tokens + output_tokens``; ``cache_read_tokens + cache_write_tokens <=
  input_tokens``; ``cache_write_1h_tokens <= cache_write_tokens``; ``reasoning_tokens <= output_tokens``;
- money is never negative and fits the money type (below $1,000,000 a call);
- ``cost_status`` is one of :data:`COST_STATUSES`; ``priced``, ``reported`` and ``free`` rows carry a
  cost (a free one exactly 0); ``unpriced`` and ``invalid`` rows carry none, and say why in
  ``cost_reason``. An application's own ``llm.cost_usd`` on a call we cannot price is kept aside in
  ``external_cost_usd``: never summed as spend;
- a non-billable row (a duplicate record of a call, an agent/workflow span repeating its children's
  totals) has ``cost_usd`` NULL: its figure is in ``unbilled_cost_usd``, so summing ``cost_usd``
  without the billable filter cannot double-count;
- ``user_id`` is in the stored hashed form (``h:`` + 32 hex digits); anything else is hashed here;
- ``start_time`` and ``end_time`` are nanoseconds since the epoch within the timestamp range
  (0 to 2^63 - 1), and the end is not before the start; an out-of-range time is stored NULL.

A row that breaks a rule is never dropped: it is stored with ``cost_status = 'invalid'``, no cost,
the offending counts NULL and the reason in ``cost_reason``; reports count it with the unpriced calls.
"""

from __future__ import annotations

import itertools
import math
import operator
import re
from collections.abc import Callable, Sequence
from typing import Any, Final, cast

from otel_llm_cost.storage.columns import CALL_INDEX

__all__ = ["COST_STATUSES", "MAX_TOKEN_COUNT", "enforce_call_invariants"]

MAX_TOKEN_COUNT: Final = 10**12
"""The largest token count a row holds (a million times a 1M-token context window)."""

COST_STATUSES: Final = frozenset({"priced", "unpriced", "reported", "free", "invalid"})
"""``cost_status`` values: see docs/storage.md for what each means and which rows reports sum."""

_MONEY_LIMIT: Final = 1e6  # DECIMAL(18,12) holds 6 integer digits
_MAX_NANOS: Final = 2**63 - 1  # the timestamp column's range, as the Arrow int64 nanoseconds it is built from
_HASHED_USER_ID: Final = re.compile(r"h:[0-9a-f]{32}")
_HASHED_USER_IDS: Final = re.compile(r"(?:h:[0-9a-f]{32})+")
_HASHED_LENGTH: Final = len("h:") + 32
_COUNTS: Final = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "reasoning_tokens",
    "cache_tokens_saved",
)
_COST_PARTS: Final = (
    "input_cost_usd",
    "cache_read_cost_usd",
    "cache_write_cost_usd",
    "output_cost_usd",
    "cache_saved_usd",
)
_MONEY: Final = ("cost_usd", *_COST_PARTS, "external_cost_usd")
_WITH_COST: Final = frozenset({"priced", "reported", "free"})
_CHARGED: Final = frozenset({"priced", "reported"})


def _is_count(value: object) -> bool:
    return type(value) is int and 0 <= value <= MAX_TOKEN_COUNT


def _integral_string(value: object) -> int | None:
    """A count written as a decimal string ("12"), as some senders do, else ``None``."""
    # Strip ASCII spaces only: str.strip() also removes separators such as \x1c that int() refuses.
    text = value.strip(" \t\n\r") if isinstance(value, str) else ""
    if text.isascii() and text.isdigit():
        number = int(text)
        return number if number <= MAX_TOKEN_COUNT else None
    return None


def _is_money(value: object) -> bool:
    # NaN fails both comparisons; bool is not money.
    return type(value) in (float, int) and 0 <= value < _MONEY_LIMIT  # type: ignore[operator]


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


class _Batch:
    """The batch's columns, copied on first write, and the reason each broken row is invalid."""

    __slots__ = ("columns", "count", "invalid")

    def __init__(self, columns: list[Sequence[Any] | None], count: int) -> None:
        self.columns = columns
        self.count = count
        self.invalid: dict[int, str] = {}

    def get(self, name: str) -> Sequence[Any] | None:
        return self.columns[CALL_INDEX[name]]

    def set(self, name: str, row: int, value: object) -> None:
        index = CALL_INDEX[name]
        values = self.columns[index]
        if values is None:
            if value is None:
                return
            values = [None] * self.count
        elif not isinstance(values, list):
            values = list(values)
        self.columns[index] = values
        values[row] = value

    def value(self, name: str, row: int) -> Any:
        values = self.columns[CALL_INDEX[name]]
        return None if values is None else values[row]

    def reject(self, row: int, reason: str) -> None:
        self.invalid.setdefault(row, reason)


def enforce_call_invariants(
    columns: list[Sequence[Any] | None], count: int, hash_user_id: Callable[[object], str]
) -> int:
    """Bring a batch's ``llm_calls`` columns into the stored shape (see the module doc), in place.

    Args:
        columns: One value list per ``llm_calls`` column, in schema order (``None``: all NULL).
        count: Rows in the batch.
        hash_user_id: Hashes a user id found in any other form than the stored one.

    Returns:
        How many rows were stored as ``invalid``.
    """
    batch = _Batch(columns, count)
    _check_times(batch)
    _check_counts(batch)
    _check_relations(batch)
    _check_money(batch)
    _check_statuses(batch)
    for row, reason in batch.invalid.items():
        batch.set("cost_status", row, "invalid")
        batch.set("cost_reason", row, f"invalid: {reason}")
        batch.set("cost_usd", row, None)
        for name in _COST_PARTS:
            batch.set(name, row, None)
    _move_unbilled(batch)
    _hash_user_ids(batch, hash_user_id)
    return len(batch.invalid)


def _valid_time(value: object) -> bool:
    return type(value) is int and 0 <= value <= _MAX_NANOS


def _check_times(batch: _Batch) -> None:
    starts, ends = batch.get("start_time"), batch.get("end_time")
    if starts is None or ends is None:
        rows: Sequence[tuple[object, object]] = [
            (batch.value("start_time", row), batch.value("end_time", row)) for row in range(batch.count)
        ]
    else:
        if _types(starts) | _types(ends) <= {int} and (
            not starts
            or (min(starts) >= 0 and max(ends) <= _MAX_NANOS and all(map(operator.ge, ends, starts)))
        ):
            return  # the usual batch, checked in C: integer times in range, no end before its start
        rows = list(zip(starts, ends, strict=True))
    for row, (start, end) in enumerate(rows):
        if not _valid_time(start):
            batch.reject(row, f"start_time {_show(start)} is not a time in the timestamp range")
            batch.set("start_time", row, None)
        if end is not None and not _valid_time(end):
            batch.reject(row, f"end_time {_show(end)} is not a time in the timestamp range")
            batch.set("end_time", row, None)
        elif _valid_time(start) and end is not None and end < start:  # type: ignore[operator]
            batch.reject(row, "end_time is before start_time")
            batch.set("end_time", row, None)


def _types(values: Sequence[Any]) -> set[type]:
    return set(map(type, values))


def _within(values: Sequence[Any], kinds: set[type], low: float, high: float, *, closed: bool) -> bool:
    """Whether every value but None has one of ``kinds``, lies in [low, high] (``closed``) or [low, high)
    and is not NaN: a few passes in C instead of a Python step per value."""
    types = _types(values)
    if not types <= kinds | {type(None)}:
        return False
    if type(None) in types:
        values = [value for value in values if value is not None]
    if not values:
        return True
    top = max(values)
    # min/max skip a NaN between numbers; the sum of the values does not (only a float can be NaN).
    return (
        min(values) >= low
        and (top <= high if closed else top < high)
        and (float not in types or not math.isnan(sum(values)))
    )


def _check_counts(batch: _Batch) -> None:
    for name in _COUNTS:
        values = batch.get(name)
        if values is None or _within(values, {int}, 0, MAX_TOKEN_COUNT, closed=True):
            continue
        for row, value in enumerate(values):
            if value is not None and not _is_count(value):
                number = _integral_string(value)
                if number is not None:
                    batch.set(name, row, number)
                    continue
                batch.reject(row, f"{name} {_show(value)} is not an integer in [0, 10^12]")
                batch.set(name, row, None)


def _relations_hold(batch: _Batch) -> bool:
    """The usual batch, checked in a few C-level passes: every row has its three counts and they agree."""
    inputs, outputs, totals = batch.get("input_tokens"), batch.get("output_tokens"), batch.get("total_tokens")
    if inputs is None or outputs is None or totals is None:
        return (
            inputs is None
            and outputs is None
            and totals is None
            and not any(
                batch.get(name) for name in ("cache_read_tokens", "cache_write_tokens", "reasoning_tokens")
            )
        )
    none = itertools.repeat(0)
    try:
        if not all(map(operator.eq, map(operator.add, inputs, outputs), totals)):
            return False
        present = [batch.get(name) for name in _PARTS_OF_COUNTS]
        if all(values is not None and None not in values for values in present):
            return _parts_fit(inputs, outputs, *cast("list[Sequence[Any]]", present))
        reads, writes = batch.get("cache_read_tokens") or none, batch.get("cache_write_tokens") or none
        writes_1h, reasoning = (
            batch.get("cache_write_1h_tokens") or none,
            batch.get("reasoning_tokens") or none,
        )
        return not any(
            (read or 0) + (write or 0) > inp or (write_1h or 0) > (write or 0) or (think or 0) > out
            for inp, out, read, write, write_1h, think in zip(
                inputs,
                outputs,
                reads,
                writes,
                writes_1h,
                reasoning,
                strict=False,  # absent: endless zeros
            )
        )
    except TypeError:  # a NULL count: the row-by-row check says what is wrong
        return False


_PARTS_OF_COUNTS: Final = (
    "cache_read_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "reasoning_tokens",
)


def _parts_fit(  # noqa: PLR0917 - the four parts, in _PARTS_OF_COUNTS order
    inputs: Sequence[int],
    outputs: Sequence[int],
    reads: Sequence[int],
    writes: Sequence[int],
    writes_1h: Sequence[int],
    reasoning: Sequence[int],
) -> bool:
    """Every row's cache and reasoning counts fit its input and output counts (no NULL): passes in C."""
    return (
        all(map(operator.le, map(operator.add, reads, writes), inputs))
        and all(map(operator.le, writes_1h, writes))
        and all(map(operator.le, reasoning, outputs))
    )


def _check_relations(batch: _Batch) -> None:
    if _relations_hold(batch):
        return
    input_tokens, output_tokens = batch.get("input_tokens"), batch.get("output_tokens")
    totals = batch.get("total_tokens")
    for row in range(batch.count):
        inputs = None if input_tokens is None else input_tokens[row]
        outputs = None if output_tokens is None else output_tokens[row]
        total = None if totals is None else totals[row]
        expected = None if inputs is None or outputs is None else inputs + outputs
        if total is not None and total != expected:
            batch.reject(row, f"total_tokens {_show(total)} is not input + output ({expected})")
        if total != expected:
            batch.set("total_tokens", row, expected)
        read, write = batch.value("cache_read_tokens", row), batch.value("cache_write_tokens", row)
        if (read or write) and (inputs is None or (read or 0) + (write or 0) > inputs):
            batch.reject(row, f"cache read + write ({read}, {write}) exceed input_tokens ({inputs})")
            for name in (
                "cache_read_tokens",
                "cache_write_tokens",
                "cache_write_1h_tokens",
                "cache_tokens_saved",
            ):
                batch.set(name, row, None)
        write_1h = batch.value("cache_write_1h_tokens", row)
        if write_1h and write_1h > (batch.value("cache_write_tokens", row) or 0):
            batch.reject(row, f"cache_write_1h_tokens ({write_1h}) exceed cache_write_tokens")
            batch.set("cache_write_1h_tokens", row, None)
        reasoning = batch.value("reasoning_tokens", row)
        if reasoning and (outputs is None or reasoning > outputs):
            batch.reject(row, f"reasoning_tokens ({reasoning}) exceed output_tokens ({outputs})")
            batch.set("reasoning_tokens", row, None)


def _check_money(batch: _Batch) -> None:
    for name in _MONEY:
        values = batch.get(name)
        if values is None or _within(values, {float, int}, 0, _MONEY_LIMIT, closed=False):
            continue
        for row, value in enumerate(values):
            if value is not None and not _is_money(value):
                if name != "external_cost_usd":  # another tool's figure: dropped, the row stays valid
                    batch.reject(row, f"{name} {_show(value)} is not an amount in [0, 1e6) USD")
                batch.set(name, row, None)


def _check_statuses(batch: _Batch) -> None:
    statuses = batch.get("cost_status") or [None] * batch.count
    costs = batch.get("cost_usd")
    try:
        charged = _CHARGED.issuperset(statuses)
    except TypeError:  # an unhashable status: the row-by-row check rejects it
        charged = False
    if not batch.invalid and costs is not None and None not in costs and charged:
        return  # the usual batch: every call priced, with its cost
    for row, status in enumerate(statuses):
        cost = batch.value("cost_usd", row)
        if status in _WITH_COST:
            if cost is None and row not in batch.invalid:
                batch.reject(row, f"status {status!r} without a cost")
            elif status == "free" and cost:
                batch.reject(row, f"status 'free' with a cost of {_show(cost)}")
        elif status == "unpriced" or (status == "invalid" and row not in batch.invalid):
            if cost is not None:
                # An application's own figure on a call we cannot price: kept aside, never summed.
                if batch.value("external_cost_usd", row) is None:
                    batch.set("external_cost_usd", row, cost)
                batch.set("cost_usd", row, None)
                for name in _COST_PARTS:
                    batch.set(name, row, None)
            if not batch.value("cost_reason", row):
                batch.set("cost_reason", row, f"{status}: no reason given")
        else:
            batch.reject(row, f"unknown cost status {_show(status)}")


def _move_unbilled(batch: _Batch) -> None:
    billable = batch.get("billable")
    costs = batch.get("cost_usd")
    if billable is None or costs is None or all(billable):
        return
    for row, flag in enumerate(billable):
        if flag is False and costs[row] is not None:
            batch.set("unbilled_cost_usd", row, costs[row])
            batch.set("cost_usd", row, None)


def _all_hashed(users: set[Any]) -> bool:
    """Whether every one of ``users`` is in the stored hashed form, in one regular-expression pass:
    joined, ids of the form's one length sit at fixed offsets, so the repeated form matches each."""
    return not users or (
        set(map(type, users)) == {str}
        and set(map(len, users)) == {_HASHED_LENGTH}
        and _HASHED_USER_IDS.fullmatch("".join(users)) is not None
    )


def _hash_user_ids(batch: _Batch, hash_user_id: Callable[[object], str]) -> None:
    users = batch.get("user_id")
    if users is None:
        return
    match = _HASHED_USER_ID.fullmatch
    try:
        distinct = set(users)
    except TypeError:  # an unhashable value: checked row by row
        pass
    else:
        distinct.discard(None)
        if _all_hashed(distinct):
            return  # the usual batch: every id already hashed (a user's calls share one id)
    for row, user in enumerate(users):
        if user is not None and not (isinstance(user, str) and match(user)):
            batch.set("user_id", row, hash_user_id(user))
