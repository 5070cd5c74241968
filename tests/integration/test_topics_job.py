"""`goldenhour topics`, the one-shot job a deployment runs before the parts: it creates every
topic with the configured layout, changes nothing when run again, reports a topic with fewer
partitions or replicas than configured without touching it, and refuses a bad setting by its
name."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml
from aiokafka.admin import AIOKafkaAdminClient

from goldenhour.dev.london import directory
from goldenhour.dev.stack import EmbeddedStack
from goldenhour.infra.topics import Topics, ensure_topics, min_insync_replicas

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    config, _ = directory()
    path = tmp_path / "goldenhour.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


async def topics_job(
    stack: EmbeddedStack, config_path: Path, prefix: str, **env: str
) -> subprocess.CompletedProcess[str]:
    """The real command, as a deployment's job runs it; bounded, and killed if it overruns."""
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "goldenhour", "topics"],
        cwd=ROOT,
        env={
            **os.environ,
            "GOLDENHOUR_CONFIG": str(config_path),
            "GOLDENHOUR_KAFKA_BOOTSTRAP": stack.kafka_bootstrap,
            "GOLDENHOUR_TOPIC_PREFIX": prefix,
            **env,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )


async def partitions(stack: EmbeddedStack, prefix: str) -> dict[str, int]:
    """Every topic under `prefix` on the broker, with its partition count."""
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics()
    finally:
        await admin.close()
    return {
        t["topic"]: len(t["partitions"]) for t in described if t["topic"].startswith(f"{prefix}.")
    }


def fresh_prefix() -> str:
    return f"job-{uuid.uuid4().hex[:8]}"


async def test_the_job_creates_every_topic_and_a_second_run_changes_nothing(
    stack: EmbeddedStack, config_path: Path
) -> None:
    prefix = fresh_prefix()
    layout = {
        "GOLDENHOUR_TOPIC_PARTITIONS": "3",
        "GOLDENHOUR_TOPIC_REPLICATION_FACTOR": "1",
        "GOLDENHOUR_TOPIC_MIN_INSYNC_REPLICAS": "1",
    }
    first = await topics_job(stack, config_path, prefix, **layout)
    assert first.returncode == 0, first.stderr
    names = Topics(prefix).all()
    for name in names:
        assert f"created: {name} (3 partitions, replication factor 1, min.insync.replicas=1)" in (
            first.stdout
        )
    assert await partitions(stack, prefix) == dict.fromkeys(names, 3)
    # Set at creation as the topic's own config: the embedded broker reports none otherwise.
    assert await min_insync_replicas(stack.kafka_bootstrap, names) == dict.fromkeys(names, "1")

    again = await topics_job(stack, config_path, prefix, **layout)
    assert again.returncode == 0, again.stderr
    assert "created: nothing (every topic exists)" in again.stdout
    assert "warning" not in again.stderr
    assert await partitions(stack, prefix) == dict.fromkeys(names, 3)


async def test_a_topic_with_fewer_partitions_is_reported_and_left_as_it_is(
    stack: EmbeddedStack, config_path: Path
) -> None:
    prefix = fresh_prefix()
    await ensure_topics(stack.kafka_bootstrap, Topics(prefix, partitions=2))
    run = await topics_job(stack, config_path, prefix, GOLDENHOUR_TOPIC_PARTITIONS="6")
    assert run.returncode == 0, run.stderr
    intake = Topics(prefix).intake
    assert f"warning: {intake} has 2 partitions, fewer than the 6 configured" in run.stderr
    assert await partitions(stack, prefix) == dict.fromkeys(Topics(prefix).all(), 2)


async def test_a_topic_on_fewer_brokers_than_configured_is_reported(
    stack: EmbeddedStack, config_path: Path
) -> None:
    """A part started before the job made the topics with the single-machine layout: the job
    says so rather than let a one-replica topic pass for a three-replica one."""
    prefix = fresh_prefix()
    await ensure_topics(stack.kafka_bootstrap, Topics(prefix, replication_factor=1))
    run = await topics_job(stack, config_path, prefix, GOLDENHOUR_TOPIC_REPLICATION_FACTOR="3")
    assert run.returncode == 0, run.stderr
    for name in Topics(prefix).all():
        assert f"warning: {name} has 1 replicas, fewer than the replication factor 3" in run.stderr


async def test_an_existing_topic_without_the_min_insync_setting_is_reported(
    stack: EmbeddedStack, config_path: Path
) -> None:
    prefix = fresh_prefix()
    names = Topics(prefix).all()
    await ensure_topics(stack.kafka_bootstrap, Topics(prefix))
    run = await topics_job(stack, config_path, prefix, GOLDENHOUR_TOPIC_MIN_INSYNC_REPLICAS="1")
    assert run.returncode == 0, run.stderr
    for name in names:
        assert (
            f"warning: {name} has min.insync.replicas=the broker default, not the 1 configured"
            in run.stderr
        )
    assert await min_insync_replicas(stack.kafka_bootstrap, names) == dict.fromkeys(names)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"GOLDENHOUR_TOPIC_PARTITIONS": "0"}, "GOLDENHOUR_TOPIC_PARTITIONS"),
        (
            {
                "GOLDENHOUR_TOPIC_REPLICATION_FACTOR": "1",
                "GOLDENHOUR_TOPIC_MIN_INSYNC_REPLICAS": "2",
            },
            "GOLDENHOUR_TOPIC_MIN_INSYNC_REPLICAS",
        ),
    ],
)
async def test_a_bad_setting_is_refused_with_the_variable_named_and_nothing_created(
    stack: EmbeddedStack, config_path: Path, env: dict[str, str], named: str
) -> None:
    prefix = fresh_prefix()
    run = await topics_job(stack, config_path, prefix, **env)
    assert run.returncode != 0
    assert named in run.stderr
    assert await partitions(stack, prefix) == {}
