"""The access rules the matrix test checks the running system against: the people, the
children, one expected answer per route and person, the events that contradict the record, and
the directory and alerts of the world they are checked in."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from goldenhour.contracts.config import hash_api_key
from goldenhour.dev.devsystem import DevSystem
from goldenhour.dev.london import IDENTIFIED, directory, event, placement
from goldenhour.dev.waiting import eventually
from tests.e2e.helpers import fetchval

# --- who ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Who:
    user: str
    org: str
    kind: str
    role: str


PEOPLE = [
    Who("oak-staff1", "OAK", "care_home", "care_staff"),
    Who("lbh-sw1", "LBH", "local_authority", "social_worker"),
    Who("lbh-dm1", "LBH", "local_authority", "duty_manager"),
    Who("lbh-head1", "LBH", "local_authority", "head_of_service"),
    Who("lbh-admin1", "LBH", "local_authority", "admin"),
    Who("lbi-dm1", "LBI", "local_authority", "duty_manager"),
    Who("mps-po1", "MPS", "police", "police_officer"),
    Who("mps-cr1", "MPS", "police", "control_room"),
    Who("ukmpu-1", "UKMPU", "national", "duty_manager"),
    Who("ngo-admin1", "NGO1", "ngo", "admin"),
]
HOIE = Who("hoie-1", "HOIE", "immigration_enforcement", "admin")

# The children: Hackney's at Oak, Islington's (Hackney's neighbour) at Elm, and Camden's (nobody's
# neighbour) at Ash. "Own", "neighbour's" and "stranger's" follow from who is asking.
CHILDREN = {
    "LBH-2026-7001": ("LBH", "OAK"),
    "LBI-2026-7002": ("LBI", "ELM"),
    "LBC-2026-7003": ("LBC", "ASH"),
}
POLICE = {"LBH": "MPS", "LBI": "MPS", "LBC": "MPS"}
NEIGHBOURS = {"LBH": ["LBI"], "LBI": ["LBH"], "LBC": []}


def sees(who: Who, child: str) -> bool:
    """DESIGN.md's rule: the child's authority, its police, its care home, and national units."""
    la, home = CHILDREN[child]
    return who.kind == "national" or who.org in {la, POLICE[la], home}


def manager(who: Who) -> bool:
    return who.role in {"duty_manager", "admin"}


# --- the table ------------------------------------------------------------------------------

Rule = Callable[[Who, str], int]

ANYONE_200: Rule = lambda who, child: 200  # noqa: E731
# Reads of one child's data: the same 404 for another's child as for none, since its existence
# is itself child data.
SEEN_OR_404: Rule = lambda who, child: 200 if sees(who, child) else 404  # noqa: E731
# The console says plainly that a case belongs to another agency, and shows nothing of it.
SEEN_OR_403_PAGE: Rule = lambda who, child: 200 if sees(who, child) else 403  # noqa: E731


def submit_checkin(who: Who, child: str) -> int:
    """A check-in for the child's current placement: its home, or an agency acting for it."""
    la, home = CHILDREN[child]
    if who.kind == "care_home":
        return 202 if who.org == home else 403
    return 202 if sees(who, child) and who.kind != "ngo" else 403


def subscribe_to_hackney(who: Who, child: str) -> int:
    """Only a manager of an authority Hackney lists as a neighbour; Hackney itself is told
    that subscribing to itself is not a thing (422)."""
    if not manager(who):
        return 403
    if who.org == "LBH":
        return 422
    return 201 if who.org in NEIGHBOURS["LBH"] else 403


def escalate(who: Who, child: str) -> int:
    """Authorities, police and national units fire the next step; a care home reports."""
    if not sees(who, child):
        return 403
    return 303 if who.kind in {"local_authority", "police", "national"} else 403


def care_form_page(who: Who, child: str) -> int:
    return 200 if who.kind == "care_home" else 403


def care_checkin_form(who: Who, child: str) -> int:
    """The form takes the placement from the home's own records: another home's child has no
    placement here, so the check-in is refused as incomplete and nothing is written."""
    if who.kind != "care_home":
        return 403
    return 303 if CHILDREN[child][1] == who.org else 422


def rota_read(who: Who, child: str) -> int:
    """Hackney's rota: any of Hackney's users reads it; to anyone else it does not exist."""
    return 200 if who.org == "LBH" else 404


def rota_change(done: int) -> Rule:
    """Changing Hackney's rota: its duty managers and admins get `done`, its other users 403,
    anyone else the same 404 as for no rota."""
    return lambda who, child: 404 if who.org != "LBH" else done if manager(who) else 403


def rota_page(who: Who, child: str) -> int:
    """Hackney's rota page: any of Hackney's users reads it; anyone else is told it belongs to
    another agency, as for another agency's case."""
    return 200 if who.org == "LBH" else 403


def rota_page_change(done: int) -> Rule:
    """A rota page's form: Hackney's duty managers and admins get `done`, everyone else 403."""
    return lambda who, child: done if who.org == "LBH" and manager(who) else 403


def figures_read(who: Who, child: str) -> int:
    """The golden-hour figures: whoever acts for children reads those it may see (an authority
    its own, police those it covers, a care home its own children's, national units all); an
    NGO acts for none."""
    return 403 if who.kind == "ngo" else 200


# (method, path) -> (how the request is made, the rule). Console paths are called signed in.
API = "api"  # with the caller's bearer key
PAGE = "page"  # with the caller's console session and its CSRF token
BARE = "bare"  # credentials ignored: the same answer for everyone

MATRIX: dict[tuple[str, str], tuple[str, Rule]] = {
    # The API: every read and write about a child follows `sees`.
    ("POST", "/api/v1/events"): (API, submit_checkin),
    ("GET", "/api/v1/alerts"): (API, ANYONE_200),  # a list, filtered to what the caller sees
    ("GET", "/api/v1/alerts/{alert_id}"): (API, SEEN_OR_404),
    ("POST", "/api/v1/alerts/{alert_id}/ack"): (API, SEEN_OR_404),
    ("GET", "/api/v1/children/{child_id}"): (API, SEEN_OR_404),
    # Subscriptions are the caller's organisation's own, and obey the neighbour rule.
    ("GET", "/api/v1/subscriptions"): (API, ANYONE_200),
    ("POST", "/api/v1/subscriptions"): (API, subscribe_to_hackney),
    (
        "DELETE",
        "/api/v1/subscriptions/{subscription_id}",
    ): (API, lambda who, child: 404 if manager(who) else 403),
    # Rotas are their organisation's own: who is on, and the changes its managers make. A
    # swap for a shift that does not start then is 422; an unknown change is 404.
    ("GET", "/api/v1/rotas"): (API, ANYONE_200),
    ("GET", "/api/v1/rotas/{rota_id}/oncall"): (API, rota_read),
    ("GET", "/api/v1/rotas/{rota_id}/shifts"): (API, rota_read),
    ("GET", "/api/v1/rotas/{rota_id}/overrides"): (API, rota_read),
    ("POST", "/api/v1/rotas/{rota_id}/overrides"): (API, rota_change(201)),
    ("DELETE", "/api/v1/rotas/{rota_id}/overrides/{change_id}"): (API, rota_change(404)),
    ("POST", "/api/v1/rotas/{rota_id}/swaps"): (API, rota_change(422)),
    ("POST", "/api/v1/rotas/{rota_id}/swaps/{change_id}/take"): (API, rota_change(404)),
    ("POST", "/api/v1/rotas/{rota_id}/temporary"): (API, rota_change(201)),
    ("GET", "/api/v1/figures"): (API, figures_read),
    # The shared feed is filtered to the sources that list the caller; an unknown id is 404.
    ("GET", "/api/v1/shared-alerts.atom"): (API, ANYONE_200),
    ("GET", "/api/v1/shared-alerts/{shared_id}.cap"): (API, lambda who, child: 404),
    # Twilio's callbacks: a key is no signature.
    ("POST", "/api/v1/webhooks/twilio/status"): (API, lambda who, child: 403),
    ("POST", "/api/v1/webhooks/twilio/inbound"): (API, lambda who, child: 403),
    ("POST", "/api/v1/webhooks/twilio/voice"): (API, lambda who, child: 403),
    ("POST", "/api/v1/webhooks/twilio/voice/keypad"): (API, lambda who, child: 403),
    ("POST", "/api/v1/webhooks/twilio/voice/status"): (API, lambda who, child: 403),
    # Probes and the schema hold no child data.
    ("GET", "/healthz"): (BARE, ANYONE_200),
    ("GET", "/readyz"): (BARE, ANYONE_200),
    # /metrics is for the holder of the metrics token: a user's API key is not it.
    ("GET", "/metrics"): (API, lambda who, child: 401),
    ("GET", "/openapi.json"): (BARE, ANYONE_200),
    ("GET", "/docs"): (BARE, ANYONE_200),
    ("GET", "/docs/oauth2-redirect"): (BARE, ANYONE_200),
    ("GET", "/redoc"): (BARE, ANYONE_200),
    ("GET", "/"): (BARE, lambda who, child: 303),
    # The console, signed in with the user's own key.
    ("GET", "/console/login"): (PAGE, lambda who, child: 303),  # signed in: off home
    ("POST", "/console/login"): (BARE, lambda who, child: 303),  # signing in with the key
    ("POST", "/console/logout"): (PAGE, lambda who, child: 303),  # run last
    ("GET", "/console"): (PAGE, ANYONE_200),  # the board, filtered to what the user sees
    ("GET", "/console/board/rows"): (PAGE, ANYONE_200),
    ("GET", "/console/board/events"): (PAGE, ANYONE_200),
    ("GET", "/console/alerts/{alert_id}"): (PAGE, SEEN_OR_403_PAGE),
    ("GET", "/console/alerts/{alert_id}/timeline"): (PAGE, SEEN_OR_403_PAGE),
    ("POST", "/console/alerts/{alert_id}/ack"): (
        PAGE,
        lambda who, child: 303 if sees(who, child) else 403,
    ),
    ("POST", "/console/alerts/{alert_id}/escalate"): (PAGE, escalate),
    # Sent with a status the form does not offer: an agency acting for the child is told what
    # is wrong (422), anyone else is refused before the form is read (403).
    ("POST", "/console/alerts/{alert_id}/located"): (
        PAGE,
        lambda who, child: 422 if sees(who, child) else 403,
    ),
    # The rota page; the matrix posts its forms empty: an override, swap or temporary schedule
    # form without its fields is told what is missing (422); taking or withdrawing an unknown
    # change is 404.
    ("GET", "/console/rotas/{rota_id}"): (PAGE, rota_page),
    ("POST", "/console/rotas/{rota_id}/overrides"): (PAGE, rota_page_change(422)),
    ("POST", "/console/rotas/{rota_id}/overrides/{change_id}/withdraw"): (
        PAGE,
        rota_page_change(404),
    ),
    ("POST", "/console/rotas/{rota_id}/swaps"): (PAGE, rota_page_change(422)),
    ("POST", "/console/rotas/{rota_id}/swaps/{change_id}/take"): (PAGE, rota_page_change(404)),
    ("POST", "/console/rotas/{rota_id}/temporary"): (PAGE, rota_page_change(422)),
    ("GET", "/console/figures"): (PAGE, figures_read),
    ("GET", "/console/figures.csv"): (PAGE, figures_read),
    ("GET", "/console/care"): (PAGE, care_form_page),
    ("POST", "/console/care/{kind}"): (PAGE, care_checkin_form),
    # An acknowledgement link is its own credential: a forged one is gone for everyone.
    ("GET", "/ack/{token}"): (PAGE, lambda who, child: 410),
    ("POST", "/ack/{token}"): (PAGE, lambda who, child: 410),
}

# What an immigration-enforcement key or session gets wherever it is presented: nothing.
# API routes refuse the key (403); a console session for such a user is no session (off to
# sign in, 303); signing in with its key is refused like a wrong key (401); the sign-in page
# and a forged acknowledgement link answer as they answer anyone.
FIREWALL_PAGE_STATUS = {
    ("GET", "/console/login"): 200,
    ("POST", "/console/login"): 401,
    ("GET", "/ack/{token}"): 410,
    ("POST", "/ack/{token}"): 410,
}

# --- the system -----------------------------------------------------------------------------


def _org_users(config: dict, code: str) -> list[dict]:
    org = next(o for o in config["organisations"] if o["code"] == code)
    return org.setdefault("users", [])


def matrix_directory() -> tuple[dict, dict]:
    """The dev directory with every role the matrix asks, an NGO, and Camden with Ash House."""
    config, keys = directory()
    config["organisations"] += [
        {
            "code": "LBC",
            "kind": "local_authority",
            "name": "Camden Children's Services",
            "police": "MPS",
            "neighbours": [],
            "contacts": [],
        },
        {"code": "ASH", "kind": "care_home", "name": "Ash House", "local_authority": "LBC"},
        {"code": "NGO1", "kind": "ngo", "name": "A Charity"},
    ]
    for who in PEOPLE:
        if who.user in keys:
            continue
        keys[who.user] = f"gh_{uuid.uuid4().hex}"
        _org_users(config, who.org).append(
            {"id": who.user, "roles": [who.role], "api_key_sha256": hash_api_key(keys[who.user])}
        )
    keys["ash-staff1"] = f"gh_{uuid.uuid4().hex}"
    _org_users(config, "ASH").append(
        {
            "id": "ash-staff1",
            "roles": ["care_staff"],
            "api_key_sha256": hash_api_key(keys["ash-staff1"]),
        }
    )
    return config, keys


async def raise_alert(system: DevSystem, child: str) -> uuid.UUID:
    la, home = CHILDREN[child]
    staff = {"OAK": "oak-staff1", "ELM": "elm-staff1", "ASH": "ash-staff1"}[home]
    authority = {"LBH": "lbh-dm1", "LBI": "lbi-dm1", "LBC": "ukmpu-1"}[la]
    async with system.client(authority) as c:
        r = await c.post(
            "/events",
            json=event("child.identified", child, {**IDENTIFIED, "local_authority": la}),
        )
        assert r.status_code == 202, r.text
        r = await c.post("/events", json=event("placement.started", child, placement(child, home)))
        assert r.status_code == 202, r.text
    async with system.client(staff) as c:
        r = await c.post(
            "/events",
            json=event(
                "absence.reported",
                child,
                {
                    "last_seen_at": datetime.now(UTC).isoformat(),
                    "last_seen_location": "the bus stop",
                    "placement_id": f"{child}-P1",
                },
            ),
        )
        assert r.status_code == 202, r.text
    sql = "SELECT alert_id FROM alerts WHERE child_id = $1"
    return await eventually(lambda: fetchval(system, sql, child), 10, f"an alert for {child}")


# --- events that contradict the record ------------------------------------------------------


def identify_again(who: Who, child: str) -> int:
    """A second identification never moves a child or resets its risk: 409 for whoever may
    identify for the child's authority (an authority for itself, its police force, national
    units); everyone else is refused before the record is looked at, so nobody learns whether
    another authority's case reference exists. An NGO identifies only under references of its
    own (`LBH-NGO1-…`), so the authority's are not its to ask about."""
    la = CHILDREN[child][0]
    may_identify = (
        (who.kind == "local_authority" and who.org == la)
        or (who.kind == "police" and POLICE[la] == who.org)
        or who.kind == "national"
    )
    return 409 if may_identify else 403


def take_a_placement(who: Who, child: str) -> int:
    """Placing the child under another child's placement id: a placement belongs to one child.
    Only the child's own authority or a national unit gets as far as the conflict."""
    if who.kind in {"local_authority", "national"} and sees(who, child):
        return 409
    return 403


def _someone_elses_placement(child: str) -> str:
    others = [c for c in CHILDREN if c != child]
    return f"{others[0]}-P1"


EVENTS: dict[str, tuple[Callable[[str], dict], Rule]] = {
    "child.identified again": (
        lambda child: event(
            "child.identified",
            child,
            {**IDENTIFIED, "local_authority": CHILDREN[child][0], "risk_level": "low"},
        ),
        identify_again,
    ),
    "placement.started with another child's placement": (
        lambda child: event(
            "placement.started",
            child,
            {
                **placement(child, CHILDREN[child][1]),
                "placement_id": _someone_elses_placement(child),
            },
        ),
        take_a_placement,
    ),
}
