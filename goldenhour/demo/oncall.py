"""The directory's on-call rotas as the demo reads them through the API, each reader a user of
the rota's organisation (another organisation's rota is 404 to it)."""

from __future__ import annotations

from goldenhour.demo.outcome import ExpectationFailed
from goldenhour.demo.people import ROTAS
from goldenhour.dev.devsystem import DevSystem


async def rotas(system: DevSystem, user: str) -> list[dict]:
    """`GET /api/v1/rotas` as `user`: their organisation's rotas, each with who is on now."""
    async with system.client(user) as c:
        r = await c.get("/rotas")
    if r.status_code != 200:
        raise ExpectationFailed(f"GET /rotas as {user} answered {r.status_code}: {r.text[:300]}")
    return r.json()


async def on_call(system: DevSystem, user: str, rota_id: str) -> dict:
    """`GET /api/v1/rotas/{id}/oncall` as `user`: who is on now, and by what."""
    async with system.client(user) as c:
        r = await c.get(f"/rotas/{rota_id}/oncall")
    if r.status_code != 200:
        raise ExpectationFailed(
            f"GET /rotas/{rota_id}/oncall as {user} answered {r.status_code}: {r.text[:300]}"
        )
    return r.json()


async def read_rotas(system: DevSystem) -> list[dict]:
    """Each rota of `ROTAS` as its organisation's user reads it (`GET /api/v1/rotas`), in that
    order; the demo's story needs the one on and the one off that `ROTAS` names, else
    ExpectationFailed."""
    found = []
    for user, rota_id, on, off in ROTAS:
        rota = next((r for r in await rotas(system, user) if r["rota_id"] == rota_id), None)
        if rota is None:
            raise ExpectationFailed(f"GET /rotas as {user} lists no rota {rota_id}")
        members = rota["on_call"]["members"]
        others = [m for m in rota["members"] if m not in members]
        if members != [on] or off not in others:
            raise ExpectationFailed(
                f"rota {rota_id} has {', '.join(members) or 'nobody'} on call and "
                f"{', '.join(others) or 'nobody'} off; the demo expects {on} on and {off} off"
            )
        found.append(rota)
    return found
