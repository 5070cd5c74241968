"""Rotating GOLDENHOUR_SECRET_KEY without downtime: links already sent keep working."""

from __future__ import annotations

import uuid

import pytest

from goldenhour.infra.ack_links import AckLinks, LinkRefused

OLD, NEW, OTHER = "o" * 40, "n" * 40, "x" * 40
URL = "https://goldenhour.example"


def token(url: str) -> str:
    return url.rsplit("/", 1)[1]


def test_a_link_signed_with_the_previous_key_still_acknowledges():
    nid = uuid.uuid4()
    sent_before = token(AckLinks(OLD, URL, 3600).url(nid))
    assert AckLinks(NEW, URL, 3600, previous_secret=OLD).notification(sent_before) == nid


def test_new_links_are_signed_with_the_new_key():
    nid = uuid.uuid4()
    fresh = token(AckLinks(NEW, URL, 3600, previous_secret=OLD).url(nid))
    # Once the previous key is dropped, the new links are unaffected.
    assert AckLinks(NEW, URL, 3600).notification(fresh) == nid
    with pytest.raises(LinkRefused, match="not valid"):
        AckLinks(OLD, URL, 3600).notification(fresh)


def test_a_link_signed_with_a_key_never_configured_is_refused():
    forged = token(AckLinks(OTHER, URL, 3600).url(uuid.uuid4()))
    with pytest.raises(LinkRefused, match="not valid"):
        AckLinks(NEW, URL, 3600, previous_secret=OLD).notification(forged)


def test_once_the_rotation_ends_the_previous_keys_links_are_refused():
    old_link = token(AckLinks(OLD, URL, 3600).url(uuid.uuid4()))
    with pytest.raises(LinkRefused, match="not valid"):
        AckLinks(NEW, URL, 3600).notification(old_link)
