"""The providers' side of the demo: every SMS and email as the local servers receive it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

from goldenhour.demo import narration
from goldenhour.demo.people import Directory
from goldenhour.dev.devsystem import DevSystem


@dataclass
class ProviderFeed:
    """Narrates every SMS and email as the local Twilio and SMTP servers receive it."""

    system: DevSystem
    people: Directory
    seen_sms: int = 0
    seen_mail: int = 0
    # When set, only the messages to these contacts are narrated (the rest are still received).
    only: frozenset[str] | None = None

    def _shown(self, who: list[str]) -> bool:
        return self.only is None or any(w in self.only for w in who)

    def drain(self) -> None:
        """Print what arrived since last time, oldest first."""
        lines: list[tuple[float, str]] = []
        messages = self.system.twilio.messages
        for sms in messages[self.seen_sms :]:
            who = self.people.by_phone.get(sms.to, sms.to)
            if self._shown([who]):
                lines.append((sms.received_at, f"SMS    -> {who:<9} {sms.body}"))
        self.seen_sms = len(messages)
        mails = self.system.smtp.messages
        for mail in mails[self.seen_mail :]:
            names = [self.people.by_email.get(r.lower(), r) for r in mail.rcpt_tos]
            if self._shown(names):
                lines.append((mail.received_at, f"email  -> {', '.join(names):<9} {mail.subject}"))
        self.seen_mail = len(mails)
        for at, text in sorted(lines, key=lambda line: line[0]):
            narration.say(text, at=at, clipped=True)

    def say(self, text: str = "", at: float | datetime | None = None) -> None:
        """Narrate, after the messages that arrived before this moment."""
        self.drain()
        narration.say(text, at)

    async def run(self) -> None:
        while True:
            self.drain()
            await asyncio.sleep(0.02)

    def sms_to(self) -> set[str | None]:
        """The contacts sent an SMS so far (None for a number outside the directory)."""
        return {self.people.by_phone.get(m.to) for m in self.system.twilio.messages}

    def mail_to(self) -> set[str | None]:
        """The contacts sent an email so far (None for an address outside the directory)."""
        return {
            self.people.by_email.get(r.lower())
            for m in self.system.smtp.messages
            for r in m.rcpt_tos
        }

    def sms_so_far(self) -> str:
        """The contacts sent an SMS so far, in words."""
        return ", ".join(sorted(filter(None, self.sms_to()))) or "nobody"
