"""Alertmanager's webhook payload, version 4, as a pydantic model.

Field names are the wire names. Unknown fields are ignored, because newer Alertmanagers add
some; a firing alert's ``endsAt`` of Go's zero time (``0001-01-01T00:00:00Z``) means "no end
known" and becomes ``None``; an empty ``generatorURL`` is accepted as it is.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from rescue.core.incident import AlertRecord, clip, clip_map, format_time

Status = Literal["firing", "resolved"]
LabelSet = dict[Annotated[str, Field(max_length=1024)], Annotated[str, Field(max_length=65536)]]


class Alert(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    status: Status
    labels: LabelSet
    annotations: LabelSet = Field(default_factory=dict)
    startsAt: datetime
    endsAt: datetime | None = None
    generatorURL: str = ""
    fingerprint: str = Field(default="", max_length=64)

    @field_validator("startsAt", "endsAt", mode="after")
    @classmethod
    def _in_utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        try:
            return value.astimezone(UTC)
        except OverflowError as exc:
            raise ValueError("the time is outside the years 1 to 9999 in UTC") from exc

    @field_validator("startsAt", mode="after")
    @classmethod
    def _a_real_start(cls, value: datetime) -> datetime:
        # Go's zero time (or anything before 1970) as a start is a broken sender, not an alert.
        if value.year < 1970:
            raise ValueError("startsAt is before 1970, which no alert can have started at")
        return value

    @field_validator("endsAt", mode="after")
    @classmethod
    def _zero_time_is_no_end(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.year <= 1:
            return None
        return value

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "")

    @property
    def identity(self) -> str:
        """Alertmanager's fingerprint, or a digest of the labels when an old sender omits it."""
        if self.fingerprint:
            return self.fingerprint
        text = "\x00".join(f"{k}\x00{v}" for k, v in sorted(self.labels.items()))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def to_record(self) -> AlertRecord:
        record: AlertRecord = {
            "fingerprint": self.identity,
            "alertname": clip(self.name, 256),
            "status": self.status,
            "startsAt": format_time(self.startsAt),
            "labels": clip_map(self.labels),
            "annotations": clip_map(self.annotations),
        }
        if self.endsAt is not None and self.status == "resolved":
            record["endsAt"] = format_time(self.endsAt)
        if self.generatorURL:
            record["generatorURL"] = clip(self.generatorURL)
        return record


class Notification(BaseModel):
    """One webhook notification: the alerts of one group, as Alertmanager sends them."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    version: Literal["4"]
    groupKey: str = Field(min_length=1, max_length=65536)
    truncatedAlerts: int = Field(default=0, ge=0)
    status: Status
    receiver: str = ""
    groupLabels: LabelSet = Field(default_factory=dict)
    commonLabels: LabelSet = Field(default_factory=dict)
    commonAnnotations: LabelSet = Field(default_factory=dict)
    externalURL: str = ""
    alerts: list[Alert] = Field(min_length=1, max_length=10000)
