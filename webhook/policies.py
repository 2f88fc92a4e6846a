"""Which RescuePolicy speaks for an alert group's severity, seen from the webhook.

A team knows best what its alerts' severity labels mean, so a RescuePolicy may say it
(``triage.severityLabel``, ``triage.severityMap``) for the alerts it selects; the webhook's
``--severity-map`` stays the default underneath. The webhook selects the policy the operator
will select (the most specific selector in the rescue's namespace matching the alert labels),
from a listing kept for a few seconds, so that a burst of notifications lists once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping

from rescue.core import kube
from rescue.core.policy import Policy, PolicyError, select

logger = logging.getLogger(__name__)


class PolicySource:
    """The parsed RescuePolicies of a namespace; an unusable one is skipped with one warning."""

    def __init__(self, listing: kube.ListCache) -> None:
        self._listing = listing
        self._warned: set[tuple[str, str, str]] = set()
        self._refused: set[str] = set()
        self._lock = threading.Lock()

    def select(self, namespace: str, labels: Mapping[str, str]) -> Policy | None:
        """The policy selecting these alert labels in ``namespace``, if any.

        Raises ``kube.KubeUnavailable`` (the caller answers 503 and Alertmanager retries, so
        the severity is decided with the policy once the API server answers). A refusal to
        list, RBAC most likely, is not worth losing an alert over: it is logged once and no
        policy applies.
        """
        try:
            bodies = self._listing.get(namespace)
        except kube.KubeRejected as exc:
            with self._lock:
                first = namespace not in self._refused
                self._refused.add(namespace)
            if first:
                logger.warning(
                    "The webhook may not list RescuePolicies in %s (%s); severities there follow "
                    "--severity-map until it may (grant get and list on rescuepolicies).",
                    namespace,
                    exc,
                )
            return None
        with self._lock:
            self._refused.discard(namespace)
        return select(self._parsed(namespace, bodies), labels)

    def _parsed(self, namespace: str, bodies: list[kube.Body]) -> list[Policy]:
        found = []
        for body in bodies:
            meta = body.get("metadata") or {}
            name = str(meta.get("name", "?"))
            try:
                found.append(Policy.parse(namespace, name, body.get("spec") or {}))
            except PolicyError as exc:
                key = (namespace, name, str(meta.get("resourceVersion", "")))
                with self._lock:
                    first = key not in self._warned
                    self._warned.add(key)
                if first:
                    logger.warning("Ignoring a RescuePolicy for triage until it changes: %s", exc)
        return found
