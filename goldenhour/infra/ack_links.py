"""The acknowledgement link in every alert email: signed, expiring, bound to one message.

The token names the notification (so the API knows which alert and which contact) and is signed
with `GOLDENHOUR_SECRET_KEY`; it expires after `GOLDENHOUR_ACK_LINK_TTL_S`. While the key is
rotated, links signed with `GOLDENHOUR_SECRET_KEY_PREVIOUS` are still accepted. Single use is the
API's job: it records the notification in `ack_link_uses` when the link is confirmed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

_SALT = "goldenhour.ack-link.v1"
PATH = "/ack/"


class LinkRefused(Exception):
    """The link cannot acknowledge anything; the message is safe to show to its holder."""


@dataclass(frozen=True)
class AckLinks:
    """Makes and reads acknowledgement links under the public URL."""

    secret: str
    public_url: str
    ttl_s: int
    previous_secret: str | None = None

    def _serializer(self) -> URLSafeTimedSerializer:
        # itsdangerous signs with the last key of the list and accepts a signature by any.
        keys = [self.secret] if not self.previous_secret else [self.previous_secret, self.secret]
        return URLSafeTimedSerializer(keys, salt=_SALT)

    def url(self, notification_id: uuid.UUID) -> str:
        token = self._serializer().dumps(str(notification_id))
        return f"{self.public_url.rstrip('/')}{PATH}{token}"

    def notification(self, token: str) -> uuid.UUID:
        """The notification a token names, or LinkRefused when forged, damaged or expired."""
        try:
            value = self._serializer().loads(token, max_age=self.ttl_s)
            return uuid.UUID(value)
        except SignatureExpired:
            raise LinkRefused(
                "This acknowledgement link has expired. Reply to the SMS with ACK and the code, "
                "or sign in to the console."
            ) from None
        except (BadSignature, ValueError, TypeError):
            raise LinkRefused("This acknowledgement link is not valid.") from None
