"""A worker's /metrics answers only the holder of the metrics token; unset, it is not there.
The worker's own health server on a port of its own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from goldenhour.dev.servers import free_port
from goldenhour.infra.health import HealthServer, metrics_refusal
from goldenhour.infra.settings import Settings

TOKEN = "a-metrics-token-for-the-scraper"


async def serving(*tokens: str) -> AsyncIterator[str]:
    port = free_port()
    server = HealthServer(port, {}, metrics_tokens=tokens)
    await server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await server.stop()


@pytest.fixture
async def with_token() -> AsyncIterator[str]:
    async for url in serving(TOKEN):
        yield url


@pytest.fixture
async def without_token() -> AsyncIterator[str]:
    async for url in serving():
        yield url


async def test_only_the_token_reads_the_metrics(with_token: str) -> None:
    async with httpx.AsyncClient(base_url=with_token, timeout=5) as c:
        anonymous = await c.get("/metrics")
        wrong = await c.get("/metrics", headers={"Authorization": "Bearer " + TOKEN[:-1]})
        scraper = await c.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        health = await c.get("/healthz")
    assert anonymous.status_code == wrong.status_code == 401
    assert anonymous.headers["WWW-Authenticate"] == "Bearer"
    assert "python_info" not in anonymous.text + wrong.text
    assert scraper.status_code == 200 and "python_info" in scraper.text
    assert health.status_code == 200  # probes need no token


async def test_without_a_token_there_are_no_metrics(without_token: str) -> None:
    async with httpx.AsyncClient(base_url=without_token, timeout=5) as c:
        r = await c.get("/metrics", headers={"Authorization": "Bearer anything"})
    assert r.status_code == 404


@pytest.mark.parametrize(
    ("authorization", "status"),
    [(None, 401), ("", 401), (f"Basic {TOKEN}", 401), (f"Bearer {TOKEN}x", 401), (TOKEN, 401)],
)
def test_refusals(authorization: str | None, status: int) -> None:
    refused = metrics_refusal([TOKEN], authorization)
    assert refused is not None and refused[0] == status


def test_the_token_in_any_case_of_the_scheme() -> None:
    assert metrics_refusal([TOKEN], f"bearer {TOKEN}") is None
    assert metrics_refusal([], f"Bearer {TOKEN}") == (404, "Not Found", {})


async def test_during_a_rotation_both_tokens_read_the_metrics() -> None:
    new = "the-new-metrics-token-of-the-scraper"
    async for url in serving(new, TOKEN):
        async with httpx.AsyncClient(base_url=url, timeout=5) as c:
            answers = [
                (await c.get("/metrics", headers={"Authorization": f"Bearer {t}"})).status_code
                for t in (new, TOKEN, "neither-of-the-two-tokens")
            ]
    assert answers == [200, 200, 401]


def test_the_previous_token_alone_opens_nothing(tmp_path: Path) -> None:
    def tokens(**env: str) -> tuple[str, ...]:
        return Settings(GOLDENHOUR_CONFIG=tmp_path / "none.yaml", **env).metrics_tokens

    new = "the-new-metrics-token-of-the-scraper"
    assert tokens(GOLDENHOUR_METRICS_TOKEN_PREVIOUS=TOKEN) == ()
    assert tokens(GOLDENHOUR_METRICS_TOKEN=new, GOLDENHOUR_METRICS_TOKEN_PREVIOUS=TOKEN) == (
        new,
        TOKEN,
    )


def test_one_string_is_not_taken_for_its_characters() -> None:
    with pytest.raises(TypeError):
        metrics_refusal(TOKEN, "Bearer a")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        HealthServer(free_port(), {}, metrics_tokens=TOKEN)
