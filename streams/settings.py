"""Configuration enters once: the only reader of the environment.

Each field names its environment variable. The CLI builds one :class:`Settings` (from the
environment, then its options on top) and hands plain values to the rest of the package.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from streams.errors import ConfigurationError

INPUT_KINDS = ("incidents", "missing-reports", "referrals")


@dataclass(frozen=True, slots=True)
class Topics:
    """The topics of SPEC section 2 under one prefix, which namespaces a whole run."""

    prefix: str = "safeguarding."

    @property
    def incidents(self) -> str:
        return f"{self.prefix}incidents"

    @property
    def missing_reports(self) -> str:
        return f"{self.prefix}missing-reports"

    @property
    def referrals(self) -> str:
        return f"{self.prefix}referrals"

    @property
    def alerts(self) -> str:
        return f"{self.prefix}alerts"

    @property
    def alert_actions(self) -> str:
        return f"{self.prefix}alert-actions"

    @property
    def dead_letters(self) -> str:
        return f"{self.prefix}dead-letters"

    @property
    def by_child(self) -> str:
        """Internal: every input event re-keyed by child, plus clock ticks, co-partitioned."""
        return f"{self.prefix}by-child"

    @property
    def control(self) -> str:
        """Internal: a partition's detector says here that it finished a replay."""
        return f"{self.prefix}control"

    @property
    def inputs(self) -> dict[str, str]:
        """Event kind (``incident``, ``missing_report``, ``referral``) -> topic."""
        return {
            "incident": self.incidents,
            "missing_report": self.missing_reports,
            "referral": self.referrals,
        }


def _env(name: str, default: str) -> Any:
    return field(default=default, metadata={"env": name})


@dataclass(frozen=True, slots=True)
class Settings:
    bootstrap: str = _env("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    """Kafka bootstrap servers, ``host:port[,host:port]``."""
    topic_prefix: str = _env("SAFEGUARDING_TOPIC_PREFIX", "safeguarding.")
    partitions: int = _env("SAFEGUARDING_PARTITIONS", "4")  # type: ignore[assignment]
    """Partitions of the input and per-child topics (the unit of parallelism)."""
    lateness_ms: int = _env("SAFEGUARDING_LATENESS_MS", "120000")  # type: ignore[assignment]  # 2 min
    max_ahead_ms: int = _env("SAFEGUARDING_MAX_AHEAD_MS", "86400000")  # type: ignore[assignment]  # 1 day
    """Live mode: an event more than this ahead of the wall clock is invalid (SPEC section 3)."""
    mode: str = _env("SAFEGUARDING_MODE", "live")
    """``live`` (the wall clock also advances the clock) or ``replay``."""
    tick_interval_s: float = _env("SAFEGUARDING_TICK_INTERVAL_S", "1.0")  # type: ignore[assignment]
    """Live mode: how often the wall-clock tick is published into every partition."""
    save_interval_s: float | None = _env("SAFEGUARDING_SAVE_INTERVAL_S", "")  # type: ignore[assignment]
    """How often a worker writes the changed cases to its table's changelog and commits what it
    applied (a crash costs applying that much again); empty for the mode's default."""
    hub_host: str = _env("SAFEGUARDING_HUB_HOST", "127.0.0.1")
    hub_port: int = _env("SAFEGUARDING_HUB_PORT", "6066")  # type: ignore[assignment]
    hub_password: str | None = _env("SAFEGUARDING_HUB_PASSWORD", "")  # type: ignore[assignment]
    """Password of the hub user ``hub`` for `safeguarding run`; generated when empty."""
    hub_users_file: str | None = _env("SAFEGUARDING_HUB_USERS", "")  # type: ignore[assignment]
    """A users file (see ``python -m streams.hub hash-password``)."""
    data_dir: str = _env("SAFEGUARDING_DATA_DIR", "")
    """Where the worker keeps local table state; a temporary directory when empty."""
    log_level: str = _env("SAFEGUARDING_LOG_LEVEL", "info")
    core: str = _env("SAFEGUARDING_CORE", "auto")
    """The inline backtest's detection core: ``native`` (compiled, native/), ``python`` (the
    reference), or ``auto`` (native when installed)."""
    until_ms: int | None = _env("SAFEGUARDING_UNTIL_MS", "")  # type: ignore[assignment]
    """A replay worker's ``--until`` (event time, ms), when it is known before the replay starts
    (``backtest --engine kafka``): no alert is raised after it, as in the inline engine. Without
    it the worker learns ``--until`` from the replay's finish ticks, after every event."""

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_prefix)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read each field's variable from ``env`` (default: the process environment), then
        apply the non-None ``overrides`` (command-line options)."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            name = f.metadata["env"]
            raw = env.get(name, f.default)
            values[f.name] = _convert(
                f.name, name, raw, type(f.default) if f.default != "" else str
            )
        settings = cls(**values)
        return replace(settings, **{k: v for k, v in overrides.items() if v is not None})


def _convert(attr: str, env_name: str, raw: Any, _: type) -> Any:
    ints = {"partitions", "lateness_ms", "max_ahead_ms", "hub_port"}
    floats = {"tick_interval_s"}
    optional = {"hub_password", "hub_users_file"}
    optional_ints = {"until_ms"}
    optional_floats = {"save_interval_s"}
    if attr in optional_ints | optional_floats and raw == "":
        return None
    try:
        if attr in ints or attr in optional_ints:
            return int(raw)
        if attr in floats or attr in optional_floats:
            value = float(raw)
            if not value > 0:  # nor NaN
                raise ConfigurationError(f"{env_name}: expected seconds > 0, received {raw!r}")
            return value
    except ValueError as exc:
        raise ConfigurationError(f"{env_name}: expected a number, received {raw!r}") from exc
    if attr in optional:
        return raw or None
    if attr == "mode" and raw not in ("live", "replay"):
        raise ConfigurationError(f"{env_name}: expected live or replay, received {raw!r}")
    if attr == "core" and raw not in ("auto", "native", "python"):
        raise ConfigurationError(f"{env_name}: expected auto, native or python, received {raw!r}")
    return raw
