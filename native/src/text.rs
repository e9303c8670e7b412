//! Texts of alerts: ids, summaries (streams/domain/summaries.py), RFC 3339 times
//! (streams/domain/time.py) and the JSON line of an alert (streams/codec.py `alert_json_line`).
//!
//! Calendar questions (Europe/London's offset on a day, a day's name, Operation Encompass's next
//! school day) are asked of the Python functions that answer them for the reference engine, once
//! per day or hour, and the answers cached here, bounded as there: the two engines cannot
//! disagree on a date.

use crate::fxhash::FxHashMap as HashMap;
use std::fmt::Write;
use std::rc::Rc;

use pyo3::prelude::*;

use crate::engine::{Alert, AlertStatus, Facts, Ms, Risk, Rule, Severity, DAY, HOUR, SG01};

const MINUTE: Ms = 60_000;
const CACHE_DAYS: usize = 40_000;
const CACHE_HOURS: usize = 2_000;
/// What `summaries._day_offset` returns for a day on which the clocks change.
const CHANGES: i64 = -1;

/// The Python callables the texts come from.
pub struct Calendar {
    pub encompass_due: PyObject,
    pub day_offset: PyObject,
    pub hour_offset: PyObject,
    pub local_date: PyObject,
    pub local: PyObject,
    pub utc_date: PyObject,
}

pub struct Texts {
    calendar: Calendar,
    encompass: HashMap<i64, Option<Ms>>,
    day_offsets: HashMap<i64, i64>,
    hour_offsets: HashMap<i64, Option<i64>>,
    local_dates: HashMap<i64, Rc<str>>,
    utc_dates: HashMap<i64, Rc<str>>,
}

fn call_i64(f: &PyObject, arg: i64) -> Option<i64> {
    Python::with_gil(|py| {
        let value = f.call1(py, (arg,)).expect("a calendar function of the reference engine");
        value.extract::<Option<i64>>(py).expect("an int or None")
    })
}

fn call_str(f: &PyObject, arg: i64) -> String {
    Python::with_gil(|py| {
        let value = f.call1(py, (arg,)).expect("a calendar function of the reference engine");
        value.extract::<String>(py).expect("a str")
    })
}

fn bounded<K, V>(map: &mut HashMap<K, V>, limit: usize) {
    if map.len() >= limit {
        map.clear();
    }
}

impl Texts {
    pub fn new(calendar: Calendar) -> Self {
        Texts {
            calendar,
            encompass: HashMap::default(),
            day_offsets: HashMap::default(),
            hour_offsets: HashMap::default(),
            local_dates: HashMap::default(),
            utc_dates: HashMap::default(),
        }
    }

    /// `case._encompass_due`: `params.encompass_due(at)`, cached per UTC hour whose first and
    /// last instants have the same due.
    pub fn encompass_due(&mut self, at: Ms) -> Ms {
        let hour = at.div_euclid(HOUR);
        let cached = match self.encompass.get(&hour) {
            Some(due) => *due,
            None => {
                let f = &self.calendar.encompass_due;
                let first = call_i64(f, hour * HOUR).expect("a due time");
                let last = call_i64(f, hour * HOUR + HOUR - 1).expect("a due time");
                let due = if first == last { Some(first) } else { None };
                bounded(&mut self.encompass, CACHE_HOURS);
                self.encompass.insert(hour, due);
                due
            }
        };
        cached.unwrap_or_else(|| call_i64(&self.calendar.encompass_due, at).expect("a due time"))
    }

    /// `summaries.local`: `Mon 04 Mar 2024 18:05` in UK local time.
    pub fn local(&mut self, ms: Ms) -> String {
        let day = ms.div_euclid(DAY);
        let offset = match self.day_offsets.get(&day) {
            Some(o) => *o,
            None => {
                let o = call_i64(&self.calendar.day_offset, day).expect("an offset");
                bounded(&mut self.day_offsets, CACHE_DAYS);
                self.day_offsets.insert(day, o);
                o
            }
        };
        let offset = if offset == CHANGES {
            let hour = ms.div_euclid(HOUR);
            let found = match self.hour_offsets.get(&hour) {
                Some(o) => *o,
                None => {
                    let o = call_i64(&self.calendar.hour_offset, hour);
                    bounded(&mut self.hour_offsets, CACHE_DAYS);
                    self.hour_offsets.insert(hour, o);
                    o
                }
            };
            match found {
                Some(o) => o,
                None => return call_str(&self.calendar.local, ms),
            }
        } else {
            offset
        };
        let at = ms + offset;
        let local_day = at.div_euclid(DAY);
        let date = match self.local_dates.get(&local_day) {
            Some(d) => d.clone(),
            None => {
                let d: Rc<str> = call_str(&self.calendar.local_date, local_day).into();
                bounded(&mut self.local_dates, CACHE_DAYS);
                self.local_dates.insert(local_day, d.clone());
                d
            }
        };
        let minute = at.div_euclid(MINUTE).rem_euclid(1440);
        format!("{}{:02}:{:02}", date, minute / 60, minute % 60)
    }

    /// `time.to_rfc3339`: `2024-01-01T00:00:00Z`, with `.123` when there are milliseconds.
    pub fn rfc3339(&mut self, ms: Ms, out: &mut String) {
        let day = ms.div_euclid(DAY);
        let rest = ms.rem_euclid(DAY);
        let date = match self.utc_dates.get(&day) {
            Some(d) => d.clone(),
            None => {
                let d: Rc<str> = call_str(&self.calendar.utc_date, day).into();
                bounded(&mut self.utc_dates, CACHE_DAYS);
                self.utc_dates.insert(day, d.clone());
                d
            }
        };
        let (seconds, milli) = (rest / 1000, rest % 1000);
        let (minute, second) = (seconds / 60, seconds % 60);
        out.push_str(&date);
        let _ = write!(out, "{:02}:{:02}:{:02}", minute / 60, minute % 60, second);
        if milli != 0 {
            let _ = write!(out, ".{milli:03}");
        }
        out.push('Z');
    }

    /// `summaries.describe`'s summary of an alert of `rule` due at `due`.
    pub fn summary(&mut self, rule: Rule, due: Ms, facts: &Facts) -> String {
        match facts {
            Facts::Incident(inc) if rule == SG01 => {
                let place = if inc.present {
                    "present at"
                } else {
                    "living in the household of (not present at)"
                };
                let dash = if inc.dash_high { " graded DASH high risk" } else { "" };
                format!(
                    "Child {place} a domestic abuse incident{dash} on {}; no referral to children's social care by {}.",
                    self.local(inc.at),
                    self.local(due)
                )
            }
            Facts::Incident(inc) => {
                let age = match inc.age {
                    Some(a) => format!("aged {a}"),
                    None => "of unknown age".to_string(),
                };
                format!(
                    "Child {age} listed in a domestic abuse incident on {}; the school was not notified (Operation Encompass) by {}.",
                    self.local(inc.at),
                    self.local(due)
                )
            }
            Facts::Report(rep) => format!(
                "Child reported missing on {} graded {}; no supervisory risk review by {}.",
                self.local(rep.at),
                grade(rep.risk),
                self.local(due)
            ),
            Facts::Prior(rep, n) => {
                let what = if *n != 1 {
                    "earlier missing episode or domestic abuse incidents"
                } else {
                    "earlier missing episode or domestic abuse incident"
                };
                format!(
                    "Looked-after child reported missing on {} graded {} despite {n} {what} in the previous 90 days.",
                    self.local(rep.at),
                    grade(rep.risk)
                )
            }
            Facts::Repeat(rep, n) => format!(
                "Child reported missing for the {} time in 90 days on {}; no referral to children's social care by {}.",
                ordinal(*n as i64),
                self.local(rep.at),
                self.local(due)
            ),
            Facts::Returned(ret) => format!(
                "Child returned from a missing episode on {}; no return home interview by {} (72 hours).",
                self.local(ret.at),
                self.local(due)
            ),
            Facts::LongMissing(rep, risk) => format!(
                "Child missing since {}, still not found at {} and still graded {}.",
                self.local(rep.at),
                self.local(due),
                grade(Some(*risk))
            ),
            Facts::Cumulative { later_incident, later_at, earlier_at } => {
                let (first, then) = if *later_incident {
                    ("a missing episode", "a domestic abuse incident")
                } else {
                    ("a domestic abuse incident", "a missing episode")
                };
                format!(
                    "Child had {first} on {} and {then} on {}; no referral to children's social care by {}.",
                    self.local(*earlier_at),
                    self.local(*later_at),
                    self.local(due)
                )
            }
        }
    }

    /// `codec.alert_json_line`: the same bytes as `orjson.dumps(alert_to_dict(alert))` and a
    /// newline.
    pub fn json_line(&mut self, a: &Alert, live: bool, out: &mut String) {
        out.push_str("{\"alert_id\":");
        json_str(&a.alert_id, out);
        out.push_str(",\"rule_id\":\"");
        out.push_str(RULE_IDS[a.rule as usize]);
        out.push_str("\",\"child_id\":");
        json_str(&a.child_id, out);
        out.push_str(",\"trigger_id\":");
        json_str(&a.trigger, out);
        out.push_str(",\"severity\":\"");
        out.push_str(severity_text(a.severity));
        out.push_str("\",\"raised_at\":\"");
        self.rfc3339(a.raised_at, out);
        out.push_str("\",\"due_at\":\"");
        self.rfc3339(a.due_at, out);
        out.push_str("\",\"evidence\":[");
        for (i, e) in a.evidence.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            json_str(e, out);
        }
        out.push_str("],\"summary\":");
        json_str(&a.summary, out);
        out.push_str(",\"recommended_action\":");
        json_str(ACTIONS[a.rule as usize], out);
        out.push_str(",\"status\":\"");
        out.push_str(status_text(a.status));
        out.push_str("\",\"resolved_at\":");
        match a.resolved_at {
            None => out.push_str("null"),
            Some(t) => {
                out.push('"');
                self.rfc3339(t, out);
                out.push('"');
            }
        }
        out.push_str(",\"mode\":\"");
        out.push_str(if live { "live" } else { "replay" });
        out.push_str("\",\"detected_at\":\"");
        self.rfc3339(a.detected_at, out);
        out.push_str("\"}\n");
    }
}

pub const RULE_IDS: [&str; 9] =
    ["", "SG01", "SG02", "SG03", "SG04", "SG05", "SG06", "SG07", "SG08"];

pub fn severity_text(s: Severity) -> &'static str {
    match s {
        Severity::High => "HIGH",
        Severity::Medium => "MEDIUM",
    }
}

pub fn status_text(s: AlertStatus) -> &'static str {
    match s {
        AlertStatus::Raised => "RAISED",
        AlertStatus::Resolved => "RESOLVED",
        AlertStatus::Withdrawn => "WITHDRAWN",
    }
}

/// `summaries._ACTIONS`
pub const ACTIONS: [&str; 9] = [
    "",
    "Refer the child to children's social care (MASH) now and record the referral against the incident.",
    "Send the Operation Encompass notification to the child's school before the school day starts.",
    "A supervisor must review and confirm the risk assessment of this missing child now.",
    "Re-grade the episode as missing with a proper risk assessment; consider the child's history and any exploitation risk.",
    "Refer this repeat missing child to children's social care and consider a multi-agency risk-management meeting.",
    "Arrange the return home interview now and record it against the episode.",
    "Review the risk grading of this long missing episode and escalate the search.",
    "Refer the child to children's social care: domestic abuse and a missing episode together are a cumulative risk.",
];

/// `rep.risk.value.replace("_", " ").lower()`
fn grade(r: Option<Risk>) -> &'static str {
    match r {
        Some(Risk::Absent) => "absent",
        Some(Risk::High) => "high",
        Some(Risk::Low) => "low",
        Some(Risk::Medium) => "medium",
        Some(Risk::NoApparent) => "no apparent risk",
        None => "none",
    }
}

/// `summaries.ordinal`
fn ordinal(n: i64) -> String {
    if (10..=20).contains(&n.rem_euclid(100)) {
        return format!("{n}th");
    }
    let suffix = match n.rem_euclid(10) {
        1 => "st",
        2 => "nd",
        3 => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

/// A JSON string as orjson writes it: `"` and `\` escaped, control characters as `\b \t \n \f
/// \r` or `\u00xx`, everything else (DEL and non-ASCII included) as it is.
fn json_str(s: &str, out: &mut String) {
    out.push('"');
    if !s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        out.push_str(s); // nearly every text: nothing to escape
        out.push('"');
        return;
    }
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape: Option<&str> = match b {
            b'"' => Some("\\\""),
            b'\\' => Some("\\\\"),
            0x08 => Some("\\b"),
            b'\t' => Some("\\t"),
            b'\n' => Some("\\n"),
            0x0c => Some("\\f"),
            b'\r' => Some("\\r"),
            0x00..=0x1f => Some(""),
            _ => None,
        };
        if let Some(e) = escape {
            out.push_str(&s[start..i]);
            if e.is_empty() {
                let _ = write!(out, "\\u{:04x}", b);
            } else {
                out.push_str(e);
            }
            start = i + 1;
        }
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// `alerts.alert_id_for`: UUID 5 of (rule, child, trigger) in the alerts' namespace.
pub fn alert_id(rule: Rule, child_id: &str, trigger: &str) -> String {
    const NAMESPACE: [u8; 16] = [
        0x6f, 0x0b, 0x8d, 0x2e, 0x5a, 0x57, 0x4c, 0x1e, 0x9a, 0x43, 0x2b, 0x7f, 0x5e, 0x0c, 0x9d,
        0x11,
    ];
    let mut h = sha1_smol::Sha1::new();
    h.update(&NAMESPACE);
    h.update(RULE_IDS[rule as usize].as_bytes());
    h.update(b"\x1f");
    h.update(child_id.as_bytes());
    h.update(b"\x1f");
    h.update(trigger.as_bytes());
    let x = h.digest().to_string();
    let variant = b"89ab"[usize::from_str_radix(&x[16..17], 16).unwrap() % 4] as char;
    format!("{}-{}-5{}-{}{}-{}", &x[..8], &x[8..12], &x[13..16], variant, &x[17..20], &x[20..32])
}
