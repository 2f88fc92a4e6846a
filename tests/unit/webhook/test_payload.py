"""Alertmanager's webhook payload (version 4): what is accepted, normalised and refused."""

from __future__ import annotations

import copy
import hashlib
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from rescue.core.model import MAX_TEXT
from rescue.webhook.payload import Alert, Notification

LABELS = {
    "alertname": "CheckoutErrorRate",
    "namespace": "shop",
    "deployment": "checkout",
    "severity": "critical",
}


def _alert(**changes: Any) -> dict[str, Any]:
    alert: dict[str, Any] = {
        "status": "firing",
        "labels": dict(LABELS),
        "annotations": {"summary": "Checkout is failing requests"},
        "startsAt": "2026-12-03T10:00:00.123456789Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "",
        "fingerprint": "a1b2c3d4e5f60718",
    }
    alert.update(changes)
    return alert


def _notification(**changes: Any) -> dict[str, Any]:
    """A notification exactly as Alertmanager 0.25 sends it."""
    document: dict[str, Any] = {
        "receiver": "rescue",
        "status": "firing",
        "alerts": [_alert()],
        "groupLabels": {"alertname": "CheckoutErrorRate", "namespace": "shop"},
        "commonLabels": dict(LABELS),
        "commonAnnotations": {"summary": "Checkout is failing requests"},
        "externalURL": "http://alertmanager.example:9093",
        "version": "4",
        "groupKey": '{}:{alertname="CheckoutErrorRate", namespace="shop"}',
        "truncatedAlerts": 0,
    }
    document.update(changes)
    return document


def _without(document: dict[str, Any], key: str) -> dict[str, Any]:
    trimmed = copy.deepcopy(document)
    del trimmed[key]
    return trimmed


# --- accepted -------------------------------------------------------------------------------


def test_notification_as_alertmanager_sends_it_is_accepted() -> None:
    notification = Notification.model_validate(_notification())
    assert notification.status == "firing"
    assert notification.groupLabels == {"alertname": "CheckoutErrorRate", "namespace": "shop"}
    [alert] = notification.alerts
    assert alert.name == "CheckoutErrorRate"
    assert alert.startsAt == datetime(2026, 12, 3, 10, 0, 0, 123456, tzinfo=UTC)


def test_unknown_fields_are_ignored_at_every_level() -> None:
    document = _notification(alerts=[_alert(silencedBy=["x"])], newField={"a": 1})
    notification = Notification.model_validate(document)
    assert "newField" not in notification.model_dump()
    assert "silencedBy" not in notification.alerts[0].model_dump()


def test_go_zero_time_end_means_no_end() -> None:
    alert = Alert.model_validate(_alert(endsAt="0001-01-01T00:00:00Z"))
    assert alert.endsAt is None


def test_missing_end_means_no_end() -> None:
    alert = Alert.model_validate(_without(_alert(), "endsAt"))
    assert alert.endsAt is None


def test_real_end_of_a_resolved_alert_is_kept_in_utc() -> None:
    alert = Alert.model_validate(_alert(status="resolved", endsAt="2026-12-03T11:30:00+01:00"))
    assert alert.endsAt == datetime(2026, 12, 3, 10, 30, tzinfo=UTC)
    assert alert.endsAt.tzinfo is UTC


def test_start_with_an_offset_is_converted_to_utc() -> None:
    alert = Alert.model_validate(_alert(startsAt="2026-12-03T12:00:00+02:00"))
    assert alert.startsAt == datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
    assert alert.startsAt.tzinfo is UTC


def test_start_without_an_offset_is_taken_as_utc() -> None:
    alert = Alert.model_validate(_alert(startsAt="2026-12-03T10:00:00"))
    assert alert.startsAt == datetime(2026, 12, 3, 10, 0, tzinfo=UTC)


def test_empty_generator_url_is_accepted() -> None:
    assert Alert.model_validate(_alert(generatorURL="")).generatorURL == ""


def test_optional_notification_fields_may_be_missing() -> None:
    minimal = {
        "version": "4",
        "groupKey": "{}:{}",
        "status": "resolved",
        "alerts": [{"status": "resolved", "labels": {}, "startsAt": "2026-12-03T10:00:00Z"}],
    }
    notification = Notification.model_validate(minimal)
    assert (notification.truncatedAlerts, notification.receiver, notification.commonLabels) == (
        0,
        "",
        {},
    )


# --- identity ---------------------------------------------------------------------------------


def test_fingerprint_sent_by_alertmanager_is_the_identity() -> None:
    assert Alert.model_validate(_alert(fingerprint="0123abcd")).identity == "0123abcd"


def test_missing_fingerprint_gives_a_sixteen_hex_digest_of_the_labels() -> None:
    alert = Alert.model_validate(_without(_alert(), "fingerprint"))
    text = "\x00".join(f"{k}\x00{v}" for k, v in sorted(LABELS.items()))
    assert alert.identity == hashlib.sha256(text.encode()).hexdigest()[:16]


def test_label_digest_does_not_depend_on_label_order() -> None:
    reversed_labels = dict(reversed(list(LABELS.items())))
    forward = Alert.model_validate(_alert(fingerprint=""))
    backward = Alert.model_validate(_alert(fingerprint="", labels=reversed_labels))
    assert forward.identity == backward.identity


def test_label_digest_differs_for_different_labels() -> None:
    one = Alert.model_validate(_alert(fingerprint=""))
    other = Alert.model_validate(_alert(fingerprint="", labels={**LABELS, "pod": "checkout-1"}))
    assert one.identity != other.identity


# --- to_record --------------------------------------------------------------------------------


def test_firing_alert_becomes_a_record_without_end_or_empty_url() -> None:
    record = Alert.model_validate(_alert()).to_record()
    assert record == {
        "fingerprint": "a1b2c3d4e5f60718",
        "alertname": "CheckoutErrorRate",
        "status": "firing",
        "startsAt": "2026-12-03T10:00:00Z",
        "labels": LABELS,
        "annotations": {"summary": "Checkout is failing requests"},
    }


def test_resolved_alert_record_carries_its_end_and_url() -> None:
    alert = Alert.model_validate(
        _alert(
            status="resolved",
            endsAt="2026-12-03T10:30:00Z",
            generatorURL="http://prometheus.example/graph",
        )
    )
    record = alert.to_record()
    assert record.get("endsAt") == "2026-12-03T10:30:00Z"
    assert record.get("generatorURL") == "http://prometheus.example/graph"


def test_firing_alert_with_a_future_end_records_no_end() -> None:
    record = Alert.model_validate(_alert(endsAt="2026-12-03T10:05:00Z")).to_record()
    assert "endsAt" not in record


def test_record_clips_long_annotations_to_the_text_bound() -> None:
    alert = Alert.model_validate(_alert(annotations={"description": "x" * (MAX_TEXT + 100)}))
    description = alert.to_record()["annotations"]["description"]
    assert len(description) == MAX_TEXT
    assert description.endswith("... (truncated)")


def test_record_of_an_alert_without_alertname_has_an_empty_alertname() -> None:
    alert = Alert.model_validate(_alert(labels={"namespace": "shop"}))
    assert alert.to_record()["alertname"] == ""


# --- rejected ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("description", "document"),
    [
        ("version 3", _notification(version="3")),
        ("version as a number", _notification(version=4)),
        ("no version", _without(_notification(), "version")),
        ("no group key", _without(_notification(), "groupKey")),
        ("empty group key", _notification(groupKey="")),
        ("no alerts", _notification(alerts=[])),
        ("unknown status", _notification(status="pending")),
        ("negative truncatedAlerts", _notification(truncatedAlerts=-1)),
        ("alert with unknown status", _notification(alerts=[_alert(status="silenced")])),
        ("alert without labels", _notification(alerts=[_without(_alert(), "labels")])),
        ("alert without start", _notification(alerts=[_without(_alert(), "startsAt")])),
        ("alert with bad start", _notification(alerts=[_alert(startsAt="yesterday")])),
        ("fingerprint over 64", _notification(alerts=[_alert(fingerprint="f" * 65)])),
        ("label value not text", _notification(alerts=[_alert(labels={"replicas": 3})])),
        ("alerts not a list", _notification(alerts={"status": "firing"})),
        ("body not an object", [_notification()]),
    ],
)
def test_invalid_notification_is_rejected(description: str, document: Any) -> None:
    with pytest.raises(ValidationError):
        Notification.model_validate(document)


@pytest.mark.parametrize(
    ("field", "text"),
    [
        ("startsAt", "0001-01-01T00:00:00+01:00"),
        ("endsAt", "0001-01-01T00:00:00+01:00"),
        ("startsAt", "9999-12-31T23:59:59-01:00"),
    ],
)
def test_timestamp_not_representable_in_utc_is_rejected_as_invalid(field: str, text: str) -> None:
    document = _notification(alerts=[_alert(**{field: text})])
    with pytest.raises(ValidationError):
        Notification.model_validate(document)


def test_parsed_models_are_immutable() -> None:
    notification = Notification.model_validate(_notification())
    with pytest.raises(ValidationError):
        notification.alerts[0].status = "resolved"  # type: ignore[misc]


@pytest.mark.parametrize(
    "text", ["0001-01-01T00:00:00Z", "0999-03-01T00:00:01Z", "1969-12-31T23:59:59Z"]
)
def test_a_start_before_1970_is_rejected_with_the_reason(text: str) -> None:
    document = _notification(alerts=[_alert(startsAt=text)])
    with pytest.raises(ValidationError, match="before 1970"):
        Notification.model_validate(document)
