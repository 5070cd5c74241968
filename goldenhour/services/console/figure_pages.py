"""The figures page: the golden-hour figures of the user's children over a range of dates, as
three charts each with its numbers as a table beneath, a summary of the whole range, and the
same figures as CSV.

Counted by `figures_api.figures_for` and ranged by `figures_api.check_range`, as the API counts
and ranges them, so the two cannot disagree. An organisation acting for no child (immigration
enforcement, an NGO), or another authority's figures asked for, is answered as the console
answers for another agency's case: 403, saying so. A bad date or an unknown authority shows the
form again with the reason beside the field (422).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup

from goldenhour.contracts.config import GoldenHourConfig, Organisation, OrgKind
from goldenhour.contracts.figures import Figures
from goldenhour.reports.figures import to_csv
from goldenhour.services import access
from goldenhour.services.console import charts
from goldenhour.services.console.sessions import ConsoleUser
from goldenhour.services.console.web import SECURITY_HEADERS, PageError, render, signed_in
from goldenhour.services.figures_api import check_range, figures_for

# Relative: app.py includes it under /console, as the rota pages.
router = APIRouter()

NONE = "—"
"""What a figure nothing reached shows: a median of no episodes is no number, not a zero."""


@dataclass(frozen=True)
class Choice:
    """What the form offers: the authorities the user may pick (value, name), or one fixed."""

    options: list[tuple[str, str]]
    fixed: str = ""


class FormProblems(Exception):
    """The form as sent cannot be counted: a sentence per field at fault."""

    def __init__(self, problems: dict[str, str]) -> None:
        self.problems = problems


def hours_minutes(minutes: float | None) -> str:
    """Minutes as `h:mm` (`0:07`, `26:30`), to the nearest minute; `—` for none."""
    if minutes is None:
        return NONE
    whole = int(minutes + 0.5)
    return f"{whole // 60}:{whole % 60:02d}"


def day(d: date) -> str:
    """A date as the page says it: `1 Apr 2026`."""
    return f"{d.day} {d:%b %Y}"


def number(value: float | None, suffix: str = "") -> str:
    """A count or ratio as the tables show it (`1.5`, `63%`); `—` for none."""
    return NONE if value is None else f"{value:g}{suffix}"


def _name(config: GoldenHourConfig, code: str) -> str:
    found = config.org(code)
    return (found.name or found.code) if found else code


def choice(config: GoldenHourConfig, org: Organisation) -> Choice:
    """The authorities `org` may choose between, as `access.figures_scope` lets it see them."""
    las = [o for o in config.organisations if o.kind == OrgKind.local_authority]
    if org.kind == OrgKind.local_authority:
        return Choice([(org.code, org.name or org.code)], fixed=org.code)
    if org.kind == OrgKind.care_home:
        return Choice([("", f"Children placed with {org.name or org.code}")], fixed="")
    if org.kind == OrgKind.police:
        covered = set(access.policed_by(config, org))
        every = f"Every authority {org.name or org.code} covers"
        return Choice(
            [("", every), *((o.code, o.name or o.code) for o in las if o.code in covered)]
        )
    return Choice([("", "Every authority"), *((o.code, o.name or o.code) for o in las)])


def _date(value: str, field: str, problems: dict[str, str]) -> date | None:
    if not value.strip():
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        said = value[:40]
        problems[field] = f"“{said}” is not a date: give it as year-month-day, like 2026-04-01."
        return None


def _problems(exc: RequestValidationError) -> dict[str, str]:
    """The API's refusal of a range or an authority, as a sentence beside the form's field."""
    out: dict[str, str] = {}
    for e in exc.errors():
        message = str(e["msg"])
        out[str(e["loc"][-1])] = message[:1].upper() + message[1:] + "."
    return out


def _refused(config: GoldenHourConfig, org: Organisation, authority: str | None) -> PageError:
    try:
        access.figures_scope(config, org, None)
    except access.Refusal:
        return PageError(
            status.HTTP_403_FORBIDDEN,
            f"{org.name or org.code} acts for no child, so it has no figures to see.",
        )
    return PageError(
        status.HTTP_403_FORBIDDEN,
        f"The figures of {_name(config, authority or '')} belong to another agency; "
        "you cannot open them.",
    )


async def _count(
    request: Request, user: ConsoleUser, form: dict[str, str]
) -> tuple[Figures, dict[str, str]]:
    """The figures the form asks for, and the form as counted (the range filled in); raises
    FormProblems for a bad date, range or authority and PageError for figures not the user's."""
    config: GoldenHourConfig = request.app.state.config
    org = user.caller.org
    problems: dict[str, str] = {}
    first, last = _date(form["from"], "from", problems), _date(form["to"], "to", problems)
    if problems:
        raise FormProblems(problems)
    authority = form["authority"].strip() or choice(config, org).fixed or None
    try:
        begin, end = check_range(first, last, datetime.now(config.tz).date())
        found = await figures_for(request.app.state, org, authority, begin, end)
    except RequestValidationError as exc:
        raise FormProblems(_problems(exc)) from None
    except access.Refusal:
        raise _refused(config, org, authority) from None
    return found, {"authority": authority or "", "from": str(begin), "to": str(end)}


def _refusal_first(request: Request, user: ConsoleUser) -> None:
    """An organisation with no figures at all is refused before its form is read."""
    try:
        access.figures_scope(request.app.state.config, user.caller.org, None)
    except access.Refusal:
        raise _refused(request.app.state.config, user.caller.org, None) from None


def _form(authority: str, first: str, last: str) -> dict[str, str]:
    return {"authority": authority, "from": first, "to": last}


def _heading(config: GoldenHourConfig, org: Organisation, authority: str) -> str:
    if authority:
        return _name(config, authority)
    return next(label for value, label in choice(config, org).options if value == "")


@router.get("/figures", response_class=HTMLResponse)
async def figures_page(
    request: Request,
    authority: str = "",
    first: str = Query("", alias="from"),
    last: str = Query("", alias="to"),
    user: ConsoleUser = Depends(signed_in),
) -> Response:
    """The figures of the chosen authority (or all the user may see) over the chosen range."""
    _refusal_first(request, user)
    config: GoldenHourConfig = request.app.state.config
    form = _form(authority, first, last)
    try:
        found, counted = await _count(request, user, form)
    except FormProblems as exc:
        return render(
            request,
            "figures.html",
            user,
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            figures=None,
            choice=choice(config, user.caller.org),
            form=form,
            problems=exc.problems,
        )
    drawn = charts.charts(found)
    response = render(
        request,
        "figures.html",
        user,
        figures=found,
        choice=choice(config, user.caller.org),
        form=counted,
        problems={},
        heading=_heading(config, user.caller.org, counted["authority"]),
        # Drawn here from numbers, every text in them escaped by the XML writer.
        charts={c.key: Markup(c.svg) for c in drawn},
        bands=charts.band_labels(found.time_to_first_ack),
        month=charts.month_label,
        hm=hours_minutes,
        day=day,
        num=number,
        csv_url="/console/figures.csv?" + urlencode(counted),
    )
    # The charts' own <style>s, by their hashes; scripts stay this console's own files only.
    styles = " ".join(charts.style_sources(c.svg for c in drawn))
    policy = SECURITY_HEADERS["Content-Security-Policy"]
    response.headers["Content-Security-Policy"] = f"{policy}; style-src 'self' {styles}"
    return response


@router.get("/figures.csv")
async def figures_csv(
    request: Request,
    authority: str = "",
    first: str = Query("", alias="from"),
    last: str = Query("", alias="to"),
    user: ConsoleUser = Depends(signed_in),
) -> Response:
    """The same figures as `GET /api/v1/figures?format=csv`, for the signed-in user."""
    _refusal_first(request, user)
    try:
        found, counted = await _count(request, user, _form(authority, first, last))
    except FormProblems as exc:
        raise PageError(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            " ".join(exc.problems.values()) + " Go back to the figures page and correct the form.",
        ) from None
    name = f"golden-hour-figures-{counted['authority'] or user.caller.org.code}-"
    name += f"{counted['from']}-{counted['to']}.csv"
    return Response(
        to_csv(found),
        media_type="text/csv; charset=utf-8",
        headers={**SECURITY_HEADERS, "Content-Disposition": f'attachment; filename="{name}"'},
    )
