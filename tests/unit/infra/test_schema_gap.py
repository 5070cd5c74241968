"""A part in `wait` mode starts only once the schema has every migration it expects."""

from __future__ import annotations

from goldenhour.infra.db import expected_versions, schema_gap

EXPECTED = ["0001_init", "0002_outbox", "0003_acks"]


def test_an_empty_database_lacks_every_migration():
    assert schema_gap(set(), EXPECTED) == EXPECTED


def test_a_database_part_way_lacks_the_rest_in_order():
    assert schema_gap({"0001_init"}, EXPECTED) == ["0002_outbox", "0003_acks"]


def test_a_database_ahead_of_the_code_has_no_gap():
    # A newer release migrated first during a rolling upgrade: the old parts still run.
    assert schema_gap({*EXPECTED, "0004_newer"}, EXPECTED) == []


def test_the_code_expects_its_own_migrations_in_order():
    versions = expected_versions()
    assert versions == sorted(versions)
    assert versions[0].startswith("0001_")
