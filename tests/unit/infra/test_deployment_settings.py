"""The settings a deployment sets: the topic layout, migrate-or-wait, the rotated secrets."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from goldenhour.infra.settings import Settings

BASE = {"GOLDENHOUR_CONFIG": "goldenhour.yaml"}


def settings(**env: str) -> Settings:
    return Settings(**{**BASE, **env})  # type: ignore[arg-type]


def test_the_defaults_keep_the_single_machine_layout():
    s = settings()
    assert (s.topics.partitions, s.topics.replication_factor) == (4, 1)
    assert s.topics.min_insync_replicas is None
    assert s.topics.configs() == {}
    assert s.migrate == "auto"
    assert s.health_host == "127.0.0.1"


def test_a_production_layout_reaches_every_topic():
    s = settings(
        GOLDENHOUR_TOPIC_PARTITIONS="12",
        GOLDENHOUR_TOPIC_REPLICATION_FACTOR="3",
        GOLDENHOUR_TOPIC_MIN_INSYNC_REPLICAS="2",
        GOLDENHOUR_TOPIC_PREFIX="gh",
    )
    assert (s.topics.prefix, s.topics.partitions, s.topics.replication_factor) == ("gh", 12, 3)
    assert s.topics.configs() == {"min.insync.replicas": "2"}


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"GOLDENHOUR_TOPIC_PARTITIONS": "0"}, "GOLDENHOUR_TOPIC_PARTITIONS"),
        ({"GOLDENHOUR_TOPIC_REPLICATION_FACTOR": "0"}, "GOLDENHOUR_TOPIC_REPLICATION_FACTOR"),
        ({"GOLDENHOUR_TOPIC_MIN_INSYNC_REPLICAS": "0"}, "GOLDENHOUR_TOPIC_MIN_INSYNC_REPLICAS"),
        ({"GOLDENHOUR_TOPIC_MIN_INSYNC_REPLICAS": "2"}, "GOLDENHOUR_TOPIC_MIN_INSYNC_REPLICAS"),
        ({"GOLDENHOUR_MIGRATE": "sometimes"}, "GOLDENHOUR_MIGRATE"),
        ({"GOLDENHOUR_SECRET_KEY_PREVIOUS": "short"}, "GOLDENHOUR_SECRET_KEY_PREVIOUS"),
    ],
)
def test_a_bad_setting_is_refused_with_its_variable_named(env, named):
    with pytest.raises(ValidationError, match=named):
        settings(**env)


def test_the_previous_secret_key_reaches_the_ack_links():
    links = settings(
        GOLDENHOUR_SECRET_KEY="n" * 40, GOLDENHOUR_SECRET_KEY_PREVIOUS="p" * 40
    ).ack_links
    assert links is not None
    assert (links.secret, links.previous_secret) == ("n" * 40, "p" * 40)


def test_twilio_tokens_are_the_primary_then_the_secondary_of_a_rotation():
    assert settings(TWILIO_AUTH_TOKEN="a").twilio_auth_tokens == ("a",)
    both = settings(TWILIO_AUTH_TOKEN="a", TWILIO_AUTH_TOKEN_SECONDARY="b")
    assert both.twilio_auth_tokens == ("a", "b")


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"SMTP_USERNAME": "goldenhour"}, "SMTP_USERNAME and SMTP_PASSWORD"),
        ({"SMTP_PASSWORD": "s3cret"}, "SMTP_USERNAME and SMTP_PASSWORD"),
        ({"SMTP_USERNAME": "gh", "SMTP_PASSWORD": "s3cret", "SMTP_TLS": "off"}, "in clear"),
    ],
)
def test_a_mail_login_is_whole_and_never_sent_in_clear(env: dict[str, str], named: str):
    with pytest.raises(ValidationError, match=named):
        settings(**env)


def test_a_line_left_blank_in_the_env_file_is_unset(monkeypatch: pytest.MonkeyPatch):
    """`.env` copied from `.env.example` keeps its optional lines, empty: each must read as
    unset, not as a key too short to start with."""
    for name in ("GOLDENHOUR_SECRET_KEY_PREVIOUS", "GOLDENHOUR_METRICS_TOKEN", "SMTP_USERNAME"):
        monkeypatch.setenv(name, "")
    monkeypatch.setenv("GOLDENHOUR_CONFIG", "goldenhour.yaml")
    s = Settings()  # type: ignore[call-arg]
    assert (s.secret_key_previous, s.metrics_token, s.smtp_username) == (None, None, None)


@pytest.mark.parametrize(
    "name",
    [
        "TWILIO_AUTH_TOKEN_SECONDARY",
        "GOLDENHOUR_SECRET_KEY",
        "GOLDENHOUR_SECRET_KEY_PREVIOUS",
        "GOLDENHOUR_METRICS_TOKEN",
    ],
)
def test_a_secret_of_spaces_is_refused_and_never_printed(name: str):
    """32 spaces pass a length check and would sign links (or accept callbacks) anyone can
    forge; the refusal names the variable and leaves the value out."""
    with pytest.raises(ValidationError, match="only whitespace") as refused:
        settings(**{name: " " * 40})
    assert name in str(refused.value)
    assert "'" + " " * 40 + "'" not in str(refused.value)


def test_a_refusal_never_prints_the_value_of_a_secret():
    with pytest.raises(ValidationError) as refused:
        settings(GOLDENHOUR_SECRET_KEY_PREVIOUS="too-short-but-secret", SMTP_PASSWORD="hunter2")
    assert "too-short-but-secret" not in str(refused.value)
    assert "hunter2" not in str(refused.value)
