"""The local Twilio and SMTP servers in processes of their own, and what arrived at Twilio.

`DevSystem` runs both inside the caller's process. At 50 reports a second that is 150 SMS POSTs,
300 status callbacks and 150 mails a second in the load generator's own event loop and GIL: the
harness, not the product, became the bottleneck (reports went out at 16/s instead of 50). Here
each runs as its own process (their modules' command lines), and the bench reads the SMS
arrival times (`received_at`, wall clock) from the Twilio server's `/_local/messages`.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
from collections import Counter

import aiohttp

from goldenhour.dev import devsystem
from goldenhour.dev.servers import end_server, free_port, spawn_server

# Every SMS names the case (never the child): `Case GH-2026-000042` / `case TM-2026-000042`.
CASE = re.compile(r"\b([A-Z]{2}-2026-\d{6})\b")


class TwilioProcess:
    """`LocalTwilio`'s interface as DevSystem uses it, served by `goldenhour.dev.twilio_local`."""

    def __init__(self, account_sid: str, auth_token: str) -> None:
        self.account_sid, self.auth_token = account_sid, auth_token
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        argv = ["goldenhour.dev.twilio_local", "--account-sid", self.account_sid]
        argv += ["--auth-token", self.auth_token]
        self.proc = await asyncio.to_thread(spawn_server, argv, self.port, timeout=15)

    async def stop(self) -> None:
        await asyncio.to_thread(end_server, self.proc)

    async def messages(self) -> list[dict]:
        """Every SMS accepted so far, with `received_at` (time.time() at the POST)."""
        async with aiohttp.ClientSession() as s, s.get(f"{self.base_url}/_local/messages") as r:
            return (await r.json())["messages"]


class SmtpProcess:
    """`LocalSmtp`'s interface as DevSystem uses it, served by `goldenhour.dev.smtp_local`."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = spawn_server(["goldenhour.dev.smtp_local"], self.port, timeout=15)

    def stop(self) -> None:
        end_server(self.proc)


class BenchSystem(devsystem.DevSystem):
    """DevSystem with its Twilio and SMTP servers as processes (see the module's docstring)."""

    twilio: TwilioProcess  # type: ignore[assignment]
    twilio_server = TwilioProcess
    smtp_server = SmtpProcess

    def provider_pids(self) -> dict[str, int]:
        procs = {"twilio": self.twilio.proc, "smtp": self.smtp.proc}  # type: ignore[attr-defined]
        return {name: p.pid for name, p in procs.items() if p is not None and p.poll() is None}


def first_sms(messages: list[dict], since: float = 0.0) -> dict[str, float]:
    """The wall-clock arrival of the first SMS naming each case, since `since`."""
    first: dict[str, float] = {}
    for sms in messages:
        at = sms["received_at"]
        m = CASE.search(sms["body"])
        if at >= since and m and (m.group(1) not in first or at < first[m.group(1)]):
            first[m.group(1)] = at
    return first


def sms_per_recipient(messages: list[dict], prefix: str, since: float = 0.0) -> Counter:
    """How many SMS each (case, phone) got since `since`, for cases starting with `prefix`;
    more than one for one step means a step fired twice."""
    counts: Counter = Counter()
    for sms in messages:
        m = CASE.search(sms["body"])
        if sms["received_at"] >= since and m and m.group(1).startswith(prefix):
            counts[m.group(1), sms["to"]] += 1
    return counts
