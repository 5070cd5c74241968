"""`goldenhour streams`: one streams worker process."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from goldenhour.infra.logs import quiet_faust
from goldenhour.infra.settings import Settings


def main(settings: Settings) -> int:
    """Run the faust worker until a signal stops it."""
    import faust

    from goldenhour.infra.faults import patiently
    from goldenhour.infra.producers import producer_options
    from goldenhour.infra.topics import ensure_topics
    from goldenhour.streams.app import build_app

    bootstrap, _ = settings.require_servers()

    async def broker_ready() -> dict:
        await ensure_topics(bootstrap, settings.topics)
        return await producer_options(bootstrap)

    # Started while the broker is down, the worker waits for it.
    options = asyncio.run(patiently("broker", broker_ready))
    # faust keeps a data directory even with in-memory tables; keep it out of the working one.
    with tempfile.TemporaryDirectory(prefix="goldenhour-streams-") as datadir:
        app = build_app(settings, Path(datadir), options["enable_idempotence"])
        worker = faust.Worker(app, loglevel="WARNING", quiet=True, override_logging=False)
        worker.spinner = None  # it would write terminal escape codes to a log
        quiet_faust()
        worker.execute_from_commandline()
    return 0
