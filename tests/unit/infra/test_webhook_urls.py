"""Webhook URLs: http(s) only, no credentials, and no server-side request forgery targets.

Only literal addresses and `localhost` (from /etc/hosts) are resolved for real; host names that
would need DNS go through a stand-in resolver (the `resolve` argument), so no test depends on
external DNS.
"""

from __future__ import annotations

import ipaddress
import socket

import pytest

from goldenhour.infra import webhook_urls
from goldenhour.infra.webhook_urls import (
    NonPublicAddress,
    UnresolvableHost,
    WebhookUrlError,
    check_webhook_url,
    non_public_reason,
    resolve_and_vet,
)


@pytest.mark.parametrize(
    "url, reason",
    [
        ("http://127.0.0.1/hook", "loopback"),
        ("http://127.8.9.10:8080/hook", "loopback"),
        ("http://10.1.2.3/hook", "private"),
        ("http://172.16.0.1/hook", "private"),
        ("https://192.168.1.20/hook", "private"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://[::1]/hook", "loopback"),
        ("http://[fc00::1]/hook", "private"),
        ("http://[fe80::1]/hook", "link-local"),
        ("http://0.0.0.0/hook", "unspecified"),
        ("http://224.0.0.1/hook", "multicast"),
        ("http://100.64.0.1/hook", "not globally routable"),
        ("http://[::ffff:127.0.0.1]/hook", "loopback"),
        ("http://[2002:a00:1::1]/hook", "private"),  # 6to4 wrapping 10.0.0.1
        ("http://localhost:9000/hook", "loopback"),
    ],
)
async def test_non_public_addresses_are_refused(url, reason):
    with pytest.raises(WebhookUrlError, match=f"is a {reason} address"):
        await check_webhook_url(url, allow_private=False)


@pytest.mark.parametrize(
    "url",
    [
        "https://93.184.216.34/goldenhour/alerts",
        "http://93.184.216.34:8080/hook?x=1",
        "https://[2606:2800:220:1:248:1893:25c8:1946]/hook",
        "https://8.8.8.8/",
    ],
)
async def test_public_addresses_are_accepted(url):
    await check_webhook_url(url, allow_private=False)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:9/hook", "http://localhost/hook", "http://[::1]/", "http://10.0.0.5/"]
)
async def test_private_addresses_are_allowed_when_configured(url):
    await check_webhook_url(url, allow_private=True)


@pytest.mark.parametrize(
    "url, why",
    [
        ("ftp://93.184.216.34/hook", "must be http or https"),
        ("file:///etc/passwd", "must be http or https"),
        ("gopher://93.184.216.34/", "must be http or https"),
        ("https://user:pw@93.184.216.34/hook", "user name or password"),
        ("https://user@93.184.216.34/hook", "user name or password"),
        ("http:///hook", "has no host"),
        ("http://93.184.216.34:99999/hook", "not a valid URL"),
    ],
)
@pytest.mark.parametrize("allow_private", [False, True])
async def test_malformed_urls_are_refused_even_when_private_is_allowed(url, why, allow_private):
    with pytest.raises(WebhookUrlError, match=why):
        await check_webhook_url(url, allow_private=allow_private)


def fake_dns(answers: dict[str, list[str] | Exception]) -> webhook_urls.Resolver:
    """Resolve host names from `answers` (a list of addresses, or the error to raise)."""

    async def resolve(host: str, port: int) -> list[str]:
        answer = answers[host]
        if isinstance(answer, Exception):
            raise answer
        return list(answer)

    return resolve


@pytest.mark.parametrize("allow_private", [False, True])
async def test_an_unresolvable_host_is_refused(allow_private):
    dns = fake_dns({"lbi.example": socket.gaierror(-2, "Name or service not known")})
    with pytest.raises(UnresolvableHost, match="cannot resolve host 'lbi.example'"):
        await check_webhook_url("https://lbi.example/hook", allow_private, dns)


async def test_a_resolver_timeout_is_refused():
    dns = fake_dns({"slow.example": TimeoutError()})
    with pytest.raises(UnresolvableHost, match="cannot resolve host 'slow.example' \\(timed out"):
        await check_webhook_url("https://slow.example/hook", False, dns)


@pytest.mark.parametrize("order", [1, -1])
async def test_a_name_is_refused_if_any_of_its_addresses_is_private(order):
    dns = fake_dns({"rebind.example": ["93.184.216.34", "169.254.169.254"][::order]})
    with pytest.raises(NonPublicAddress, match=r"'rebind.example' \(169.254.169.254\) is a link"):
        await check_webhook_url("https://rebind.example/hook", False, dns)


async def test_a_name_with_only_public_addresses_is_accepted():
    dns = fake_dns({"lbi.example": ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"]})
    await check_webhook_url("https://lbi.example/goldenhour/alerts", False, dns)


async def test_resolve_and_vet_answers_the_addresses_in_the_resolvers_order():
    dns = fake_dns({"lbi.example": ["2606:2800:220:1:248:1893:25c8:1946", "93.184.216.34"]})
    vetted = await resolve_and_vet("lbi.example", 443, False, dns)
    assert [str(a) for a in vetted] == ["2606:2800:220:1:248:1893:25c8:1946", "93.184.216.34"]


async def test_resolve_and_vet_refuses_naming_the_reason():
    dns = fake_dns({"inside.example": ["127.0.0.1"]})
    with pytest.raises(NonPublicAddress) as refused:
        await resolve_and_vet("inside.example", 80, False, dns)
    assert (refused.value.host, refused.value.address) == ("inside.example", "127.0.0.1")
    assert refused.value.reason == "loopback"
    assert [str(a) for a in await resolve_and_vet("inside.example", 80, True, dns)] == ["127.0.0.1"]


async def test_an_empty_answer_is_unresolvable():
    with pytest.raises(UnresolvableHost, match="no address"):
        await resolve_and_vet("void.example", 80, True, fake_dns({"void.example": []}))


async def test_real_resolution_of_a_literal_passes_the_port_through():
    # No stand-in: the event loop's getaddrinfo resolves literals without any DNS.
    assert await webhook_urls.resolve_host("93.184.216.34", 8443) == ["93.184.216.34"]


@pytest.mark.parametrize(
    "address, public",
    [("93.184.216.34", True), ("8.8.4.4", True), ("192.0.2.1", False), ("::", False)],
)
def test_non_public_reason(address, public):
    assert (non_public_reason(ipaddress.ip_address(address)) is None) is public
