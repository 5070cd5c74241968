"""Fixtures the integration tests share: a pool on a freshly migrated database."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from goldenhour.infra.db import create_pool


@pytest.fixture
async def pool(migrated_db: str) -> AsyncIterator[asyncpg.Pool]:
    p = await create_pool(migrated_db)
    yield p
    await p.close()
