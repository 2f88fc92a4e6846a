"""Who may post notifications: static credentials, ServiceAccount tokens, or both.

A shared bearer token (or basic-auth pair) read from a file is the default and works for any
Alertmanager, wherever it runs. An Alertmanager inside the cluster already holds a credential
the API server can vouch for, its ServiceAccount token, so ``--auth kubernetes`` accepts that
instead of one more secret to hand out and rotate: the API server says who the token belongs
to (a TokenReview) and whether that identity may post alerts (a SubjectAccessReview), and
granting a sender is an RBAC binding.

The two combine in one order, so the outcome never depends on which was configured first:

1. a request presenting the static token or basic-auth pair is admitted without asking the API
   server (so senders can move from one to the other without a gap);
2. otherwise, with Kubernetes authentication on, a bearer token is reviewed;
3. anything else is unauthenticated.

Reviews cost the API server two requests, and Alertmanager posts every few seconds during an
incident, so verdicts are kept for a short while, keyed by a hash of the token (never the token
itself): an admission for ``ALLOWED_TTL`` seconds, a refusal for ``DENIED_TTL`` so that a newly
bound role takes effect soon. A review that could not be made (the API server is away) is never
kept: the webhook answers 503 and Alertmanager asks again.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from starlette.concurrency import run_in_threadpool

from rescue.webhook.metrics import WebhookMetrics

logger = logging.getLogger(__name__)

#: Seconds an admitted token is trusted before the API server is asked again.
ALLOWED_TTL = 60.0
#: Seconds a refused token stays refused, so that a role bound a moment ago soon counts.
DENIED_TTL = 10.0
#: Distinct tokens whose verdicts are kept; the oldest is forgotten first.
CACHE_SIZE = 1024


@dataclass(frozen=True)
class Credentials:
    """What a caller must present: a bearer token, a basic-auth pair, or either."""

    token: str | None = None
    basic: tuple[str, str] | None = None
    insecure: bool = False

    def __post_init__(self) -> None:
        if not (self.token or self.basic or self.insecure):
            raise ValueError(
                "the webhook needs credentials (a token file or a basic-auth file); "
                "pass --insecure to run without any"
            )

    @property
    def open(self) -> bool:
        """Whether every caller is admitted (``--insecure`` without any credential)."""
        return self.insecure and not (self.token or self.basic)

    def admit(self, header: str | None) -> bool:
        if self.open:
            return True
        if not header:
            return False
        scheme, _, value = header.partition(" ")
        scheme = scheme.lower()
        if scheme == "bearer" and self.token:
            return hmac.compare_digest(value.strip().encode(), self.token.encode())
        if scheme == "basic" and self.basic:
            try:
                decoded = base64.b64decode(value.strip(), validate=True).decode()
            except (ValueError, UnicodeDecodeError):
                return False
            user, _, password = decoded.partition(":")
            return hmac.compare_digest(user.encode(), self.basic[0].encode()) & hmac.compare_digest(
                password.encode(), self.basic[1].encode()
            )
        return False


class Verdict(enum.Enum):
    ADMITTED = "admitted"
    UNAUTHENTICATED = "unauthenticated"  # answered 401
    FORBIDDEN = "forbidden"  # authenticated, but not allowed to post alerts: 403


@dataclass(frozen=True)
class Decision:
    """A verdict on one request, with the identity the API server named (never the token)."""

    verdict: Verdict
    who: str = ""
    reason: str = ""


class ReviewUnavailable(Exception):
    """The API server could not review a token right now: answer 503 so the sender retries."""


class ReviewRefused(Exception):
    """The API server will not let the webhook review tokens (its own RBAC): answer 500."""


class Reviewer(Protocol):
    """Asks the API server about one bearer token; raises the two exceptions above."""

    def review(self, token: str) -> Decision: ...


class DecisionCache:
    """Verdicts by a SHA-256 of the token, for ``ALLOWED_TTL`` or ``DENIED_TTL`` seconds."""

    def __init__(
        self,
        *,
        allowed_ttl: float = ALLOWED_TTL,
        denied_ttl: float = DENIED_TTL,
        size: int = CACHE_SIZE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._allowed_ttl = allowed_ttl
        self._denied_ttl = denied_ttl
        self._size = size
        self._clock = clock
        self._kept: OrderedDict[bytes, tuple[float, Decision]] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def _key(token: str) -> bytes:
        return hashlib.sha256(token.encode()).digest()

    def get(self, token: str) -> Decision | None:
        key = self._key(token)
        with self._lock:
            kept = self._kept.get(key)
            if kept is None:
                return None
            expires, decision = kept
            if self._clock() >= expires:
                del self._kept[key]
                return None
            return decision

    def put(self, token: str, decision: Decision) -> None:
        admitted = decision.verdict is Verdict.ADMITTED
        ttl = self._allowed_ttl if admitted else self._denied_ttl
        key = self._key(token)
        with self._lock:
            self._kept[key] = (self._clock() + ttl, decision)
            self._kept.move_to_end(key)
            while len(self._kept) > self._size:
                self._kept.popitem(last=False)

    def __len__(self) -> int:
        return len(self._kept)


class Admission:
    """Decides whether a request's ``Authorization`` header may post notifications."""

    def __init__(
        self,
        *,
        credentials: Credentials | None,
        reviewer: Reviewer | None = None,
        metrics: WebhookMetrics | None = None,
        cache: DecisionCache | None = None,
    ) -> None:
        if credentials is None and reviewer is None:
            raise ValueError("the webhook needs static credentials, Kubernetes reviews, or both")
        self._credentials = credentials
        self._reviewer = reviewer
        self._metrics = metrics
        self._cache = cache if cache is not None else DecisionCache()

    async def decide(self, header: str | None) -> Decision:
        """The verdict; raises ``ReviewUnavailable`` or ``ReviewRefused`` when a review failed."""
        if self._credentials is not None and self._credentials.admit(header):
            return Decision(Verdict.ADMITTED)
        scheme, _, value = (header or "").partition(" ")
        token = value.strip()
        if self._reviewer is None or scheme.lower() != "bearer" or not token:
            return Decision(Verdict.UNAUTHENTICATED, reason="no valid credentials")

        kept = self._cache.get(token)
        if kept is not None:
            if self._metrics:
                self._metrics.review_cache_hits.inc()
            return kept
        try:
            decision = await run_in_threadpool(self._reviewer.review, token)
        except ReviewUnavailable:
            self._count("unavailable")
            raise
        except ReviewRefused:
            self._count("refused")
            raise
        self._count(decision.verdict.value)
        self._cache.put(token, decision)
        self._log(decision)
        return decision

    def _count(self, outcome: str) -> None:
        if self._metrics:
            self._metrics.reviews.labels(outcome=outcome).inc()

    @staticmethod
    def _log(decision: Decision) -> None:
        # Logged when the API server decided, not on every cached answer: at most once per
        # token per DENIED_TTL, however often a refused sender posts.
        if decision.verdict is Verdict.FORBIDDEN:
            logger.warning(
                "Refused notifications from %s: %s. Bind the ClusterRole rescue-alert-sender to "
                "it if it should send alerts.",
                decision.who,
                decision.reason,
            )
        elif decision.verdict is Verdict.UNAUTHENTICATED:
            logger.info(
                "Refused a bearer token the API server did not accept: %s.", decision.reason
            )
        else:
            logger.debug("The API server vouched for %s as a sender.", decision.who)
