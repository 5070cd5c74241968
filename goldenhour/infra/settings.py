"""One settings object per process, built from the environment."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from goldenhour.contracts.config import GoldenHourConfig, load_config
from goldenhour.infra.ack_links import AckLinks
from goldenhour.infra.db import DbLimits
from goldenhour.infra.topics import PARTITIONS, Topics


class Settings(BaseSettings):
    """Golden Hour's environment. Names are the documented environment variables."""

    # An empty variable is an unset one: an `.env` copied from its example with a line left blank
    # must not refuse to start over a key nobody meant to set.
    # A refusal names the variable, never its value: a secret is not printed at start.
    model_config = SettingsConfigDict(
        extra="ignore", frozen=True, env_ignore_empty=True, hide_input_in_errors=True
    )

    config_path: Path = Field(alias="GOLDENHOUR_CONFIG")
    kafka_bootstrap: str | None = Field(default=None, alias="GOLDENHOUR_KAFKA_BOOTSTRAP")
    database_url: str | None = Field(default=None, alias="GOLDENHOUR_DATABASE_URL")
    api_host: str = Field(default="127.0.0.1", alias="GOLDENHOUR_API_HOST")
    api_port: int = Field(default=8000, alias="GOLDENHOUR_API_PORT")
    public_url: str = Field(default="http://127.0.0.1:8000", alias="GOLDENHOUR_PUBLIC_URL")
    topic_prefix: str = Field(default="goldenhour", alias="GOLDENHOUR_TOPIC_PREFIX")
    # The layout every topic is created with, by `goldenhour topics` and by any part that
    # finds one missing. Partitions bound how many replicas of a part share the work.
    topic_partitions: int = Field(default=PARTITIONS, alias="GOLDENHOUR_TOPIC_PARTITIONS", ge=1)
    topic_replication_factor: int = Field(
        default=1, alias="GOLDENHOUR_TOPIC_REPLICATION_FACTOR", ge=1
    )
    # Unset: the broker's default. With acks=all, a write needs this many replicas in sync.
    topic_min_insync_replicas: int | None = Field(
        default=None, alias="GOLDENHOUR_TOPIC_MIN_INSYNC_REPLICAS", ge=1
    )
    # `auto`: each part applies the migrations at start; `wait`: a part never migrates, it
    # waits for the schema a one-shot `goldenhour migrate` brings up to date.
    migrate: Literal["auto", "wait"] = Field(default="auto", alias="GOLDENHOUR_MIGRATE")
    # Seconds a message may sit in `sent` without a status callback before it is re-polled.
    repoll_after_s: float = Field(default=120.0, alias="GOLDENHOUR_REPOLL_AFTER_S")
    # Seconds a send may take before another dispatcher treats its holder as dead.
    send_lease_s: float = Field(default=60.0, alias="GOLDENHOUR_SEND_LEASE_S")
    # How long a consumer's fetch may wait for data. The embedded broker answers a waiting fetch
    # only when this runs out, so it bounds each hop's latency there; real Kafka answers early.
    fetch_max_wait_ms: int = Field(default=10, alias="GOLDENHOUR_FETCH_MAX_WAIT_MS")
    # A new consumer group's first assignment waits for half of it on the embedded broker; real
    # Kafka refuses less than 6 s by default.
    kafka_session_timeout_s: float = Field(default=6.0, alias="GOLDENHOUR_KAFKA_SESSION_TIMEOUT_S")
    log_level: str = Field(default="info", alias="GOLDENHOUR_LOG_LEVEL")
    # Webhook URLs may resolve to loopback/private addresses (tests and the demo only).
    webhook_allow_private: bool = Field(default=False, alias="GOLDENHOUR_WEBHOOK_ALLOW_PRIVATE")
    # Failed webhook attempts in a row after which a subscription is disabled (its owner told).
    webhook_max_failures: int = Field(default=5, alias="GOLDENHOUR_WEBHOOK_MAX_FAILURES", ge=1)

    # Signs the acknowledgement links in emails; the API and the streams worker must share it.
    # Unset, emails carry no link (the SMS reply and the console still acknowledge).
    secret_key: str | None = Field(default=None, alias="GOLDENHOUR_SECRET_KEY", min_length=32)
    # The key being rotated out: links it signed are still accepted, new ones use the new key.
    secret_key_previous: str | None = Field(
        default=None, alias="GOLDENHOUR_SECRET_KEY_PREVIOUS", min_length=32
    )
    ack_link_ttl_s: int = Field(default=24 * 3600, alias="GOLDENHOUR_ACK_LINK_TTL_S", ge=60)
    # Console sign-in: how long a session lasts, and failed sign-ins allowed per 15 minutes.
    session_ttl_s: int = Field(default=12 * 3600, alias="GOLDENHOUR_SESSION_TTL_S", ge=60)
    login_max_failures: int = Field(default=5, alias="GOLDENHOUR_LOGIN_MAX_FAILURES", ge=1)

    # Bounds on every database connection (see infra.db.DbLimits): defaults free a hung
    # worker's locks within seconds.
    db_connect_timeout_s: float = Field(default=5.0, alias="GOLDENHOUR_DB_CONNECT_TIMEOUT_S", gt=0)
    db_command_timeout_s: float = Field(default=15.0, alias="GOLDENHOUR_DB_COMMAND_TIMEOUT_S", gt=0)
    db_statement_timeout_s: float = Field(
        default=10.0, alias="GOLDENHOUR_DB_STATEMENT_TIMEOUT_S", gt=0
    )
    db_idle_in_transaction_s: float = Field(
        default=5.0, alias="GOLDENHOUR_DB_IDLE_IN_TRANSACTION_S", gt=0
    )
    # Connections an API or dispatcher process keeps at most (a streams worker's follow from
    # its claim loops and the children it applies at once).
    db_pool_max: int = Field(default=20, alias="GOLDENHOUR_DB_POOL_MAX", ge=4, le=500)
    # How often a streams worker looks for a rota's handovers to brief and its gaps ahead.
    rota_watch_s: float = Field(default=15.0, alias="GOLDENHOUR_ROTA_WATCH_S", gt=0, le=300)
    # Where `goldenhour run` keeps its embedded database (unset: the user's data directory).
    data_dir: Path | None = Field(default=None, alias="GOLDENHOUR_DATA_DIR")
    # Workers (streams, dispatcher) serve /healthz, /readyz and /metrics on this port when set.
    # On the API, they are then served there only, and the public port's /metrics answers 404.
    health_port: int | None = Field(default=None, alias="GOLDENHOUR_HEALTH_PORT")
    # Where that health server listens (0.0.0.0 in a container, for the kubelet's probes).
    health_host: str = Field(default="127.0.0.1", alias="GOLDENHOUR_HEALTH_HOST")
    # Parts the API's /readyz also requires to hold their partitions (`run` sets both).
    ready_requires: str = Field(default="", alias="GOLDENHOUR_READY_REQUIRES")

    # Twilio may be switched off only explicitly: with it on, an empty TWILIO_AUTH_TOKEN would
    # let anyone sign a callback, so every part refuses to start (see `require_twilio`).
    twilio_enabled: bool = Field(default=True, alias="GOLDENHOUR_TWILIO_ENABLED")
    twilio_account_sid: str = Field(default="", alias="TWILIO_ACCOUNT_SID")
    twilio_auth_token: str = Field(default="", alias="TWILIO_AUTH_TOKEN")
    # During a rotation, callbacks signed with this token are accepted too (Twilio signs with
    # the account's primary token; promoting the secondary changes which one that is).
    twilio_auth_token_secondary: str = Field(default="", alias="TWILIO_AUTH_TOKEN_SECONDARY")
    twilio_from_number: str = Field(default="", alias="TWILIO_FROM_NUMBER")
    twilio_api_base_url: str | None = Field(default=None, alias="TWILIO_API_BASE_URL")
    smtp_host: str = Field(default="127.0.0.1", alias="SMTP_HOST")
    smtp_port: int = Field(default=25, alias="SMTP_PORT")
    smtp_from: str = Field(default="goldenhour@localhost", alias="SMTP_FROM")
    # The account Golden Hour logs in to the mail server with (unset: no login, the server
    # accepts the dispatchers by their address). Only ever sent over TLS.
    smtp_username: str | None = Field(default=None, alias="SMTP_USERNAME")
    smtp_password: str | None = Field(default=None, alias="SMTP_PASSWORD")
    # `starttls` (required, the default), `tls` (implicit TLS, port 465) or `off` (a local relay
    # only): mail carries child data and is never sent in clear by accident.
    smtp_tls: Literal["starttls", "tls", "off"] = Field(default="starttls", alias="SMTP_TLS")
    # A CA bundle to verify the SMTP server's certificate with (unset: the system's).
    smtp_ca_file: Path | None = Field(default=None, alias="SMTP_CA_FILE")

    # Addresses (IPs or CIDRs, comma-separated) of reverse proxies whose X-Forwarded-For is
    # believed; from anyone else the header is ignored and the peer address counts.
    trusted_proxies: str = Field(default="", alias="GOLDENHOUR_TRUSTED_PROXIES")
    # /metrics answers only with `Authorization: Bearer <this>`; unset, /metrics is not served.
    metrics_token: str | None = Field(default=None, alias="GOLDENHOUR_METRICS_TOKEN", min_length=16)
    # During a rotation of the metrics token, the old one, still accepted until every
    # scraper has the new one.
    metrics_token_previous: str | None = Field(
        default=None, alias="GOLDENHOUR_METRICS_TOKEN_PREVIOUS", min_length=16
    )
    # Requests per API key (a `limits` rate string, e.g. "50/second"); "off" for none.
    api_rate_limit: str = Field(default="50/second", alias="GOLDENHOUR_API_RATE_LIMIT")
    # The largest request body any route reads; larger ones are refused before they are read.
    max_body_bytes: int = Field(default=64 * 1024, alias="GOLDENHOUR_MAX_BODY_BYTES", ge=1024)

    # (A blank TWILIO_AUTH_TOKEN is refused by `require_twilio`, where Twilio is switched on.)
    @field_validator(
        "twilio_auth_token_secondary",
        "secret_key",
        "secret_key_previous",
        "metrics_token",
        "metrics_token_previous",
        "smtp_password",
    )
    @classmethod
    def _not_blank(cls, value: str | None) -> str | None:
        # Spaces pass a length check, and a key anyone can type signs nothing: a blank Twilio
        # token would accept any callback signed with it.
        if value and not value.strip():
            raise ValueError("is only whitespace: set a real secret, or leave it unset")
        return value

    @model_validator(mode="after")
    def _smtp_login_whole(self) -> Settings:
        if (self.smtp_username is None) != (self.smtp_password is None):
            raise ValueError("SMTP_USERNAME and SMTP_PASSWORD are set together, or neither")
        if self.smtp_username is not None and self.smtp_tls == "off":
            raise ValueError("SMTP_USERNAME with SMTP_TLS=off would send the password in clear")
        return self

    @model_validator(mode="after")
    def _min_insync_within_replicas(self) -> Settings:
        wanted, replicas = self.topic_min_insync_replicas, self.topic_replication_factor
        if wanted is not None and wanted > replicas:
            raise ValueError(
                f"GOLDENHOUR_TOPIC_MIN_INSYNC_REPLICAS ({wanted}) is more than"
                f" GOLDENHOUR_TOPIC_REPLICATION_FACTOR ({replicas}): no write could ever succeed"
            )
        return self

    @cached_property
    def config(self) -> GoldenHourConfig:
        """The validated directory and policies (refused at start when invalid)."""
        return load_config(self.config_path)

    @cached_property
    def ack_links(self) -> AckLinks | None:
        """The email acknowledgement links, when a secret key is set."""
        if not self.secret_key:
            return None
        return AckLinks(
            self.secret_key, self.public_url, self.ack_link_ttl_s, self.secret_key_previous
        )

    @property
    def topics(self) -> Topics:
        """The topic names and the layout they are created with."""
        return Topics(
            self.topic_prefix,
            self.topic_partitions,
            self.topic_replication_factor,
            self.topic_min_insync_replicas,
        )

    @property
    def twilio_auth_tokens(self) -> tuple[str, ...]:
        """Every token a Twilio callback's signature may be made with, primary first."""
        return tuple(t for t in (self.twilio_auth_token, self.twilio_auth_token_secondary) if t)

    @property
    def metrics_tokens(self) -> tuple[str, ...]:
        """Every token /metrics accepts, the current one first; none without a current one."""
        if not self.metrics_token:
            return ()
        return tuple(t for t in (self.metrics_token, self.metrics_token_previous) if t)

    @property
    def db_limits(self) -> DbLimits:
        """The bounds every pool and dedicated connection of this process uses."""
        return DbLimits(
            connect_timeout_s=self.db_connect_timeout_s,
            command_timeout_s=self.db_command_timeout_s,
            statement_timeout_s=self.db_statement_timeout_s,
            idle_in_transaction_s=self.db_idle_in_transaction_s,
        )

    @property
    def twilio_ready(self) -> bool:
        """Twilio is switched on and has every credential (so its signatures mean something)."""
        return self.twilio_enabled and all(
            (self.twilio_account_sid, self.twilio_auth_token, self.twilio_from_number)
        )

    def require_twilio(self) -> None:
        """Refuse to start a part that talks to Twilio with a credential missing, naming it,
        unless Twilio is switched off explicitly (GOLDENHOUR_TWILIO_ENABLED=false)."""
        if not self.twilio_enabled:
            return
        missing = [
            name
            for name, value in (
                ("TWILIO_ACCOUNT_SID", self.twilio_account_sid),
                ("TWILIO_AUTH_TOKEN", self.twilio_auth_token),
                ("TWILIO_FROM_NUMBER", self.twilio_from_number),
            )
            if not value.strip()
        ]
        if missing:
            raise SystemExit(
                f"goldenhour: {', '.join(missing)} is empty: an empty auth token would let anyone"
                " sign a Twilio callback. Set it, or set GOLDENHOUR_TWILIO_ENABLED=false to run"
                " without SMS and voice."
            )

    def require_servers(self) -> tuple[str, str]:
        """Kafka and Postgres addresses, for the parts that never start the embedded stack."""
        kafka, database = self.kafka_bootstrap, self.database_url
        if not kafka or not database:
            missing = [
                name
                for name, value in (
                    ("GOLDENHOUR_KAFKA_BOOTSTRAP", kafka),
                    ("GOLDENHOUR_DATABASE_URL", database),
                )
                if not value
            ]
            raise SystemExit(f"{', '.join(missing)} is not set (or use `goldenhour run`)")
        return kafka, database
