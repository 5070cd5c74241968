"""GET /figures: the golden-hour figures of the caller's children, per month, as JSON or CSV.

For duty managers, heads of service and national units: how quickly the police were told and
someone acknowledged, how long children were gone, and how many return home interviews were
held within 72 hours. Counted from the `episodes` table and the alerts, scoped as every read of
child data is (`access.figures_scope`).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from starlette.datastructures import State

from goldenhour.contracts.config import GoldenHourConfig, Organisation, OrgKind
from goldenhour.contracts.fields import OrgCode
from goldenhour.contracts.figures import Figures
from goldenhour.reports import figure_store
from goldenhour.reports.figures import to_csv
from goldenhour.services import access
from goldenhour.services.api_schema import error
from goldenhour.services.auth import Caller, authenticate

router = APIRouter()

LONGEST_RANGE = timedelta(days=5 * 366)
"""The widest range one request may count: five collection years."""

EARLIEST = date(2000, 1, 1)


def _invalid(field: str, message: str, kind: str) -> RequestValidationError:
    return RequestValidationError([{"loc": ("query", field), "msg": message, "type": kind}])


def default_range(today: date) -> tuple[date, date]:
    """The twelve months to `today`: from the first of the month eleven months before."""
    month = today.month - 11
    year = today.year + (month - 1) // 12
    return date(year, (month - 1) % 12 + 1, 1), today


def check_range(first: date | None, last: date | None, today: date) -> tuple[date, date]:
    """The range asked for, or the default; `RequestValidationError` naming what is wrong."""
    if first is None:
        first = default_range(today)[0] if last is None else last - timedelta(days=365)
    last = last or today
    if first < EARLIEST:
        raise _invalid("from", "figures start in 2000 at the earliest", "range_start")
    if last < first:
        raise _invalid("to", "to must not be before from", "range_order")
    if last - first > LONGEST_RANGE:
        raise _invalid("to", "a range spans at most five years", "range_length")
    return first, last


def police_forces(config: GoldenHourConfig) -> frozenset[str]:
    return frozenset(o.code for o in config.organisations if o.kind == OrgKind.police)


async def figures_for(
    state: State, org: Organisation, authority: str | None, first: date, last: date
) -> Figures:
    """The figures `org` may see over `[first, last]`; `access.Refusal` if none.

    Shared by the API and the console, so the two cannot count differently.
    """
    config: GoldenHourConfig = state.config
    if authority is not None:
        known = config.org(authority)
        if known is None or known.kind != OrgKind.local_authority:
            raise _invalid("authority", f"{authority} is not a local authority", "authority")
    scope = access.figures_scope(config, org, authority)
    async with state.pool.acquire() as conn, conn.transaction(readonly=True):
        return await figure_store.load_figures(
            conn,
            scope,
            first=first,
            last=last,
            tz=config.tz,
            police=police_forces(config),
            now=datetime.now(UTC),
            authority=authority,
        )


@router.get(
    "/figures",
    response_model=Figures,
    response_model_by_alias=True,
    responses={
        200: {"content": {"text/csv": {}}, "description": "The figures; CSV with format=csv"},
        403: error("The caller's organisation may not see these figures"),
    },
)
async def get_figures(
    request: Request,
    authority: OrgCode | None = Query(
        default=None, description="One local authority; all the caller sees if not given"
    ),
    first: date | None = Query(
        default=None, alias="from", description="First local date counted (episodes begun)"
    ),
    last: date | None = Query(default=None, alias="to", description="Last local date counted"),
    format: Literal["json", "csv"] = Query(default="json"),
    caller: Caller = Depends(authenticate),
) -> Figures | Response:
    """Episodes, children, times from last seen, unacknowledged steps and return interviews,
    per month of the episodes' starts and in total (the last twelve months if not given)."""
    config: GoldenHourConfig = request.app.state.config
    begin, end = check_range(first, last, datetime.now(config.tz).date())
    try:
        found = await figures_for(request.app.state, caller.org, authority, begin, end)
    except access.Refusal as refused:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=str(refused)) from None
    if format == "csv":
        name = f"golden-hour-figures-{authority or caller.org.code}-{begin}-{end}.csv"
        return Response(
            to_csv(found),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    return found
