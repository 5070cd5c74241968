"""Every Kafka topic of Golden Hour, in one place, created explicitly with its partitions."""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

PARTITIONS = 4
# The clock's name as a consumer of intake: its applied records and dead letters are kept by it.
CLOCK_CONSUMER = "streams.golden_hour_clock"


@dataclass(frozen=True)
class Topics:
    """Topic names under one prefix, so several systems can share a broker."""

    prefix: str = "goldenhour"

    @property
    def intake(self) -> str:
        """Intake events from the API, keyed by child_id."""
        return f"{self.prefix}.intake.v1"

    @property
    def alerts(self) -> str:
        """Derived alert events: raised, step fired, acknowledged, resolved."""
        return f"{self.prefix}.alerts.v1"

    @property
    def notifications(self) -> str:
        """Notification requests and their outcomes, keyed by child_id."""
        return f"{self.prefix}.notifications.v1"

    @property
    def shared_alerts(self) -> str:
        """Shared alerts to neighbouring authorities (data-minimised), keyed by child_id."""
        return f"{self.prefix}.shared-alerts.v1"

    @property
    def dead_letters(self) -> str:
        """Records a consumer could never apply, with the error, keyed as they came."""
        return f"{self.prefix}.dead-letters.v1"

    def all(self) -> list[str]:
        return [self.intake, self.alerts, self.notifications, self.shared_alerts, self.dead_letters]


async def ensure_topics(bootstrap: str, topics: Topics) -> None:
    """Create the topics if missing; an unknown topic must never be auto-created with defaults."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(name, num_partitions=PARTITIONS, replication_factor=1)
            for name in topics.all()
            if name not in existing
        ]
        if wanted:
            try:
                await admin.create_topics(wanted)
            except TopicAlreadyExistsError:
                pass  # another replica created it first
    finally:
        await admin.close()
