"""`goldenhour api`: the API process, served by uvicorn."""

from __future__ import annotations

import uvicorn

from goldenhour.infra.settings import Settings
from goldenhour.services.app import create_app


def serve(settings: Settings) -> int:
    """Serve the API until it is stopped."""
    uvicorn.run(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        log_level="warning",
        access_log=False,
        # X-Forwarded-For is believed only from GOLDENHOUR_TRUSTED_PROXIES (services.http_limits).
        proxy_headers=False,
    )
    return 0
