"""Thousands of bad, odd and hostile notifications against the webhook process, on the real API
server: input never causes a 5xx or a crash, a refusal writes nothing, and every
notification answered 200 has exactly the rescue the answer names."""

from __future__ import annotations

import json
import string
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from helpers import OperatorHandle
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kubernetes import client

from rescue import stack
from rescue.core import kube

MAX_BODY = 4 * 1024 * 1024  # the webhook's default --max-body-bytes

_FUZZ = settings(
    max_examples=1500,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)


@dataclass
class Target:
    http: httpx.Client
    rescues: kube.Rescues


@pytest.fixture(scope="module")
def app_client(
    operator: OperatorHandle, webhook: stack.Process, token: str, api_client: Any
) -> Iterator[Target]:
    """The webhook process, with the suite's operator stopped so that the thousands of rescues
    recorded here are not all reconciled; they are deleted afterwards."""
    rescues = kube.Rescues(api_client)
    before = {(r["metadata"]["namespace"], r["metadata"]["name"]) for r in rescues.list()}
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    with (
        operator.stopped(),
        httpx.Client(base_url=webhook.url, headers=headers, timeout=30) as http,
    ):
        yield Target(http, rescues)
        api = client.CustomObjectsApi(api_client)
        for item in rescues.list():
            meta = item["metadata"]
            if (meta["namespace"], meta["name"]) not in before:
                api.delete_namespaced_custom_object(
                    "alc.hecate.dev", "v1alpha1", meta["namespace"], "rescues", meta["name"]
                )


def _post(target: Target, body: bytes) -> httpx.Response:
    answer = target.http.post("/api/v1/alerts", content=body)
    assert answer.status_code < 500, (answer.status_code, answer.text[:500], body[:300])
    return answer


# --- raw bytes and JSON of any shape ---------------------------------------------------------


@_FUZZ
@given(body=st.binary(max_size=4096))
def test_any_bytes_get_an_answer_below_500(app_client: Target, body: bytes) -> None:
    answer = _post(app_client, body)
    assert answer.status_code in (200, 400, 413)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=30,
)


@_FUZZ
@given(document=_json)
def test_any_json_document_gets_an_answer_below_500(app_client: Target, document: Any) -> None:
    answer = _post(app_client, json.dumps(document).encode())
    assert answer.status_code in (200, 400)


@pytest.mark.parametrize("depth", [100, 1000, 100_000])
def test_deeply_nested_bodies_are_refused_cleanly(app_client: Target, depth: int) -> None:
    body = ("[" * depth + "]" * depth).encode()
    answer = _post(app_client, body)
    assert answer.status_code in (400, 413)


def test_a_body_over_the_limit_is_413(app_client: Target) -> None:
    assert _post(app_client, b" " * (MAX_BODY + 1)).status_code == 413


# --- notifications that follow the schema, with odd values ------------------------------------

_odd_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=80
) | st.sampled_from(
    [
        "../../etc/passwd",
        "a/b",
        "..",
        "-rf",
        "x\nRescue: other/forged",
        "{{ .Values.secret }}",
        "${HOME}",
        "*anchor",
        "!!python/object:os.system",
        "\u202eevil",
        "Ⅻ",
        "\x00",
        "",
    ]
)
_stamp = st.one_of(
    st.datetimes(
        min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31), timezones=st.just(UTC)
    ).map(lambda d: d.isoformat().replace("+00:00", "Z")),
    st.sampled_from(["0001-01-01T00:00:00Z", "not a time", "", "2026-13-45T99:99:99Z"]),
    st.integers(),
)


def _labels() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "alertname": _odd_text,
            "namespace": _odd_text,
            "deployment": _odd_text,
            "severity": st.sampled_from(["critical", "warning", "info", "page", "", "SEV1"])
            | _odd_text,
        },
        optional={"team": _odd_text, "le": st.integers()},
    ) | st.dictionaries(_odd_text, _odd_text, max_size=5)


_alert = st.fixed_dictionaries(
    {
        "status": st.sampled_from(["firing", "resolved"]) | _odd_text,
        "labels": _labels(),
        "annotations": st.dictionaries(_odd_text, _odd_text, max_size=3),
        "startsAt": _stamp,
        "fingerprint": st.text(alphabet=string.hexdigits, min_size=1, max_size=16) | _odd_text,
    },
    optional={"endsAt": _stamp, "generatorURL": _odd_text | st.none()},
)

_notification = st.fixed_dictionaries(
    {
        "version": st.just("4") | _odd_text,
        "groupKey": _odd_text,
        "status": st.sampled_from(["firing", "resolved"]),
        "receiver": _odd_text,
        "alerts": st.lists(_alert, max_size=4),
    },
    optional={
        "truncatedAlerts": st.integers(),
        "groupLabels": st.dictionaries(_odd_text, _odd_text, max_size=3),
        "commonLabels": st.dictionaries(_odd_text, _odd_text, max_size=3),
        "commonAnnotations": st.dictionaries(_odd_text, _odd_text, max_size=3),
        "externalURL": _odd_text,
        "unknownField": _json,
    },
)


@_FUZZ
@given(document=_notification)
def test_odd_notifications_are_recorded_as_answered_or_refused_without_a_write(
    app_client: Target, document: dict[str, Any]
) -> None:
    rescues = app_client.rescues
    answer = _post(app_client, json.dumps(document).encode())
    assert answer.status_code in (200, 400), answer.text
    if answer.status_code == 200 and answer.json()["status"] == "ignored":
        # Only resolved alerts of an incident never recorded: nothing to write, nothing written.
        assert all(a["status"] == "resolved" for a in document["alerts"]) or not document["alerts"]
        namespace, _, name = answer.json()["rescue"].partition("/")
        with pytest.raises(kube.NotFound):
            rescues.get(namespace, name)
    elif answer.status_code == 200:
        namespace, _, name = answer.json()["rescue"].partition("/")
        stored = rescues.get(namespace, name)  # the rescue the answer names exists
        fingerprints = {a["fingerprint"] for a in stored["spec"]["alerts"]}
        sent = {str(a["fingerprint"]) for a in document["alerts"]}
        assert fingerprints & sent or stored["spec"].get("truncatedAlerts") is not None
    else:
        assert answer.json()["detail"]
