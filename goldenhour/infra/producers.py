"""Every Kafka producer's options: `acks=all`, and the idempotent producer when the broker has it.

The idempotent producer keeps a retried batch from being written twice and a child's events in
order across retries. Apache Kafka has it; the embedded broker lists InitProducerId (API key 22)
in its ApiVersions but answers the version this client speaks with an error. So it is asked,
not assumed, in two steps: every broker must offer a version of InitProducerId the client
speaks, and one must then hand out a producer id when asked, as it would to a new producer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import structlog
from aiokafka import AIOKafkaClient
from aiokafka import errors as kafka_errors
from aiokafka.protocol.admin import ApiVersionRequest
from aiokafka.protocol.transaction import InitProducerIdRequest

log = structlog.get_logger(__name__)

INIT_PRODUCER_ID = InitProducerIdRequest.API_KEY
DETECT_TIMEOUT_S = 10.0

Versions = Mapping[int, tuple[int, int]]

# The last decision logged per bootstrap address, so the choice is logged once, not per producer.
_logged: dict[str, bool] = {}


def idempotence_decision(brokers: Mapping[int, Versions]) -> tuple[bool, str]:
    """Whether every broker offers InitProducerId in a version this client speaks, and why
    not, from each broker's ApiVersions (node id -> api key -> (min, max) version)."""
    if not brokers:
        return False, "no broker answered ApiVersions"
    for node, versions in sorted(brokers.items()):
        if INIT_PRODUCER_ID not in versions:
            return False, f"broker {node} does not offer InitProducerId (API key 22)"
        try:
            InitProducerIdRequest(None, 1000).prepare(dict(versions))
        except (kafka_errors.IncompatibleBrokerVersion, NotImplementedError):
            low, high = versions[INIT_PRODUCER_ID]
            return False, (
                f"broker {node} offers InitProducerId v{low}-v{high} only, a version this"
                " client does not speak"
            )
    return True, f"every broker ({len(brokers)}) offers InitProducerId"


def producer_id_decision(node: int, error_code: int, producer_id: int) -> tuple[bool, str]:
    """Whether a broker's answer to InitProducerId gave a producer id, and why not; raises the
    error when it is one Kafka retries (a KRaft cluster's block of producer ids still loading):
    the caller asks again, and never takes a broker not ready yet for one without it."""
    if error_code == 0 and producer_id >= 0:
        return True, f"broker {node} hands out producer ids"
    error = kafka_errors.for_code(error_code)
    if error_code != 0 and error.retriable:
        raise error(f"broker {node} is not ready to hand out producer ids")
    return False, (
        f"broker {node} answered InitProducerId with {error.__name__} (error code {error_code})"
    )


def _client(bootstrap: str, timeout_s: float) -> AIOKafkaClient:
    return AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000))


async def _versions(client: AIOKafkaClient, bootstrap: str) -> dict[int, Versions]:
    await client.bootstrap()
    nodes = [b.nodeId for b in client.cluster.brokers()]
    if not nodes:
        raise kafka_errors.KafkaConnectionError(f"no broker known at {bootstrap}")
    found: dict[int, Versions] = {}
    for node in nodes:
        response = await client.send(node, ApiVersionRequest())
        found[node] = {key: (low, high) for key, low, high in response.api_versions}
    return found


async def broker_versions(
    bootstrap: str, timeout_s: float = DETECT_TIMEOUT_S
) -> dict[int, Versions]:
    """Each broker's ApiVersions answer, by node id."""
    client = _client(bootstrap, timeout_s)
    try:
        async with asyncio.timeout(timeout_s):
            return await _versions(client, bootstrap)
    finally:
        await client.close()


async def supports_idempotence(
    bootstrap: str, timeout_s: float = DETECT_TIMEOUT_S
) -> tuple[bool, str]:
    """Whether the cluster at `bootstrap` serves the idempotent producer, and why; raises
    while the broker cannot be reached (the caller retries, as it would to start a producer)."""
    client = _client(bootstrap, timeout_s)
    try:
        async with asyncio.timeout(timeout_s):
            versions = await _versions(client, bootstrap)
            offered, reason = idempotence_decision(versions)
            if not offered:
                return False, reason
            node = min(versions)
            try:
                answer = await client.send(node, InitProducerIdRequest(None, 60_000))
            except kafka_errors.KafkaConnectionError:
                raise  # unreachable, not unable: the caller tries again
            except kafka_errors.KafkaError as exc:  # it lists the API but cannot serve it
                return False, f"broker {node} failed InitProducerId: {exc!r}"
            return producer_id_decision(node, answer.error_code, answer.producer_id)
    finally:
        await client.close()


async def producer_options(bootstrap: str) -> dict[str, Any]:
    """The options every producer of Golden Hour is made with, the choice logged once."""
    enabled, reason = await supports_idempotence(bootstrap)
    if _logged.get(bootstrap) is not enabled:
        _logged[bootstrap] = enabled
        log.info("producer.idempotence", enabled=enabled, reason=reason)
    return {"acks": "all", "enable_idempotence": enabled}
