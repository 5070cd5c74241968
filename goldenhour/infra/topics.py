"""Every Kafka topic of Golden Hour, in one place, created explicitly with its partitions."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiokafka import errors as kafka_errors
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

PARTITIONS = 4
# The clock's name as a consumer of intake: its applied records and dead letters are kept by it.
CLOCK_CONSUMER = "streams.golden_hour_clock"
MIN_INSYNC = "min.insync.replicas"


class TopicError(Exception):
    """The broker refused to create a topic; the message names the topic and the reason."""


@dataclass(frozen=True)
class Topics:
    """Topic names under one prefix, so several systems can share a broker, and the layout
    every topic is created with (`min_insync_replicas` None: the broker's default)."""

    prefix: str = "goldenhour"
    partitions: int = PARTITIONS
    replication_factor: int = 1
    min_insync_replicas: int | None = None

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

    def configs(self) -> dict[str, str]:
        """The topic configs set at creation: set then, they need no AlterConfigs (which the
        embedded broker lacks), and on Apache Kafka they are the topic's own from the start."""
        if self.min_insync_replicas is None:
            return {}
        return {MIN_INSYNC: str(self.min_insync_replicas)}


@dataclass
class TopicReport:
    """What `ensure_topics` found and did, by topic name."""

    created: list[str] = field(default_factory=list)
    existing: dict[str, int] = field(default_factory=dict)  # name -> partitions it has
    # name -> the fewest replicas any of its partitions has
    replicas: dict[str, int] = field(default_factory=dict)

    def fewer_partitions(self, wanted: int) -> dict[str, int]:
        """Existing topics with fewer partitions than configured: fewer replicas can share
        their work. They are never grown here: a keyed topic that grows moves keys to other
        partitions, and a child's events in flight could then be read out of order."""
        return {name: n for name, n in self.existing.items() if n < wanted}

    def fewer_replicas(self, wanted: int) -> dict[str, int]:
        """Existing topics kept on fewer brokers than configured: one broker lost could lose
        what they hold. Raising it is a reassignment, the operator's to plan."""
        return {name: n for name, n in self.replicas.items() if n < wanted}


def _described(described: list[dict]) -> dict[str, dict]:
    return {t["topic"]: t for t in described if t.get("error_code", 0) == 0 and t.get("partitions")}


def _fewest_replicas(topic: dict) -> int:
    return min(len(p.get("replicas") or []) for p in topic["partitions"])


def _refusals(response: object) -> dict[str, str]:
    """The topics a CreateTopics answer refused, with the broker's reason; a topic another
    replica created first is not a refusal."""
    refused: dict[str, str] = {}
    for entry in response.to_object()["topic_errors"]:  # type: ignore[attr-defined]
        code = entry["error_code"]
        if code in (0, kafka_errors.TopicAlreadyExistsError.errno):
            continue
        reason = entry.get("error_message") or kafka_errors.for_code(code).__name__
        refused[entry["topic"]] = f"{reason} (error code {code})"
    return refused


async def ensure_topics(bootstrap: str, topics: Topics) -> TopicReport:
    """Create the topics that are missing with the layout of `topics`; an unknown topic must
    never be auto-created with the broker's defaults. Existing topics are left as they are."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        report = TopicReport()
        # Every topic, not the ones named: a Metadata request naming a missing topic would
        # have the broker auto-create it with its defaults.
        have = _described(await admin.describe_topics())
        missing = [name for name in topics.all() if name not in have]
        present = [name for name in topics.all() if name in have]
        report.existing = {name: len(have[name]["partitions"]) for name in present}
        report.replicas = {name: _fewest_replicas(have[name]) for name in present}
        if missing:
            wanted = [
                NewTopic(
                    name,
                    num_partitions=topics.partitions,
                    replication_factor=topics.replication_factor,
                    topic_configs=topics.configs(),
                )
                for name in missing
            ]
            refused = _refusals(await admin.create_topics(wanted))
            if refused:
                detail = "; ".join(f"{name}: {why}" for name, why in refused.items())
                raise TopicError(f"the broker refused to create {detail}")
            report.created = missing
        return report
    finally:
        await admin.close()


async def min_insync_replicas(bootstrap: str, names: list[str]) -> dict[str, str | None]:
    """Each topic's `min.insync.replicas` as the broker describes it (None: not reported)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        answers = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
        )
    finally:
        await admin.close()
    found: dict[str, str | None] = dict.fromkeys(names)
    for answer in answers:
        for resource in answer.to_object()["resources"]:
            for entry in resource["config_entries"]:
                if entry["config_names"] == MIN_INSYNC:
                    found[resource["resource_name"]] = entry["config_value"]
    return found
