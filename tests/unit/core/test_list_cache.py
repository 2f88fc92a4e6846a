"""The short-lived listing cache: a burst lists once, a refusal is kept, an outage is not."""

from __future__ import annotations

import pytest

from rescue.core import kube


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Fetch:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.fail: kube.KubeError | None = None

    def __call__(self, namespace: str) -> list[kube.Body]:
        self.calls.append(namespace)
        if self.fail is not None:
            raise self.fail
        return [{"metadata": {"name": f"p{len(self.calls)}"}}]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fetch() -> Fetch:
    return Fetch()


def test_a_burst_within_the_ttl_lists_once_per_namespace(clock: Clock, fetch: Fetch) -> None:
    cache = kube.ListCache(fetch, ttl=10.0, clock=clock)
    for _ in range(50):
        assert cache.get("shop") == [{"metadata": {"name": "p1"}}]
    cache.get("cart")
    assert fetch.calls == ["shop", "cart"]


def test_a_listing_older_than_the_ttl_is_made_again(clock: Clock, fetch: Fetch) -> None:
    cache = kube.ListCache(fetch, ttl=10.0, clock=clock)
    cache.get("shop")
    clock.now += 9.9
    cache.get("shop")
    clock.now += 0.1
    assert cache.get("shop") == [{"metadata": {"name": "p2"}}]
    assert fetch.calls == ["shop", "shop"]


def test_a_refusal_is_kept_like_a_listing(clock: Clock, fetch: Fetch) -> None:
    cache = kube.ListCache(fetch, ttl=10.0, clock=clock)
    fetch.fail = kube.KubeRejected("forbidden", status=403)
    for _ in range(3):
        with pytest.raises(kube.KubeRejected):
            cache.get("shop")
    assert fetch.calls == ["shop"]


def test_an_outage_is_not_kept(clock: Clock, fetch: Fetch) -> None:
    cache = kube.ListCache(fetch, ttl=10.0, clock=clock)
    fetch.fail = kube.KubeUnavailable("no answer")
    with pytest.raises(kube.KubeUnavailable):
        cache.get("shop")
    fetch.fail = None
    assert cache.get("shop") == [{"metadata": {"name": "p2"}}]


def test_what_a_caller_does_with_its_list_does_not_change_the_kept_one(
    clock: Clock, fetch: Fetch
) -> None:
    cache = kube.ListCache(fetch, ttl=10.0, clock=clock)
    cache.get("shop").clear()
    assert cache.get("shop") == [{"metadata": {"name": "p1"}}]
