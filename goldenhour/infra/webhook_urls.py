"""Is a subscriber's webhook URL safe to POST to? Refuses server-side request forgery targets.

A webhook URL must be http(s), carry no user name or password, and its host must resolve, every
resolved address being a public one: never loopback, private, link-local (169.254.169.254 is the
cloud metadata service), multicast, reserved, unspecified or otherwise non-global. Tests and the
demo, whose receivers listen on 127.0.0.1, allow private addresses with
GOLDENHOUR_WEBHOOK_ALLOW_PRIVATE=1; the URL must still be well formed and its host resolvable.

The same rule holds at every delivery: the webhook channel resolves the host once per connection
with `resolve_and_vet` and connects only to an address it vetted, so a name that points somewhere
else by then (DNS rebinding) is refused rather than followed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

RESOLVE_TIMEOUT_S = 5.0
"""How long a host name may take to resolve before the URL is refused."""

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class WebhookUrlError(ValueError):
    """The webhook URL is refused; the message says why."""


def non_public_reason(address: IPAddress) -> str | None:
    """Why `address` is not a public address webhooks may go to, or None when it is one."""
    candidates: list[IPAddress] = []
    if isinstance(address, ipaddress.IPv6Address):
        # An IPv4 address wrapped in IPv6 (::ffff:127.0.0.1, 6to4) reaches that IPv4 address:
        # judge it first, for the most telling reason.
        for inner in (address.ipv4_mapped, address.sixtofour):
            if inner is not None:
                candidates.append(inner)
        if address.teredo is not None:
            candidates.extend(address.teredo)
    candidates.append(address)
    for ip in candidates:
        for reason, flag in (
            ("unspecified", ip.is_unspecified),
            ("loopback", ip.is_loopback),
            ("link-local", ip.is_link_local),
            ("multicast", ip.is_multicast),
            ("private", ip.is_private),
            ("reserved", ip.is_reserved),
            ("not globally routable", not ip.is_global),
        ):
            if flag:
                return reason
    return None


def split_url(url: str) -> tuple[str, int]:
    """The host and port of an http(s) URL without credentials; WebhookUrlError otherwise."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise WebhookUrlError(f"webhook_url is not a valid URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise WebhookUrlError(f"webhook_url must be http or https, not '{scheme or '(none)'}'")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise WebhookUrlError("webhook_url must not carry a user name or password")
    host = parts.hostname
    if not host:
        raise WebhookUrlError("webhook_url has no host")
    return host, port or (443 if scheme == "https" else 80)


Resolver = Callable[[str, int], Awaitable[list[str]]]
"""Answers the addresses a host name resolves to, as text, in the order to try them."""


class UnresolvableHost(WebhookUrlError):
    """The host did not resolve (now): at delivery, worth another try later."""


class NonPublicAddress(WebhookUrlError):
    """The host resolved to an address webhooks may not go to."""

    def __init__(self, host: str, address: str, reason: str) -> None:
        self.host, self.address, self.reason = host, address, reason
        where = f"'{host}'" if host == address else f"'{host}' ({address})"
        super().__init__(
            f"webhook_url: {where} is a {reason} address; webhooks go to public addresses only"
        )


async def resolve_host(host: str, port: int) -> list[str]:
    """The addresses `host` resolves to now, each once, in the resolver's order."""
    loop = asyncio.get_running_loop()
    infos = await asyncio.wait_for(
        loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), RESOLVE_TIMEOUT_S
    )
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def vet_addresses(host: str, addresses: list[str], allow_private: bool) -> list[IPAddress]:
    """The addresses, parsed; NonPublicAddress if any one is not public (unless allowed).

    Every address is judged, not only the first: a name with one public and one private
    address could send a connection to either.
    """
    vetted: list[IPAddress] = []
    for text in addresses:
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            raise WebhookUrlError(
                f"webhook_url: host '{host}' resolves to an unusable address {text}"
            ) from None
        reason = None if allow_private else non_public_reason(address)
        if reason is not None:
            raise NonPublicAddress(host, text, reason)
        vetted.append(address)
    return vetted


async def resolve_and_vet(
    host: str, port: int, allow_private: bool, resolve: Resolver = resolve_host
) -> list[IPAddress]:
    """Resolve `host` once and vet every address: the only addresses a connection may use."""
    try:
        addresses = await resolve(host, port)
    except (OSError, UnicodeError, TimeoutError) as exc:
        why = "timed out" if isinstance(exc, TimeoutError) else str(exc) or type(exc).__name__
        raise UnresolvableHost(f"webhook_url: cannot resolve host '{host}' ({why})") from None
    if not addresses:
        raise UnresolvableHost(f"webhook_url: cannot resolve host '{host}' (no address)")
    return vet_addresses(host, addresses, allow_private)


async def check_webhook_url(
    url: str, allow_private: bool, resolve: Resolver = resolve_host
) -> None:
    """Raise WebhookUrlError unless `url` is an http(s) URL whose host resolves to public addresses.

    Every address the host resolves to is checked, so a name with one public and one private
    address is refused. With `allow_private` the addresses may be private (tests, the demo).
    A name can resolve elsewhere later: delivery checks again, on the address it connects to.
    """
    host, port = split_url(url)
    await resolve_and_vet(host, port, allow_private, resolve)
