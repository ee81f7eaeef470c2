"""What every notifier kind builds on: the Notification value, the Notifier base class and the
one error a send may raise. The spec keys every notifier has (`NotifierSpec`) and the events
(`Event`) are config models, defined in probe/config/models.py and re-exported here.

A notifier knows nothing of probers or the store (docs/ARCHITECTURE.md): it turns a
`Notification` into its service's payload (`render`, through jinja2 templates that a user may
override per event) and delivers it (`send`). `send` raises `DeliveryError` when the service
did not accept the message; the dispatcher (dispatch.py) decides about retries, never the
notifier.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

from probe.config.models import Event, NotifierSpec

__all__ = [
    "DeliveryError",
    "Event",
    "Notification",
    "Notifier",
    "NotifierSpec",
    "NotifyContext",
]


@dataclass(frozen=True, slots=True)
class Notification:
    """One thing to tell people about. Times are Unix seconds.

    `id` is unique per notification and stays the same across retries and restarts (services
    that take an idempotency key get it). For `sla` reports `probe` is None and `report` holds
    the rows; for the others `report` is empty.
    """

    event: Event
    time: float
    probe: str | None = None
    kind: str | None = None
    endpoint: str | None = None
    status: str = ""
    message: str = ""
    outage_start: float | None = None
    duration: float | None = None
    position: int = 0
    labels: Mapping[str, str] = field(default_factory=dict)
    report: Mapping[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["event"] = self.event.value
        data["labels"] = dict(self.labels)
        data["report"] = dict(self.report)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Notification:
        values = dict(data)
        values["event"] = Event(values["event"])
        return cls(**values)


class DeliveryError(Exception):
    """The service did not take the message. `permanent`: retrying cannot help (a 4xx other
    than 429: bad token, unknown chat). `retry_after`: seconds the service asked us to wait.
    The message never contains secrets (tokens, webhook paths)."""

    def __init__(
        self, message: str, *, permanent: bool = False, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.retry_after = retry_after


class NotifyContext:
    """What notifiers share, handed in by the App: the HTTP client (one for all webhook
    kinds), the template renderer, and the effective defaults from settings.notify."""

    def __init__(self, *, http: Any, templates: Any, timeout: float, dry: bool) -> None:
        self.http = http
        self.templates = templates
        self.timeout = timeout
        self.dry = dry


SpecT = TypeVar("SpecT", bound=NotifierSpec)


class Notifier(ABC, Generic[SpecT]):
    """One configured notifier."""

    spec_type: ClassVar[type[NotifierSpec]]
    # The template family this kind renders with (templates/<format>/<event>.*.j2).
    format: ClassVar[str] = "text"

    def __init__(self, spec: SpecT, context: NotifyContext) -> None:
        self.spec = spec
        self.context = context

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def kind(self) -> str:
        return self.spec.kind

    @property
    def timeout(self) -> float:
        return self.spec.timeout if self.spec.timeout is not None else self.context.timeout

    @property
    def dry(self) -> bool:
        return self.context.dry or bool(self.spec.dry)

    @abstractmethod
    def render(self, notification: Notification) -> Any:
        """The payload this service takes for `notification` (JSON-able, or text)."""

    @abstractmethod
    async def send(self, payload: Any) -> None:
        """Deliver `payload`; raise DeliveryError when the service does not accept it."""

    async def aclose(self) -> None:
        """Release anything held of its own (the shared HTTP client closes elsewhere)."""
