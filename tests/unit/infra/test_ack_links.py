"""Acknowledgement links: bound to one message, signed, expiring."""

from __future__ import annotations

import time
import uuid
from unittest import mock

import pytest

from goldenhour.infra.ack_links import AckLinks, LinkRefused

SECRET = "s" * 40
LINKS = AckLinks(SECRET, "https://goldenhour.example/", ttl_s=3600)


def token(url: str) -> str:
    return url.rsplit("/", 1)[1]


def test_a_link_names_its_notification_under_the_public_url():
    nid = uuid.uuid4()
    url = LINKS.url(nid)
    assert url.startswith("https://goldenhour.example/ack/")
    assert LINKS.notification(token(url)) == nid


def test_an_expired_link_is_refused_with_a_way_forward():
    with mock.patch("itsdangerous.timed.time.time", return_value=time.time() - 3601):
        old = token(LINKS.url(uuid.uuid4()))
    with pytest.raises(LinkRefused, match="expired.*ACK"):
        LINKS.notification(old)


@pytest.mark.parametrize(
    "bad",
    [
        token(AckLinks("another secret " * 3, "https://x", 3600).url(uuid.uuid4())),
        token(LINKS.url(uuid.uuid4()))[:-2] + "xx",
        "",
        "not-a-token",
    ],
)
def test_forged_or_damaged_links_are_refused(bad):
    with pytest.raises(LinkRefused, match="not valid"):
        LINKS.notification(bad)


def test_a_signed_value_that_is_not_a_notification_id_is_refused():
    from itsdangerous import URLSafeTimedSerializer

    other = URLSafeTimedSerializer(SECRET, salt="goldenhour.ack-link.v1").dumps("alert-42")
    with pytest.raises(LinkRefused, match="not valid"):
        LINKS.notification(other)
