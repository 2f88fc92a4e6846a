"""The findings issue written from a concluded rescue's record, and when one is wanted."""

from __future__ import annotations

from typing import Any

import pytest

from rescue.core.policy import Policy
from rescue.operator import tracker

SPEC: dict[str, Any] = {
    "severity": "SEV1",
    "title": "Checkout is failing requests",
    "diagnosis": {"rootCause": "checkout v2 leaks\nconnections", "category": "deployment"},
    "resolution": {"fix": "close connections in v2.1", "commit": "a" * 40},
    "conclusion": {
        "summary": "rolled back, fixed forward",
        "route": "design",
        "requestedBy": "alice",
        "actionItems": ["Connection leak test -- owner: payments"],
    },
    "review": {"actionItems": ["Canary the payment flow"]},
}
STATUS: dict[str, Any] = {
    "phase": "Completed",
    "routedTo": "design",
    "target": "shop/checkout",
    "review": {"path": "postmortems/shop/down.md", "commit": "b" * 40},
}


def _policy(**tracker_spec: Any) -> Policy:
    return Policy.parse(
        "shop", "p", {"repository": {"url": "https://github.com/o/r"}, "tracker": tracker_spec}
    )


def test_the_title_names_the_route_and_the_rescue_title() -> None:
    issue = tracker.compose("shop", "down", SPEC, STATUS, branch="main")
    assert issue.title == "Rescue findings for design: Checkout is failing requests"


def test_without_a_title_the_target_names_it() -> None:
    issue = tracker.compose("shop", "down", {**SPEC, "title": ""}, STATUS, branch="main")
    assert issue.title == "Rescue findings for design: shop/checkout"


def test_the_body_carries_the_findings_the_review_and_the_marker_last() -> None:
    body = tracker.compose("shop", "down", SPEC, STATUS, branch="main").body
    assert "**Summary:** rolled back, fixed forward" in body
    assert "**Root cause:** checkout v2 leaks connections (category: deployment)" in body
    assert f"**Permanent fix:** close connections in v2.1 (commit `{'a' * 12}`)" in body
    assert f"`postmortems/shop/down.md` on branch `main` (commit `{'b' * 12}`)" in body
    assert "- [ ] Connection leak test -- owner: payments" in body
    assert "- [ ] Canary the payment flow" in body
    assert "concluded by alice" in body
    assert body.rstrip().splitlines()[-1] == "<!-- rescue: shop/down -->"


def test_a_review_in_a_pull_request_is_linked() -> None:
    status = {
        **STATUS,
        "review": {
            "path": "postmortems/shop/down.md",
            "commit": "c" * 40,
            "pullRequest": {"url": "https://github.com/o/r/pull/7", "number": 7},
        },
    }
    body = tracker.compose("shop", "down", SPEC, status, branch="main").body
    assert "in pull request #7 (https://github.com/o/r/pull/7)" in body


def test_an_escalation_without_a_fix_says_so() -> None:
    spec = {k: v for k, v in SPEC.items() if k != "resolution"}
    body = tracker.compose("shop", "down", spec, STATUS, branch="main").body
    assert "**Permanent fix:** _none recorded" in body


def test_the_title_stays_short() -> None:
    issue = tracker.compose("shop", "down", {**SPEC, "title": "x" * 1000}, STATUS, branch="main")
    assert len(issue.title) <= tracker.TITLE_LIMIT


@pytest.mark.parametrize(
    ("status", "policy", "expected"),
    [
        (STATUS, _policy(issues=True), True),
        (STATUS, _policy(), False),  # the default: no issues
        (STATUS, None, False),
        ({**STATUS, "routedTo": "none"}, _policy(issues=True), False),
        ({**STATUS, "phase": "Active"}, _policy(issues=True), False),
        ({**STATUS, "routedIssue": {"number": 3}}, _policy(issues=True), False),
    ],
)
def test_an_issue_is_wanted_once_for_routed_findings_where_the_policy_asks(
    status: dict[str, Any], policy: Policy | None, expected: bool
) -> None:
    assert tracker.wanted(status, policy) is expected
