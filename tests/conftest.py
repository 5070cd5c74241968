"""Session fixtures: one real embedded Kafka and PostgreSQL for the whole run."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from hypothesis import settings

from goldenhour.dev.stack import EmbeddedStack

# The default run draws the same examples every time, so a red build means a change broke
# something, not that the search got lucky. HYPOTHESIS_PROFILE=explore searches afresh and wider.
settings.register_profile("repeatable", derandomize=True)
settings.register_profile("explore", max_examples=2000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))


@pytest.fixture(scope="session")
def stack() -> Iterator[EmbeddedStack]:
    """The embedded broker and database, stopped at the end whatever happened."""
    bootstrap = os.environ.get("GOLDENHOUR_KAFKA_BOOTSTRAP")
    if bootstrap and os.environ.get("GOLDENHOUR_DATABASE_URL"):
        pytest.fail("tests start their own stack; unset GOLDENHOUR_KAFKA_BOOTSTRAP/DATABASE_URL")
    with EmbeddedStack() as s:
        yield s


@pytest.fixture
def database_url(stack: EmbeddedStack) -> str:
    """A fresh database of its own for one test."""
    return stack.create_database(f"t_{uuid.uuid4().hex[:12]}")


@pytest.fixture
async def migrated_db(database_url: str) -> AsyncIterator[str]:
    from goldenhour.infra.db import migrate

    await migrate(database_url)
    yield database_url
