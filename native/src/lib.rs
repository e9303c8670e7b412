//! `streams_native`: the detection core compiled, for the inline backtest.
//!
//! Python keeps everything around it (reading and decoding files, dead letters, progress, the
//! summary) and the reference engine, `streams.domain.detector.Detector`; this module is driven
//! by `streams.domain.native.NativeDetector`, which has the same methods and turns what comes
//! out of here into the same `Alert` values. The backtest's hot path skips those values: it feeds
//! events with `feed_quiet` and has the final alerts written as JSON lines from here.

mod engine;
mod fxhash;
mod text;

use std::collections::BTreeMap;
use std::rc::Rc;

use pyo3::exceptions::PyTypeError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple, PyType};

use engine::{Agency, Alert, Ctx, Detector, Event, Id, Ms, Params, Risk, Status};
use text::{Calendar, Texts};

/// The event classes and enum members of streams.domain.events, known by identity.
struct Kinds {
    incident: Py<PyType>,
    missing: Py<PyType>,
    referral: Py<PyType>,
    domestic_abuse: PyObject,
    dash_high: PyObject,
    /// REPORTED, RISK_REVIEWED, RETURNED, RETURN_INTERVIEW
    statuses: Vec<PyObject>,
    /// ABSENT, HIGH, LOW, MEDIUM, NO_APPARENT_RISK (the order of `engine::Risk`)
    risks: Vec<PyObject>,
    csc: PyObject,
    school: PyObject,
}

const STATUSES: [Status; 4] =
    [Status::Reported, Status::Reviewed, Status::Returned, Status::Interview];
const RISKS: [Risk; 5] = [Risk::Absent, Risk::High, Risk::Low, Risk::Medium, Risk::NoApparent];

fn id(value: Bound<'_, PyAny>) -> PyResult<Id> {
    Ok(Rc::from(value.downcast::<PyString>()?.to_str()?))
}

fn opt_id(value: Bound<'_, PyAny>) -> PyResult<Option<Id>> {
    if value.is_none() {
        Ok(None)
    } else {
        id(value).map(Some)
    }
}

fn member<T: Copy>(
    value: &Bound<'_, PyAny>,
    members: &[PyObject],
    of: &[T],
    what: &str,
) -> PyResult<T> {
    for (m, v) in members.iter().zip(of) {
        if value.is(m) {
            return Ok(*v);
        }
    }
    Err(PyTypeError::new_err(format!("not a {what}: {value}")))
}

impl Kinds {
    fn event(&self, py: Python<'_>, ev: &Bound<'_, PyAny>) -> PyResult<Event> {
        let ty = ev.get_type();
        let event_id = id(ev.getattr(intern!(py, "event_id"))?)?;
        let at: Ms = ev.getattr(intern!(py, "occurred_at"))?.extract()?;
        if ty.is(self.referral.bind(py)) {
            let agency = ev.getattr(intern!(py, "agency"))?;
            let agency = if agency.is(&self.csc) {
                Agency::ChildrensSocialCare
            } else if agency.is(&self.school) {
                Agency::School
            } else {
                Agency::Other
            };
            return Ok(Event::Referral {
                event_id,
                at,
                child_id: id(ev.getattr(intern!(py, "child_id"))?)?,
                agency,
                incident_id: opt_id(ev.getattr(intern!(py, "incident_id"))?)?,
            });
        }
        if ty.is(self.missing.bind(py)) {
            let status = member(
                &ev.getattr(intern!(py, "status"))?,
                &self.statuses,
                &STATUSES,
                "MissingStatus",
            )?;
            let risk = ev.getattr(intern!(py, "risk_level"))?;
            let risk = if risk.is_none() {
                None
            } else {
                Some(member(&risk, &self.risks, &RISKS, "RiskLevel")?)
            };
            return Ok(Event::Missing {
                event_id,
                at,
                episode_id: id(ev.getattr(intern!(py, "episode_id"))?)?,
                child_id: id(ev.getattr(intern!(py, "child_id"))?)?,
                status,
                risk,
                looked_after: ev.getattr(intern!(py, "looked_after"))?.extract()?,
            });
        }
        if ty.is(self.incident.bind(py)) {
            let kids = ev.getattr(intern!(py, "children"))?;
            let kids = kids.downcast::<PyTuple>()?;
            let mut children = Vec::with_capacity(kids.len());
            for kid in kids.iter() {
                children.push((
                    id(kid.getattr(intern!(py, "child_id"))?)?,
                    kid.getattr(intern!(py, "present"))?.extract::<bool>()?,
                    kid.getattr(intern!(py, "age"))?.extract::<Option<i64>>()?,
                ));
            }
            if children.is_empty() {
                return Err(PyTypeError::new_err("an incident with no children"));
            }
            return Ok(Event::Incident {
                event_id,
                at,
                incident_id: id(ev.getattr(intern!(py, "incident_id"))?)?,
                domestic_abuse: ev.getattr(intern!(py, "incident_type"))?.is(&self.domestic_abuse),
                dash_high: ev.getattr(intern!(py, "dash_risk"))?.is(&self.dash_high),
                children,
            });
        }
        Err(PyTypeError::new_err(format!("not an event: {}", ty.name()?)))
    }
}

fn wall_clock_ms() -> Ms {
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    now.as_millis() as Ms
}

/// Processing time: the Python clock given, or the wall clock.
fn processing_time(py: Python<'_>, now: &Option<PyObject>) -> PyResult<Ms> {
    match now {
        None => Ok(wall_clock_ms()),
        Some(f) => f.call0(py)?.extract(py),
    }
}

/// The engine over every child of a backtest.
#[pyclass(unsendable)]
struct Engine {
    detector: Detector,
    kinds: Kinds,
    /// The processing-time clock; None for the wall clock.
    now: Option<PyObject>,
    live: bool,
    /// (rule, status) -> alerts written as lines, since the last `take_counts`.
    counts: BTreeMap<(&'static str, &'static str), u64>,
}

impl Engine {
    fn now(&self, py: Python<'_>) -> PyResult<Ms> {
        processing_time(py, &self.now)
    }

    fn tuples(&self, py: Python<'_>, alerts: &[Alert]) -> PyResult<Py<PyList>> {
        let mode = if self.live { "live" } else { "replay" };
        let items: Vec<Bound<'_, PyTuple>> = alerts
            .iter()
            .map(|a| {
                let evidence = PyTuple::new(py, a.evidence.iter().map(|e| &**e))?;
                PyTuple::new(
                    py,
                    [
                        a.alert_id.into_pyobject(py)?.into_any(),
                        text::RULE_IDS[a.rule as usize].into_pyobject(py)?.into_any(),
                        (&*a.child_id).into_pyobject(py)?.into_any(),
                        (&*a.trigger).into_pyobject(py)?.into_any(),
                        text::severity_text(a.severity).into_pyobject(py)?.into_any(),
                        a.raised_at.into_pyobject(py)?.into_any(),
                        a.due_at.into_pyobject(py)?.into_any(),
                        evidence.into_any(),
                        (&*a.summary).into_pyobject(py)?.into_any(),
                        text::ACTIONS[a.rule as usize].into_pyobject(py)?.into_any(),
                        text::status_text(a.status).into_pyobject(py)?.into_any(),
                        a.resolved_at.into_pyobject(py)?.into_any(),
                        mode.into_pyobject(py)?.into_any(),
                        a.detected_at.into_pyobject(py)?.into_any(),
                    ],
                )
            })
            .collect::<PyResult<_>>()?;
        Ok(PyList::new(py, items)?.unbind())
    }

    /// Write the alerts' JSON lines with `write` (a file's), a chunk of about `CHUNK` bytes at
    /// a time: memory stays flat however many alerts there are.
    fn write_lines(
        &mut self,
        py: Python<'_>,
        alerts: &[Alert],
        write: &Bound<'_, PyAny>,
    ) -> PyResult<usize> {
        const CHUNK: usize = 1 << 20;
        let mut out = String::with_capacity(CHUNK + 4096);
        for a in alerts {
            self.detector.ctx.texts.json_line(a, self.live, &mut out);
            *self
                .counts
                .entry((text::RULE_IDS[a.rule as usize], text::status_text(a.status)))
                .or_insert(0) += 1;
            if out.len() >= CHUNK {
                write.call1((PyBytes::new(py, out.as_bytes()),))?;
                out.clear();
            }
        }
        if !out.is_empty() {
            write.call1((PyBytes::new(py, out.as_bytes()),))?;
        }
        Ok(alerts.len())
    }

    fn apply(&mut self, py: Python<'_>, event: &Bound<'_, PyAny>) -> PyResult<Vec<Alert>> {
        let event = self.kinds.event(py, event)?;
        let mut failed = None;
        let now = &self.now;
        let mut clock = || {
            processing_time(py, now).unwrap_or_else(|e| {
                failed = Some(e);
                0
            })
        };
        let out = self.detector.feed(&event, &mut clock);
        match failed {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }
}

#[pymethods]
impl Engine {
    /// `params`: lateness, retention, da_referral_deadline, review_deadline, lookback,
    /// repeat_episodes, repeat_referral_deadline, return_interview_deadline,
    /// return_repeat_episodes, long_missing_deadline, cumulative_window, cumulative_deadline.
    /// `calendar`: encompass_due, day_offset, hour_offset, local_date, local, utc_date.
    /// `kinds`: Incident, MissingReport, Referral, DOMESTIC_ABUSE, DashRisk.HIGH, the four
    /// statuses, the five risks (ABSENT, HIGH, LOW, MEDIUM, NO_APPARENT_RISK),
    /// CHILDRENS_SOCIAL_CARE, SCHOOL.
    #[new]
    #[pyo3(signature = (params, calendar, kinds, *, live, until=None, now=None))]
    fn new(
        params: (Ms, Ms, Ms, Ms, Ms, i64, Ms, Ms, i64, Ms, Ms, Ms),
        calendar: (PyObject, PyObject, PyObject, PyObject, PyObject, PyObject),
        kinds: &Bound<'_, PyTuple>,
        live: bool,
        until: Option<Ms>,
        now: Option<PyObject>,
    ) -> PyResult<Self> {
        let p = Params {
            lateness: params.0,
            retention: params.1,
            da_referral_deadline: params.2,
            review_deadline: params.3,
            lookback: params.4,
            repeat_episodes: params.5,
            repeat_referral_deadline: params.6,
            return_interview_deadline: params.7,
            return_repeat_episodes: params.8,
            long_missing_deadline: params.9,
            cumulative_window: params.10,
            cumulative_deadline: params.11,
        };
        let (encompass_due, day_offset, hour_offset, local_date, local, utc_date) = calendar;
        let texts = Texts::new(Calendar {
            encompass_due,
            day_offset,
            hour_offset,
            local_date,
            local,
            utc_date,
        });
        if kinds.len() != 16 {
            return Err(PyTypeError::new_err("kinds: 16 classes and members"));
        }
        let item = |i: usize| -> PyResult<PyObject> { Ok(kinds.get_item(i)?.unbind()) };
        let class = |i: usize| -> PyResult<Py<PyType>> {
            Ok(kinds.get_item(i)?.downcast::<PyType>()?.clone().unbind())
        };
        let kinds = Kinds {
            incident: class(0)?,
            missing: class(1)?,
            referral: class(2)?,
            domestic_abuse: item(3)?,
            dash_high: item(4)?,
            statuses: (5..9).map(item).collect::<PyResult<_>>()?,
            risks: (9..14).map(item).collect::<PyResult<_>>()?,
            csc: item(14)?,
            school: item(15)?,
        };
        let ctx = Ctx { p, until, now: 0, texts };
        Ok(Engine { detector: Detector::new(ctx), kinds, now, live, counts: BTreeMap::new() })
    }

    /// Apply one event; the alert versions it produced, as tuples of `Alert`'s fields.
    fn feed(&mut self, py: Python<'_>, event: &Bound<'_, PyAny>) -> PyResult<Py<PyList>> {
        let out = self.apply(py, event)?;
        self.tuples(py, &out)
    }

    /// Apply one event; the number of alert versions it produced (the backtest's hot path:
    /// only the final versions are written).
    fn feed_quiet(&mut self, py: Python<'_>, event: &Bound<'_, PyAny>) -> PyResult<usize> {
        Ok(self.apply(py, event)?.len())
    }

    /// `feed_quiet` for each event of a list, in order; the number of alert versions.
    fn feed_quiet_many(&mut self, py: Python<'_>, events: &Bound<'_, PyList>) -> PyResult<usize> {
        let mut n = 0;
        for event in events.iter() {
            n += self.apply(py, &event)?.len();
        }
        Ok(n)
    }

    /// Advance the clock to `until` (default: the greatest event time seen, or the engine's
    /// `until`) and fire every deadline up to it.
    #[pyo3(signature = (until=None))]
    fn finish(&mut self, py: Python<'_>, until: Option<Ms>) -> PyResult<Py<PyList>> {
        let now = self.now(py)?;
        let out = self.detector.finish(until, now);
        self.tuples(py, &out)
    }

    /// Alerts that can no longer change, taken out of the engine.
    fn drain_final(&mut self, py: Python<'_>) -> PyResult<Py<PyList>> {
        let out = self.detector.drain_final();
        self.tuples(py, &out)
    }

    /// `drain_final`, written as JSON lines with `write`; the number of alerts.
    fn write_final(&mut self, py: Python<'_>, write: &Bound<'_, PyAny>) -> PyResult<usize> {
        let out = self.detector.drain_final();
        self.write_lines(py, &out, write)
    }

    /// The latest version of every alert not yet drained, in order.
    fn alerts(&self, py: Python<'_>) -> PyResult<Py<PyList>> {
        self.tuples(py, &self.detector.alerts())
    }

    /// `alerts`, written as JSON lines with `write`; the number of alerts.
    fn write_alerts(&mut self, py: Python<'_>, write: &Bound<'_, PyAny>) -> PyResult<usize> {
        let out = self.detector.alerts();
        self.write_lines(py, &out, write)
    }

    /// ((rule_id, status), n) of the alerts written as lines since the last call.
    fn take_counts(&mut self) -> Vec<((&'static str, &'static str), u64)> {
        std::mem::take(&mut self.counts).into_iter().collect()
    }

    /// (events, duplicates, late, too_late, alert_versions)
    fn stats(&self) -> (u64, u64, u64, u64, u64) {
        let s = self.detector.stats;
        (s.events, s.duplicates, s.late, s.too_late, s.alert_versions)
    }

    #[getter]
    fn clock(&self) -> Ms {
        self.detector.clock
    }

    #[getter]
    fn until(&self) -> Option<Ms> {
        self.detector.ctx.until
    }
}

#[pymodule]
fn streams_native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Engine>()?;
    Ok(())
}
