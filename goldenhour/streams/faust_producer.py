"""The producer faust makes for the streams worker, made like every other producer of Golden
Hour (infra/producers.py): `acks=all`, and idempotent where the broker serves it. faust asks for
idempotence only inside its exactly-once transactions, which the worker does not use."""

from __future__ import annotations

from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka

_wanted = {"enable_idempotence": False}


def adjust_producer(enable_idempotence: bool) -> None:
    """Make faust's producer idempotent when `enable_idempotence` (the broker's answer to
    `infra.producers.supports_idempotence`), before the app starts it."""
    _wanted["enable_idempotence"] = enable_idempotence
    producer = faust_aiokafka.Producer
    if getattr(producer._settings_extra, "_goldenhour", False):
        return
    original = producer._settings_extra

    def settings_extra(self: Any) -> dict[str, Any]:
        extra = dict(original(self))
        if _wanted["enable_idempotence"]:
            extra.update(acks="all", enable_idempotence=True)
        return extra

    settings_extra._goldenhour = True  # type: ignore[attr-defined]
    producer._settings_extra = settings_extra  # type: ignore[method-assign]
