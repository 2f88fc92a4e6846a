"""Who may post: static credentials first, then ServiceAccount tokens the API server reviewed,
with verdicts kept briefly by a hash of the token and reviews that failed never kept."""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass, field

import pytest
from prometheus_client import CollectorRegistry

from rescue.webhook.auth import (
    ALLOWED_TTL,
    DENIED_TTL,
    Admission,
    Credentials,
    Decision,
    DecisionCache,
    ReviewRefused,
    ReviewUnavailable,
    Verdict,
)
from rescue.webhook.metrics import WebhookMetrics

ALICE = "sa-token-of-alice"
MALLORY = "sa-token-of-mallory"


@dataclass
class FakeClock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class FakeReviewer:
    """The API server's answers by token; counts how often it was asked."""

    answers: dict[str, Decision | Exception] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)

    def review(self, token: str) -> Decision:
        self.asked.append(token)
        answer = self.answers.get(token, Decision(Verdict.UNAUTHENTICATED, reason="unknown"))
        if isinstance(answer, Exception):
            raise answer
        return answer


def _reviewer() -> FakeReviewer:
    return FakeReviewer(
        {
            ALICE: Decision(Verdict.ADMITTED, who="system:serviceaccount:monitoring:alice"),
            MALLORY: Decision(
                Verdict.FORBIDDEN,
                who="system:serviceaccount:default:mallory",
                reason="it may not create /api/v1/alerts",
            ),
        }
    )


def _decide(admission: Admission, header: str | None) -> Decision:
    return asyncio.run(admission.decide(header))


def test_the_static_token_is_admitted_without_asking_the_api_server() -> None:
    reviewer = _reviewer()
    admission = Admission(credentials=Credentials(token="static"), reviewer=reviewer)
    assert _decide(admission, "Bearer static").verdict is Verdict.ADMITTED
    assert reviewer.asked == []


def test_without_kubernetes_auth_any_other_token_is_unauthenticated() -> None:
    admission = Admission(credentials=Credentials(token="static"))
    assert _decide(admission, f"Bearer {ALICE}").verdict is Verdict.UNAUTHENTICATED


def test_a_token_that_is_not_the_static_one_is_reviewed_and_the_verdict_kept() -> None:
    reviewer, clock = _reviewer(), FakeClock()
    admission = Admission(
        credentials=Credentials(token="static"),
        reviewer=reviewer,
        cache=DecisionCache(clock=clock),
    )
    first = _decide(admission, f"Bearer {ALICE}")
    assert first == Decision(Verdict.ADMITTED, who="system:serviceaccount:monitoring:alice")
    clock.now += ALLOWED_TTL - 1
    assert _decide(admission, f"Bearer {ALICE}") == first
    assert reviewer.asked == [ALICE]

    clock.now += 1
    _decide(admission, f"Bearer {ALICE}")
    assert reviewer.asked == [ALICE, ALICE]


def test_a_refusal_is_kept_for_a_shorter_while_so_a_new_binding_soon_counts() -> None:
    reviewer, clock = _reviewer(), FakeClock()
    admission = Admission(credentials=None, reviewer=reviewer, cache=DecisionCache(clock=clock))
    assert _decide(admission, f"Bearer {MALLORY}").verdict is Verdict.FORBIDDEN
    assert _decide(admission, "Bearer garbage").verdict is Verdict.UNAUTHENTICATED
    clock.now += DENIED_TTL - 1
    _decide(admission, f"Bearer {MALLORY}")
    _decide(admission, "Bearer garbage")
    assert reviewer.asked == [MALLORY, "garbage"]

    # Someone binds the sender role: within DENIED_TTL the next review sees it.
    reviewer.answers[MALLORY] = Decision(Verdict.ADMITTED, who="mallory")
    clock.now += 1
    assert _decide(admission, f"Bearer {MALLORY}").verdict is Verdict.ADMITTED


@pytest.mark.parametrize("failure", [ReviewUnavailable("away"), ReviewRefused("no RBAC")])
def test_a_review_that_failed_is_never_kept(failure: Exception) -> None:
    reviewer = FakeReviewer({ALICE: failure})
    admission = Admission(credentials=None, reviewer=reviewer)
    for _ in range(2):
        with pytest.raises(type(failure)):
            _decide(admission, f"Bearer {ALICE}")
    assert reviewer.asked == [ALICE, ALICE]


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Bearer   ", "Basic " + base64.b64encode(b"user:pass").decode()],
)
def test_only_a_bearer_token_is_reviewed(header: str | None) -> None:
    reviewer = _reviewer()
    admission = Admission(credentials=None, reviewer=reviewer)
    assert _decide(admission, header).verdict is Verdict.UNAUTHENTICATED
    assert reviewer.asked == []


def test_the_cache_is_bounded_and_forgets_the_oldest_first() -> None:
    cache = DecisionCache(size=2)
    for token in ("one", "two", "three"):
        cache.put(token, Decision(Verdict.ADMITTED, who=token))
    assert len(cache) == 2
    assert cache.get("one") is None
    assert cache.get("three") == Decision(Verdict.ADMITTED, who="three")


def test_the_cache_holds_hashes_of_tokens_never_the_tokens() -> None:
    cache = DecisionCache()
    cache.put(ALICE, Decision(Verdict.ADMITTED, who="alice"))
    assert ALICE not in repr(vars(cache))
    assert ALICE.encode() not in b"".join(vars(cache)["_kept"])


def test_reviews_and_cached_answers_are_counted_apart() -> None:
    registry = CollectorRegistry()
    metrics = WebhookMetrics(registry)
    admission = Admission(credentials=None, reviewer=_reviewer(), metrics=metrics)
    for _ in range(3):
        _decide(admission, f"Bearer {ALICE}")
    _decide(admission, f"Bearer {MALLORY}")

    def sample(name: str, **labels: str) -> float:
        return registry.get_sample_value(name, labels) or 0.0

    assert sample("rescue_webhook_token_reviews_total", outcome="admitted") == 1
    assert sample("rescue_webhook_token_reviews_total", outcome="forbidden") == 1
    assert sample("rescue_webhook_token_review_cache_hits_total") == 2


def test_an_admission_needs_some_way_to_tell_senders_apart() -> None:
    with pytest.raises(ValueError, match="needs static credentials"):
        Admission(credentials=None)
