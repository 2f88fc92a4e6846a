"""How one incident becomes one Rescue: its name, its labels, its start and its alerts."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings, target
from hypothesis import strategies as st

from rescue.core.incident import (
    AlertRecord,
    clip,
    clip_map,
    format_time,
    group_hash,
    incident_start,
    merge_alerts,
    parse_time,
    rescue_labels,
    rescue_name,
)
from rescue.core.model import LABEL_GROUP, LABEL_SEVERITY, MAX_ALERTS, MAX_TEXT

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
START = datetime(2026, 12, 3, 10, 0, 0, tzinfo=UTC)
GROUP = '{}:{alertname="CheckoutErrorRate", namespace="shop"}'


def _stamp(minutes: int) -> str:
    return format_time(START + timedelta(minutes=minutes))


def _record(
    fingerprint: str, status: str = "firing", minutes: int = 0, **extra: Any
) -> AlertRecord:
    record: AlertRecord = {
        "fingerprint": fingerprint,
        "alertname": "CheckoutErrorRate",
        "status": status,
        "startsAt": _stamp(minutes),
        "labels": {"alertname": "CheckoutErrorRate"},
        "annotations": {},
    }
    record.update(extra)  # type: ignore[typeddict-item]
    return record


def _is_valid_name(name: str) -> bool:
    return len(name) <= 63 and DNS_LABEL.match(name) is not None


# --- rescue_name -----------------------------------------------------------------------------


def test_rescue_name_is_the_same_for_the_same_incident() -> None:
    first = rescue_name(alertname="CheckoutErrorRate", group_key=GROUP, started=START)
    again = rescue_name(alertname="CheckoutErrorRate", group_key=GROUP, started=START)
    assert first == again


def test_rescue_name_is_a_slug_of_the_alertname_and_a_ten_hex_digest() -> None:
    name = rescue_name(alertname="CheckoutErrorRate", group_key=GROUP, started=START)
    assert re.fullmatch(r"checkouterrorrate-[0-9a-f]{10}", name)


def test_rescue_name_is_the_same_for_the_same_instant_in_another_timezone() -> None:
    elsewhere = START.astimezone(timezone(timedelta(hours=5, minutes=30)))
    assert rescue_name(alertname="A", group_key=GROUP, started=elsewhere) == rescue_name(
        alertname="A", group_key=GROUP, started=START
    )


def test_rescue_name_ignores_fractions_of_a_second_of_the_start() -> None:
    later = START + timedelta(microseconds=999_999)
    assert rescue_name(alertname="A", group_key=GROUP, started=later) == rescue_name(
        alertname="A", group_key=GROUP, started=START
    )


def test_later_incident_of_the_same_group_gets_a_new_name() -> None:
    later = START + timedelta(seconds=1)
    assert rescue_name(alertname="A", group_key=GROUP, started=later) != rescue_name(
        alertname="A", group_key=GROUP, started=START
    )


def test_another_group_at_the_same_start_gets_a_new_name() -> None:
    assert rescue_name(alertname="A", group_key="{}:{a=1}", started=START) != rescue_name(
        alertname="A", group_key="{}:{a=2}", started=START
    )


def test_rescue_name_replaces_characters_outside_a_dns_label_with_dashes() -> None:
    name = rescue_name(alertname="Disk Full!/dev_sda", group_key=GROUP, started=START)
    assert name.startswith("disk-full-dev-sda-")
    assert _is_valid_name(name)


@pytest.mark.parametrize("alertname", ["", "!!!", "---", "ÄÖÜ"])
def test_alertname_without_usable_characters_gives_the_prefix_alert(alertname: str) -> None:
    name = rescue_name(alertname=alertname, group_key=GROUP, started=START)
    assert re.fullmatch(r"alert-[0-9a-f]{10}", name)


def test_long_alertname_is_cut_to_forty_characters_without_a_trailing_dash() -> None:
    alertname = "a" * 39 + "_" + "b" * 100  # the 40th character becomes a dash
    name = rescue_name(alertname=alertname, group_key=GROUP, started=START)
    slug = name.rsplit("-", 1)[0]
    assert slug == "a" * 39
    assert _is_valid_name(name)


@settings(database=None, deadline=None, max_examples=300)
@given(
    alertname=st.text(max_size=300),
    group_key=st.text(max_size=300),
    started=st.datetimes(
        min_value=datetime(1971, 1, 1),
        max_value=datetime(2999, 12, 31),
        timezones=st.builds(
            timezone, st.timedeltas(min_value=timedelta(hours=-23), max_value=timedelta(hours=23))
        ),
    ),
)
def test_rescue_name_is_always_a_valid_kubernetes_dns_label(
    alertname: str, group_key: str, started: datetime
) -> None:
    name = rescue_name(alertname=alertname, group_key=group_key, started=started)
    assert _is_valid_name(name), name


# --- labels and time --------------------------------------------------------------------------


def test_group_hash_is_a_twenty_hex_digest_that_depends_on_the_key() -> None:
    assert re.fullmatch(r"[0-9a-f]{20}", group_hash(GROUP))
    assert group_hash(GROUP) == group_hash(GROUP)
    assert group_hash(GROUP) != group_hash(GROUP + " ")


def test_rescue_labels_carry_the_group_hash_and_the_lowercased_severity() -> None:
    assert rescue_labels(group_key=GROUP, severity="SEV2") == {
        LABEL_GROUP: group_hash(GROUP),
        LABEL_SEVERITY: "sev2",
    }


def test_format_time_is_rfc3339_utc_to_the_second() -> None:
    moment = datetime(2026, 12, 3, 12, 30, 5, 123456, tzinfo=timezone(timedelta(hours=2)))
    assert format_time(moment) == "2026-12-03T10:30:05Z"


@pytest.mark.parametrize("text", ["2026-12-03T10:00:00Z", "2026-12-03T11:00:00+01:00"])
def test_parse_time_reads_rfc3339_into_utc(text: str) -> None:
    parsed = parse_time(text)
    assert parsed == START
    assert parsed.utcoffset() == timedelta(0)


# --- incident_start ---------------------------------------------------------------------------


def test_incident_start_is_the_earliest_firing_start() -> None:
    alerts = [_record("b", minutes=5), _record("a", minutes=2), _record("c", minutes=9)]
    assert incident_start(alerts) == START + timedelta(minutes=2)


def test_incident_start_ignores_resolved_alerts_while_any_fires() -> None:
    alerts = [_record("old", "resolved", minutes=-60), _record("now", "firing", minutes=3)]
    assert incident_start(alerts) == START + timedelta(minutes=3)


def test_incident_start_of_only_resolved_alerts_is_their_earliest_start() -> None:
    alerts = [_record("a", "resolved", minutes=7), _record("b", "resolved", minutes=4)]
    assert incident_start(alerts) == START + timedelta(minutes=4)


def test_incident_start_compares_instants_not_text() -> None:
    early_offset = _record("a", startsAt="2026-12-03T10:30:00+02:00")  # 08:30 UTC
    late_utc = _record("b", startsAt="2026-12-03T09:00:00Z")
    assert incident_start([late_utc, early_offset]) == datetime(2026, 12, 3, 8, 30, tzinfo=UTC)


# --- clip -------------------------------------------------------------------------------------


def test_clip_keeps_text_up_to_the_limit_unchanged() -> None:
    assert clip("x" * MAX_TEXT) == "x" * MAX_TEXT
    assert clip("short", 256) == "short"


def test_clip_shortens_longer_text_to_exactly_the_limit_and_says_so() -> None:
    clipped = clip("abcdefghij" * 100, 256)
    assert len(clipped) == 256
    assert clipped.endswith("... (truncated)")
    assert clipped.startswith("abcdefghij" * 24)


def test_clip_map_clips_keys_to_256_and_values_to_the_limit() -> None:
    clipped = clip_map({"k" * 300: "v" * 100}, limit=50)
    [(key, value)] = clipped.items()
    assert (len(key), len(value)) == (256, 50)


# --- merge_alerts -----------------------------------------------------------------------------


def test_merge_adds_new_alerts_and_reports_nothing_dropped() -> None:
    merged, dropped = merge_alerts([_record("a")], [_record("b", minutes=1)])
    assert [a["fingerprint"] for a in merged] == ["a", "b"]
    assert dropped == 0


def test_incoming_state_of_a_known_alert_replaces_the_existing_one() -> None:
    resolved = _record("a", "resolved", endsAt=_stamp(30))
    merged, _ = merge_alerts([_record("a")], [resolved])
    assert merged == [resolved]


def test_late_firing_copy_of_a_resolved_occurrence_does_not_reopen_it() -> None:
    resolved = _record("a", "resolved", endsAt=_stamp(30))
    merged, _ = merge_alerts([resolved], [_record("a", "firing")])
    assert merged == [resolved]


def test_new_occurrence_of_a_resolved_alert_fires_again() -> None:
    resolved = _record("a", "resolved", endsAt=_stamp(30))
    refired = _record("a", "firing", minutes=45)
    merged, _ = merge_alerts([resolved], [refired])
    assert merged == [refired]


def test_late_firing_copy_with_an_older_start_does_not_reopen_a_resolved_alert() -> None:
    resolved = _record("a", "resolved", minutes=60, endsAt=_stamp(90))
    late = _record("a", "firing", minutes=0)
    merged, _ = merge_alerts([resolved], [late])
    assert merged == [resolved]


def test_merged_alerts_are_ordered_by_start_then_fingerprint() -> None:
    incoming = [_record("z", minutes=1), _record("b", minutes=5), _record("a", minutes=1)]
    merged, _ = merge_alerts([], incoming)
    assert [a["fingerprint"] for a in merged] == ["a", "z", "b"]


def test_merge_keeps_at_most_max_alerts_newest_first_and_counts_the_rest() -> None:
    incoming = [_record(f"fp{i:03d}", minutes=i) for i in range(MAX_ALERTS + 10)]
    merged, dropped = merge_alerts([], incoming)
    assert len(merged) == MAX_ALERTS
    assert dropped == 10
    assert {a["fingerprint"] for a in merged} == {f"fp{i:03d}" for i in range(10, MAX_ALERTS + 10)}


def test_merge_keeps_the_most_recently_started_alerts_whatever_their_status() -> None:
    resolved = [_record(f"r{i:03d}", "resolved", minutes=100 + i) for i in range(MAX_ALERTS)]
    old_firing = _record("firing", "firing", minutes=0)
    merged, dropped = merge_alerts(resolved, [old_firing])
    assert old_firing not in merged
    assert dropped == 1
    assert {a["fingerprint"] for a in merged} == {f"r{i:03d}" for i in range(MAX_ALERTS)}


def test_existing_alerts_are_normalised_to_records() -> None:
    from_api: dict[str, Any] = {
        "fingerprint": "a",
        "alertname": "A",
        "status": "firing",
        "startsAt": _stamp(0),
        "endsAt": "",
        "generatorURL": "",
        "labels": None,
        "somethingElse": 1,
    }
    merged, _ = merge_alerts([from_api], [])
    assert merged == [
        {
            "fingerprint": "a",
            "alertname": "A",
            "status": "firing",
            "startsAt": _stamp(0),
            "labels": {},
            "annotations": {},
        }
    ]


def test_merge_does_not_modify_the_records_it_is_given() -> None:
    existing = [_record("a")]
    incoming = [_record("a", "resolved", endsAt=_stamp(5))]
    before = (repr(existing), repr(incoming))
    merge_alerts(existing, incoming)
    assert (repr(existing), repr(incoming)) == before


def _records(fingerprints: st.SearchStrategy[str], max_size: int) -> st.SearchStrategy[Any]:
    return st.lists(
        st.builds(
            _record,
            fingerprint=fingerprints,
            status=st.sampled_from(["firing", "resolved"]),
            minutes=st.integers(min_value=0, max_value=5),  # few starts: stale copies are common
        ),
        max_size=max_size,
    )


_many = st.text(alphabet="0123456789abcdef", min_size=1, max_size=3)
_few = st.sampled_from([f"fp{i:02d}" for i in range(MAX_ALERTS - 10)])


@settings(database=None, deadline=None, max_examples=200)
@given(existing=_records(_many, MAX_ALERTS), incoming=_records(_many, 2 * MAX_ALERTS))
def test_merge_never_keeps_more_than_max_alerts_and_counts_every_alert_left_out(
    existing: list[AlertRecord], incoming: list[AlertRecord]
) -> None:
    merged, dropped = merge_alerts(existing, incoming)
    distinct = {a["fingerprint"] for a in [*existing, *incoming]}
    target(float(len(distinct)))  # steer generation towards inputs over the bound
    assert len(merged) <= MAX_ALERTS
    assert len({a["fingerprint"] for a in merged}) == len(merged)
    assert len(merged) + dropped == len(distinct)


@settings(database=None, deadline=None, max_examples=300)
@given(existing=_records(_few, MAX_ALERTS), incoming=_records(_few, 2 * MAX_ALERTS))
def test_merging_the_same_records_twice_changes_nothing_within_the_bound(
    existing: list[AlertRecord], incoming: list[AlertRecord]
) -> None:
    once, dropped_once = merge_alerts(existing, incoming)
    twice, dropped_twice = merge_alerts(once, incoming)
    assert (twice, dropped_twice) == (once, dropped_once) == (once, 0)


def test_merging_the_same_records_twice_changes_nothing_over_the_bound() -> None:
    existing = [_record("a", "resolved", minutes=100, endsAt=_stamp(110))]
    incoming = [
        _record("a", "firing", minutes=100),  # a late copy of the resolved occurrence
        *(_record(f"o{i:02d}", "firing", minutes=i) for i in range(MAX_ALERTS)),
    ]
    once, _ = merge_alerts(existing, incoming)
    twice, _ = merge_alerts(once, incoming)
    assert twice == once


def test_times_before_the_year_1000_keep_four_digits_and_read_back() -> None:
    early = datetime(7, 1, 1, 0, 22, 1, tzinfo=UTC)
    assert format_time(early) == "0007-01-01T00:22:01Z"
    assert parse_time(format_time(early)) == early
