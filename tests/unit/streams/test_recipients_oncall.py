"""A role with a rota resolves to who is on call when the step fires; without one, or outside
its cover, to every contact of the role, as before rotas."""

from __future__ import annotations

import copy
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml

from goldenhour.contracts.config import GoldenHourConfig
from goldenhour.contracts.oncall import Changes, Override
from goldenhour.streams.recipients import resolver

EXAMPLE = Path(__file__).parents[1] / "contracts" / "design_example.yaml"
LONDON = ZoneInfo("Europe/London")
DM2 = {
    "id": "lbh-dm-2",
    "role": "duty_manager",
    "phone": "+447700900003",
    "email": "d2@lbh.example",
}
ROTA = {
    "id": "lbh-edt",
    "role": "duty_manager",
    "shifts": [{"days": ["mon", "tue", "wed", "thu"], "start": "17:00", "end": "09:00"}],
    "members": ["lbh-duty", "lbh-dm-2"],
    "starts": "2026-11-30T17:00:00Z",
    "fallback": "lbh-head",
}


def config(with_rota: bool) -> GoldenHourConfig:
    raw = copy.deepcopy(yaml.safe_load(EXAMPLE.read_text()))
    lbh = next(o for o in raw["organisations"] if o["code"] == "LBH")
    lbh["contacts"].append(DM2)
    if with_rota:
        lbh["rotas"] = [ROTA]
    return GoldenHourConfig.model_validate(raw)


def paged(cfg: GoldenHourConfig, at: datetime | None, target: str) -> list[str]:
    return [r.contact_id for r in resolver(cfg, "LBH", "OAK", at)(target)]


def test_at_night_only_the_duty_manager_on_duty_is_paged() -> None:
    rota = config(with_rota=True)
    monday = datetime(2026, 11, 30, 22, 0, tzinfo=LONDON)
    tuesday = datetime(2026, 12, 1, 22, 0, tzinfo=LONDON)
    assert paged(rota, monday, "local_authority.duty_manager") == ["lbh-duty"]
    assert paged(rota, tuesday, "local_authority.duty_manager") == ["lbh-dm-2"]
    # The police control room has no rota: paged as before.
    assert paged(rota, monday, "police.control_room") == ["mps-cr"]


def test_outside_the_rotas_cover_or_without_a_rota_every_duty_manager_is_paged() -> None:
    office_hours = datetime(2026, 12, 1, 12, 0, tzinfo=LONDON)
    everyone = ["lbh-duty", "lbh-dm-2"]
    assert paged(config(with_rota=True), office_hours, "local_authority.duty_manager") == everyone
    night = datetime(2026, 11, 30, 22, 0, tzinfo=LONDON)
    assert paged(config(with_rota=False), night, "local_authority.duty_manager") == everyone


def test_a_change_naming_someone_no_longer_in_the_directory_pages_the_fallback() -> None:
    """A cover arranged before a release that took the person out: never nobody."""
    cfg = config(with_rota=True)
    monday = datetime(2026, 11, 30, 22, 0, tzinfo=LONDON)
    cover = Override(
        monday.replace(hour=17), monday.replace(hour=23), "replace", "lbh-duty", "lbh-gone"
    )
    resolve = resolver(cfg, "LBH", "OAK", monday, {"lbh-edt": Changes((cover,))})
    assert [r.contact_id for r in resolve("local_authority.duty_manager")] == ["lbh-head"]
