"""What one transaction of the worker did: the derived events to announce once it committed."""

from __future__ import annotations

from dataclasses import dataclass, field

from goldenhour.contracts.derived import DerivedEvent, NotificationRequested


@dataclass
class Outcome:
    """Derived events to announce on Kafka once their transaction committed."""

    events: list[DerivedEvent] = field(default_factory=list)

    def extend(self, other: Outcome) -> None:
        self.events += other.events

    @property
    def notifications(self) -> list[NotificationRequested]:
        return [e for e in self.events if isinstance(e, NotificationRequested)]
