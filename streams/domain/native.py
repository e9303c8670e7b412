"""The compiled detection core (``native/``, Rust), behind the interface of :class:`Detector`.

:mod:`streams.domain.case` and :mod:`streams.domain.detector` are the reference: the rules as
SPEC section 4 words them, in Python. ``native/src/engine.rs`` is the same code, function for
function, compiled; it exists for speed alone (the inline backtest's target of 100,000 events/s
needs about 7 us per event for detection, and Python takes about 30). It is built and installed
by ``make`` when cargo is on the machine; without it everything runs on the reference, slower.

:class:`NativeDetector` has :class:`Detector`'s methods for a whole backtest (``feed``,
``feed_all``, ``finish``, ``drain_final``, ``alerts``, ``stats``) and gives the same
:class:`Alert` values, so the rule tables and property tests run through both engines
(``tests/unit/test_native.py``). It has no ``states`` mapping, ``tick`` or ``advance_to``: the
Kafka pipeline keeps the reference engine, whose states go to a changelog.

Which core the inline backtest uses is :func:`inline_engine`'s choice from ``SAFEGUARDING_CORE``
(:class:`~streams.settings.Settings`): ``native`` (the compiled core, an error when it is not
installed), ``python`` (the reference), or ``auto`` (the compiled core when installed).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from types import ModuleType
from typing import Any

from streams.domain import summaries
from streams.domain import time as domain_time
from streams.domain.alerts import Alert, AlertStatus, Mode, RuleId, Severity, new_alert
from streams.domain.detector import Detector, DetectorStats, wall_clock_ms
from streams.domain.events import (
    Agency,
    DashRisk,
    Event,
    Incident,
    IncidentType,
    MissingReport,
    MissingStatus,
    Referral,
    RiskLevel,
)
from streams.domain.params import Params
from streams.domain.time import Millis
from streams.errors import ConfigurationError

CORES = ("auto", "native", "python")


class NativeCoreMissing(ConfigurationError):
    """``SAFEGUARDING_CORE=native`` and the compiled core is not installed."""


def load() -> ModuleType | None:
    """The compiled module, or None when it is not installed."""
    try:
        import streams_native  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    module: ModuleType = streams_native
    return module


def inline_engine(wanted: str = "auto") -> str:
    """``"native"`` or ``"python"``: the core the inline backtest runs, for the setting
    ``SAFEGUARDING_CORE`` (``wanted``: see the module docstring)."""
    if wanted not in CORES:
        raise ConfigurationError(
            f"SAFEGUARDING_CORE: expected {', '.join(CORES)}, received {wanted!r}"
        )
    if wanted == "python":
        return "python"
    if load() is not None:
        return "native"
    if wanted == "native":
        raise NativeCoreMissing(
            "SAFEGUARDING_CORE=native but the compiled core (streams_native) is not installed: "
            "run `make venv` on a machine with cargo (https://rustup.rs), or set "
            "SAFEGUARDING_CORE=python"
        )
    return "python"


_KINDS: tuple[object, ...] = (
    Incident,
    MissingReport,
    Referral,
    IncidentType.DOMESTIC_ABUSE,
    DashRisk.HIGH,
    MissingStatus.REPORTED,
    MissingStatus.RISK_REVIEWED,
    MissingStatus.RETURNED,
    MissingStatus.RETURN_INTERVIEW,
    RiskLevel.ABSENT,
    RiskLevel.HIGH,
    RiskLevel.LOW,
    RiskLevel.MEDIUM,
    RiskLevel.NO_APPARENT_RISK,
    Agency.CHILDRENS_SOCIAL_CARE,
    Agency.SCHOOL,
)
"""The classes and members the core tells events and their fields apart by (by identity)."""

_RULES = {str(r): r for r in RuleId}
_SEVERITIES = {str(s): s for s in Severity}
_STATUSES = {str(s): s for s in AlertStatus}
_MODES = {str(m): m for m in Mode}


def _alert(t: tuple[Any, ...]) -> Alert:
    return new_alert(
        t[0],
        _RULES[t[1]],
        t[2],
        t[3],
        _SEVERITIES[t[4]],
        t[5],
        t[6],
        t[7],
        t[8],
        t[9],
        _STATUSES[t[10]],
        t[11],
        _MODES[t[12]],
        t[13],
    )


def _alerts(tuples: list[tuple[Any, ...]]) -> list[Alert]:
    return [_alert(t) for t in tuples]


class NativeDetector:
    """:class:`~streams.domain.detector.Detector` for a backtest, on the compiled core."""

    def __init__(
        self,
        params: Params | None = None,
        *,
        mode: Mode = Mode.REPLAY,
        until: Millis | None = None,
        now: Callable[[], Millis] = wall_clock_ms,
    ) -> None:
        module = load()
        if module is None:
            raise NativeCoreMissing("the compiled core (streams_native) is not installed")
        self.params = p = params or Params()
        self._engine = module.Engine(
            (
                p.lateness,
                p.retention,
                p.da_referral_deadline,
                p.review_deadline,
                p.lookback,
                p.repeat_episodes,
                p.repeat_referral_deadline,
                p.return_interview_deadline,
                p.return_repeat_episodes,
                p.long_missing_deadline,
                p.cumulative_window,
                p.cumulative_deadline,
            ),
            (
                p.encompass_due,
                summaries._day_offset,
                summaries._hour_offset,
                summaries._local_date,
                summaries.local,
                domain_time._utc_date,
            ),
            _KINDS,
            live=mode is Mode.LIVE,
            until=until,
            now=None if now is wall_clock_ms else now,
        )
        self.feed_quiet: Callable[[Event], int] = self._engine.feed_quiet
        """Apply one event and return the number of alert versions it produced, building
        none of them."""
        self.feed_quiet_many: Callable[[list[Event]], int] = self._engine.feed_quiet_many
        """:attr:`feed_quiet` for each event of a list, in order, in one call (the backtest's
        hot path: about 4% faster than one call an event)."""

    # -- input -----------------------------------------------------------------------------

    def feed(self, event: Event) -> list[Alert]:
        return _alerts(self._engine.feed(event))

    def feed_all(self, events: Iterable[Event]) -> list[Alert]:
        out: list[Alert] = []
        for event in events:
            out += self.feed(event)
        return out

    def finish(self, until: Millis | None = None) -> list[Alert]:
        return _alerts(self._engine.finish(until))

    # -- output ----------------------------------------------------------------------------

    def drain_final(self) -> list[Alert]:
        return _alerts(self._engine.drain_final())

    def alerts(self) -> list[Alert]:
        return _alerts(self._engine.alerts())

    def write_final(self, write: Callable[[bytes], object]) -> int:
        """:meth:`drain_final`, written with ``write`` as the JSON lines
        :func:`streams.codec.alert_json_line` makes (the same bytes), about a megabyte at a
        time; returns the number of alerts."""
        n: int = self._engine.write_final(write)
        return n

    def write_alerts(self, write: Callable[[bytes], object]) -> int:
        """:meth:`alerts`, written as :meth:`write_final` does."""
        n: int = self._engine.write_alerts(write)
        return n

    def take_counts(self) -> list[tuple[tuple[str, str], int]]:
        """((rule_id, status), n) of the alerts written as lines since the last call."""
        counts: list[tuple[tuple[str, str], int]] = self._engine.take_counts()
        return counts

    @property
    def stats(self) -> DetectorStats:
        return DetectorStats(*self._engine.stats())

    @property
    def clock(self) -> Millis:
        clock: Millis = self._engine.clock
        return clock

    @property
    def until(self) -> Millis | None:
        until: Millis | None = self._engine.until
        return until


def detector_for(
    core: str,
    params: Params | None = None,
    *,
    mode: Mode = Mode.REPLAY,
    until: Millis | None = None,
    now: Callable[[], Millis] = wall_clock_ms,
) -> Detector | NativeDetector:
    """A detector on ``core``: ``"native"`` (:class:`NativeDetector`) or ``"python"`` (the
    reference :class:`~streams.domain.detector.Detector`)."""
    if core == "native":
        return NativeDetector(params, mode=mode, until=until, now=now)
    if core == "python":
        return Detector(params, mode=mode, until=until, now=now)
    raise ValueError(f"core: expected native or python, received {core!r}")
