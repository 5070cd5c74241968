"""A browser-less console client: a session cookie, its CSRF token, and form posts."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field

import httpx

from goldenhour.dev.devsystem import DevSystem

PASSWORD = "correct horse battery staple"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def run_set_password(system: DevSystem, user_id: str, password: str) -> subprocess.CompletedProcess:
    """`goldenhour users set-password`, as an operator would run it."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "goldenhour",
            "users",
            "set-password",
            user_id,
            "--stdin",
        ],
        input=password + "\n",
        env={**system.env, "GOLDENHOUR_LOG_LEVEL": "warning"},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=os.getcwd(),
    )


def set_password(system: DevSystem, user_id: str, password: str = PASSWORD) -> None:
    done = run_set_password(system, user_id, password)
    assert done.returncode == 0, done.stderr


@dataclass
class Console:
    """One signed-in (or not yet) browser, without the browser.

    Cookies are carried by hand: they are `Secure`, and an HTTP client rightly keeps those off
    plain http, where a browser makes an exception for localhost.
    """

    system: DevSystem
    cookies: dict[str, str] = field(default_factory=dict)
    csrf: str = ""

    def client(self) -> httpx.AsyncClient:
        header = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        return httpx.AsyncClient(
            base_url=self.system.api_url,
            headers={"Cookie": header} if header else {},
            follow_redirects=False,
            timeout=10,
        )

    def _keep(self, response: httpx.Response) -> None:
        for raw in response.headers.get_list("set-cookie"):
            name, _, rest = raw.partition("=")
            value = rest.split(";", 1)[0].strip('"')
            if "max-age=0" in raw.lower() or not value:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
        found = (
            CSRF.search(response.text)
            if response.headers.get("content-type", "").startswith("text/html")
            else None
        )
        if found:
            self.csrf = found.group(1)

    async def get(self, path: str, **kw) -> httpx.Response:
        async with self.client() as c:
            r = await c.get(path, **kw)
        self._keep(r)
        return r

    async def post(self, path: str, data: dict | None = None, csrf: bool = True) -> httpx.Response:
        form = dict(data or {})
        if csrf:
            form.setdefault("csrf_token", self.csrf)
        async with self.client() as c:
            r = await c.post(path, data=form)
        self._keep(r)
        return r

    async def sign_in(self, user_id: str, password: str = PASSWORD) -> httpx.Response:
        await self.get("/console/login")
        return await self.post("/console/login", {"user_id": user_id, "password": password})
