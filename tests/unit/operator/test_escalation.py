"""Recurring incidents of one target escalate to design: the counting rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rescue.operator.escalation import recurring

NOW = datetime(2026, 12, 3, 12, 0, 0, tzinfo=UTC)
WEEK = timedelta(days=7)


def _seen(*entries: tuple[int, str]) -> list[str]:
    return [
        f"{(NOW - timedelta(days=d)).strftime('%Y-%m-%dT%H:%M:%SZ')} {ref}" for d, ref in entries
    ]


def test_the_third_rescue_within_the_window_makes_a_recurrence() -> None:
    seen = _seen((1, "shop/a"), (3, "shop/b"), (0, "shop/me"))
    assert recurring(seen, me="shop/me", now=NOW, window=WEEK, count=3) == ["shop/b", "shop/a"]


def test_rescues_older_than_the_window_do_not_count() -> None:
    seen = _seen((1, "shop/a"), (30, "shop/b"), (0, "shop/me"))
    assert recurring(seen, me="shop/me", now=NOW, window=WEEK, count=3) is None


def test_a_count_of_zero_turns_the_rule_off() -> None:
    seen = _seen((1, "shop/a"), (2, "shop/b"))
    assert recurring(seen, me="shop/me", now=NOW, window=WEEK, count=0) is None
