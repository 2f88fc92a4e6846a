"""The webhook's own metrics: what arrived, what was refused and why, how long it took."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class WebhookMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.received = Counter(
            "rescue_webhook_notifications_total",
            "Notifications accepted for processing, by their status.",
            ["status"],
            registry=registry,
        )
        self.outcomes = Counter(
            "rescue_webhook_outcomes_total",
            "What accepted notifications did to rescues.",
            ["outcome"],
            registry=registry,
        )
        self.rejected = Counter(
            "rescue_webhook_rejected_total",
            "Requests not recorded, by reason.",
            ["reason"],
            registry=registry,
        )
        self.deduplicated = Counter(
            "rescue_webhook_deduplicated_total",
            "Notifications that repeated what a rescue already held.",
            registry=registry,
        )
        self.latency = Histogram(
            "rescue_webhook_request_duration_seconds",
            "Time to answer POST /api/v1/alerts.",
            ["code"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=registry,
        )
        self.reviews = Counter(
            "rescue_webhook_token_reviews_total",
            "Sender tokens the webhook asked the API server about (--auth kubernetes), by verdict.",
            ["outcome"],
            registry=registry,
        )
        self.review_cache_hits = Counter(
            "rescue_webhook_token_review_cache_hits_total",
            "Sender tokens answered from the verdicts kept, without asking the API server.",
            registry=registry,
        )
        # Every verdict exists at zero from the start, so increase() sees the first one.
        for outcome in ("admitted", "unauthenticated", "forbidden", "unavailable", "refused"):
            self.reviews.labels(outcome=outcome)
