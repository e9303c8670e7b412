//! The rules of SPEC section 4 and the detection engine, as `streams/domain/case.py` and
//! `streams/domain/detector.py` write them: the same facts, the same deadlines, the same
//! schedule, so that the same events give the same alerts, byte for byte. The Python modules are
//! the reference: each function here names the one it follows, and a change to either is a
//! change to both (tests/unit/test_native.py runs the rule tables and random worlds through both).
//!
//! What differs is only how values are held: ids are shared `Rc<str>`, a step is an index into
//! its episode, and the small per-child maps are vectors kept in insertion order (as Python's
//! dicts are; the order decides the order alerts come out in).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::fxhash::FxHashMap as HashMap;
use std::rc::Rc;

use crate::text::Texts;

pub type Id = Rc<str>;
pub type Ms = i64;

pub const NEVER: Ms = -(1 << 62);
pub const FOREVER: Ms = 1 << 62;
pub const HOUR: Ms = 3_600_000;
pub const DAY: Ms = 24 * HOUR;

/// A rule, 1 to 8 for SG01 to SG08; 0 is a wake marker (a time the child is woken at, with
/// nothing to evaluate), which sorts first as Python's `""` does.
pub type Rule = u8;
pub const MARKER: Rule = 0;
pub const SG01: Rule = 1;
pub const SG02: Rule = 2;
pub const SG03: Rule = 3;
pub const SG04: Rule = 4;
pub const SG05: Rule = 5;
pub const SG06: Rule = 6;
pub const SG07: Rule = 7;
pub const SG08: Rule = 8;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Status {
    Reported,
    Reviewed,
    Returned,
    Interview,
}

impl Status {
    fn rank(self) -> u8 {
        self as u8
    }
    fn grading(self) -> bool {
        matches!(self, Status::Reported | Status::Reviewed)
    }
}

/// Risk grades, declared in the order of their names (Python sorts reports by the text).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Risk {
    Absent,
    High,
    Low,
    Medium,
    NoApparent,
}

fn low(r: Option<Risk>) -> bool {
    matches!(r, Some(Risk::Low | Risk::NoApparent | Risk::Absent))
}
fn undergraded(r: Option<Risk>) -> bool {
    matches!(r, Some(Risk::Absent | Risk::NoApparent))
}
fn raised_grade(r: Option<Risk>) -> bool {
    matches!(r, Some(Risk::Medium | Risk::High))
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Agency {
    ChildrensSocialCare,
    School,
    Other,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Severity {
    High,
    Medium,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum AlertStatus {
    Raised,
    Resolved,
    Withdrawn,
}

#[derive(Clone, Copy, Debug)]
pub struct Params {
    pub lateness: Ms,
    pub retention: Ms,
    pub da_referral_deadline: Ms,
    pub review_deadline: Ms,
    pub lookback: Ms,
    pub repeat_episodes: i64,
    pub repeat_referral_deadline: Ms,
    pub return_interview_deadline: Ms,
    pub return_repeat_episodes: i64,
    pub long_missing_deadline: Ms,
    pub cumulative_window: Ms,
    pub cumulative_deadline: Ms,
}

/// An input event, as the codec made it (streams/domain/events.py).
pub enum Event {
    Incident {
        event_id: Id,
        at: Ms,
        incident_id: Id,
        domestic_abuse: bool,
        dash_high: bool,
        /// (child_id, present, age)
        children: Vec<(Id, bool, Option<i64>)>,
    },
    Missing {
        event_id: Id,
        at: Ms,
        episode_id: Id,
        child_id: Id,
        status: Status,
        risk: Option<Risk>,
        looked_after: bool,
    },
    Referral {
        event_id: Id,
        at: Ms,
        child_id: Id,
        agency: Agency,
        incident_id: Option<Id>,
    },
}

impl Event {
    pub fn event_id(&self) -> &Id {
        match self {
            Event::Incident { event_id, .. }
            | Event::Missing { event_id, .. }
            | Event::Referral { event_id, .. } => event_id,
        }
    }
    pub fn at(&self) -> Ms {
        match self {
            Event::Incident { at, .. } | Event::Missing { at, .. } | Event::Referral { at, .. } => {
                *at
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Alerts

#[derive(Clone, Debug)]
pub struct Alert {
    pub alert_id: Rc<str>,
    pub rule: Rule,
    pub child_id: Id,
    pub trigger: Id,
    pub severity: Severity,
    pub raised_at: Ms,
    pub due_at: Ms,
    pub evidence: Rc<[Id]>,
    pub summary: Rc<str>,
    pub status: AlertStatus,
    pub resolved_at: Option<Ms>,
    pub detected_at: Ms,
}

/// `_content`: what a new version must differ in to be one.
fn same_content(a: &Alert, b: &Alert) -> bool {
    a.severity == b.severity
        && a.raised_at == b.raised_at
        && a.evidence == b.evidence
        && a.summary == b.summary
        && a.status == b.status
        && a.resolved_at == b.resolved_at
}

/// `_replace_status`
fn replace_status(a: &Alert, status: AlertStatus, resolved_at: Option<Ms>, now: Ms) -> Alert {
    Alert { status, resolved_at, detected_at: now, ..a.clone() }
}

// ---------------------------------------------------------------------------------------------
// A small map in insertion order (a Python dict of a few entries): assigning an existing key
// keeps its place, removing one keeps the order of the rest.

#[derive(Debug)]
pub struct VecMap<K, V> {
    items: Vec<(K, V)>,
}

impl<K: PartialEq, V> VecMap<K, V> {
    fn new() -> Self {
        VecMap { items: Vec::new() }
    }
    fn position(&self, k: &K) -> Option<usize> {
        self.items.iter().position(|(key, _)| key == k)
    }
    fn get(&self, k: &K) -> Option<&V> {
        self.items.iter().find(|(key, _)| key == k).map(|(_, v)| v)
    }
    fn get_mut(&mut self, k: &K) -> Option<&mut V> {
        self.items.iter_mut().find(|(key, _)| key == k).map(|(_, v)| v)
    }
    fn contains(&self, k: &K) -> bool {
        self.position(k).is_some()
    }
    fn insert(&mut self, k: K, v: V) {
        match self.position(&k) {
            Some(i) => self.items[i].1 = v,
            None => self.items.push((k, v)),
        }
    }
    fn values(&self) -> impl Iterator<Item = &V> {
        self.items.iter().map(|(_, v)| v)
    }
    fn iter(&self) -> impl Iterator<Item = &(K, V)> {
        self.items.iter()
    }
    fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

// ---------------------------------------------------------------------------------------------
// Facts

#[derive(Clone, Debug)]
pub struct DaFact {
    pub(crate) at: Ms,
    incident_id: Id,
    event_id: Id,
    pub(crate) present: bool,
    pub(crate) age: Option<i64>,
    pub(crate) dash_high: bool,
}

#[derive(Clone, Debug)]
pub struct Step {
    pub(crate) at: Ms,
    status: Status,
    pub(crate) risk: Option<Risk>,
    looked_after: bool,
    event_id: Id,
}

#[derive(Clone, Debug)]
struct ReferralFact {
    at: Ms,
    agency: Agency,
    incident_id: Option<Id>,
}

#[derive(Debug)]
pub struct Episode {
    id: Id,
    steps: Vec<Step>,
    /// Index of the first REPORTED step.
    report: Option<usize>,
    /// Index of the first RETURNED step.
    returned: Option<usize>,
    last_at: Ms,
}

impl Episode {
    fn new(id: Id) -> Self {
        Episode { id, steps: Vec::new(), report: None, returned: None, last_at: NEVER }
    }

    fn report(&self) -> Option<&Step> {
        self.report.map(|i| &self.steps[i])
    }

    fn returned(&self) -> Option<&Step> {
        self.returned.map(|i| &self.steps[i])
    }

    /// `Episode.add`: True when the step displaced the first report or return.
    fn add(&mut self, step: Step) -> bool {
        let idx = self.steps.len();
        let (at, status) = (step.at, step.status);
        if at > self.last_at {
            self.last_at = at;
        }
        let first = match status {
            Status::Reported => self.report,
            Status::Returned => self.returned,
            _ => {
                self.steps.push(step);
                return false;
            }
        };
        let displaces = match first {
            None => true,
            Some(f) => {
                let f = &self.steps[f];
                (at, &*step.event_id) < (f.at, &*f.event_id)
            }
        };
        self.steps.push(step);
        if displaces {
            if status == Status::Reported {
                self.report = Some(idx);
            } else {
                self.returned = Some(idx);
            }
            return first.is_some();
        }
        false
    }

    fn looked_after_by(&self, t: Ms) -> bool {
        self.steps.iter().any(|s| s.looked_after && s.at <= t)
    }

    /// The grade of the latest REPORTED or RISK_REVIEWED step at or before `t`.
    fn risk_at(&self, t: Ms) -> Option<Risk> {
        let mut best: Option<&Step> = None;
        for s in &self.steps {
            if s.status.grading() && s.at <= t {
                let better = match best {
                    None => true,
                    Some(b) => {
                        (s.at, s.status.rank(), &*s.event_id)
                            > (b.at, b.status.rank(), &*b.event_id)
                    }
                };
                if better {
                    best = Some(s);
                }
            }
        }
        best.and_then(|b| b.risk)
    }

    /// `_graded_low`: a REPORTED or RISK_REVIEWED step other than `but` graded low.
    fn graded_low(&self, but: Option<usize>) -> bool {
        self.steps
            .iter()
            .enumerate()
            .any(|(i, s)| low(s.risk) && Some(i) != but && s.status.grading())
    }
}

type Pending = BinaryHeap<Reverse<(Ms, Rule, Id)>>;

pub struct Case {
    pub child_id: Id,
    seen: HashMap<Id, Ms>,
    incidents: VecMap<Id, DaFact>,
    episodes: VecMap<Id, Episode>,
    referrals: Vec<ReferralFact>,
    pending: Pending,
    pub alerts: VecMap<(Rule, Id), Alert>,
    sg05: HashMap<Id, bool>,
    latest: Ms,
    pruned_to: Ms,
    oldest: Ms,
    wake: Option<Ms>,
    /// Order of insertion into the engine's states (the order of Python's dict of states).
    seq: u64,
}

impl Case {
    fn new(child_id: Id, seq: u64) -> Self {
        Case {
            child_id,
            seen: HashMap::default(),
            incidents: VecMap::new(),
            episodes: VecMap::new(),
            referrals: Vec::new(),
            pending: BinaryHeap::new(),
            alerts: VecMap::new(),
            sg05: HashMap::default(),
            latest: NEVER,
            pruned_to: NEVER,
            oldest: FOREVER,
            wake: None,
            seq,
        }
    }

    fn first_pending(&self) -> Option<Ms> {
        self.pending.peek().map(|Reverse((due, _, _))| *due)
    }
}

/// What the engine tells the rules besides facts (`Context`).
pub struct Ctx {
    pub p: Params,
    pub until: Option<Ms>,
    pub now: Ms,
    pub texts: Texts,
}

type Out = Vec<Alert>;

fn push(pending: &mut Pending, due: Ms, rule: Rule, trigger: &Id) {
    pending.push(Reverse((due, rule, trigger.clone())));
}

// ---------------------------------------------------------------------------------------------
// Applying events

/// `apply_event`: add one event's facts to the case; return the alert versions this produces.
fn apply_event(case: &mut Case, event: &Event, clock: Ms, ctx: &mut Ctx) -> Out {
    let event_id = event.event_id();
    if case.seen.contains_key(event_id) {
        return Vec::new();
    }
    let at = event.at();
    case.seen.insert(event_id.clone(), at);
    if at > case.latest {
        case.latest = at;
    }
    if at < case.oldest {
        case.oldest = at;
    }
    let in_order = at >= clock;
    match event {
        Event::Referral { agency, incident_id, .. } => {
            let referral = ReferralFact { at, agency: *agency, incident_id: incident_id.clone() };
            case.referrals.push(referral.clone());
            if !in_order {
                return reevaluate(case, clock, ctx, at);
            }
            if case.alerts.is_empty() {
                Vec::new()
            } else {
                resolved_by_referral(case, &referral, ctx)
            }
        }
        Event::Missing { episode_id, status, risk, looked_after, .. } => {
            if !case.episodes.contains(episode_id) {
                case.episodes.insert(episode_id.clone(), Episode::new(episode_id.clone()));
            }
            let step = Step {
                at,
                status: *status,
                risk: *risk,
                looked_after: *looked_after,
                event_id: event_id.clone(),
            };
            let ep = case.episodes.get_mut(episode_id).unwrap();
            let idx = ep.steps.len();
            let moved_anchor = ep.add(step);
            queue_step(case, episode_id, idx, clock, ctx);
            if !in_order || moved_anchor {
                return reevaluate(case, clock, ctx, at.min(clock));
            }
            let mut out = if *status == Status::Reported || *looked_after {
                check_sg04(case, event, ctx)
            } else {
                Vec::new()
            };
            if !case.alerts.is_empty() {
                out.extend(resolved_by_step(case, episode_id, idx, ctx));
            }
            out
        }
        Event::Incident { incident_id, domestic_abuse, dash_high, children, .. } => {
            if !domestic_abuse {
                return Vec::new();
            }
            let child = children
                .iter()
                .find(|(id, _, _)| *id == case.child_id)
                .expect("the incident lists this case's child");
            let fact = DaFact {
                at,
                incident_id: incident_id.clone(),
                event_id: event_id.clone(),
                present: child.1,
                age: child.2,
                dash_high: *dash_high,
            };
            case.incidents.insert(incident_id.clone(), fact.clone());
            queue_incident(case, &fact, clock, ctx);
            if !in_order {
                return reevaluate(case, clock, ctx, at);
            }
            check_sg04(case, event, ctx)
        }
    }
}

/// `_queue_incident`
fn queue_incident(case: &mut Case, f: &DaFact, clock: Ms, ctx: &mut Ctx) {
    let p = ctx.p;
    let (iid, at) = (&f.incident_id, f.at);
    let sg01 = at + p.da_referral_deadline;
    push(&mut case.pending, sg01, SG01, iid);
    let mut sg02 = None;
    if f.age.is_none_or(|a| (4..=17).contains(&a)) {
        let due = ctx.texts.encompass_due(at);
        push(&mut case.pending, due, SG02, iid);
        sg02 = Some(due);
    }
    let reports: Vec<(Ms, Id)> = case
        .episodes
        .values()
        .filter_map(|ep| ep.report().map(|r| (r.at, ep.id.clone())))
        .collect();
    queue_sg08(&mut case.pending, at, iid, &reports, (sg01, sg02), clock, &p);
}

/// `_queue_step`
fn queue_step(case: &mut Case, episode_id: &Id, idx: usize, clock: Ms, ctx: &mut Ctx) {
    let p = ctx.p;
    let ep = case.episodes.get(episode_id).unwrap();
    let step = &ep.steps[idx];
    let eid = &ep.id;
    let pending = &mut case.pending;
    match step.status {
        Status::Returned => {
            let due = step.at + p.return_interview_deadline;
            let rule = if ep.returned == Some(idx) { SG06 } else { MARKER };
            push(pending, due, rule, eid);
            return;
        }
        Status::Interview => return,
        _ => {}
    }
    if let Some(rep_idx) = ep.report {
        if low(step.risk) && !ep.graded_low(Some(idx)) {
            let due = ep.steps[rep_idx].at + p.long_missing_deadline;
            if due >= clock && rep_idx != idx {
                push(pending, due, SG07, eid);
            }
        }
    }
    if step.status != Status::Reported {
        return;
    }
    let at = step.at;
    let sg03 = at + p.review_deadline;
    let sg05 = at + p.repeat_referral_deadline;
    let sg07 = at + p.long_missing_deadline;
    let sg08 = at + p.cumulative_deadline;
    if ep.report != Some(idx) {
        // A re-grade: its times only wake the child (each distinct time once, as a set).
        let mut dues: Vec<Ms> = Vec::with_capacity(4);
        for due in [sg03, sg05, sg07, sg08] {
            if !dues.contains(&due) {
                dues.push(due);
            }
        }
        for due in dues {
            push(pending, due, MARKER, eid);
        }
        return;
    }
    push(pending, sg03, if low(step.risk) { SG03 } else { MARKER }, eid);
    push(pending, sg05, SG05, eid);
    if ep.graded_low(None) {
        push(pending, sg07, SG07, eid);
    } else if sg07 != sg05 {
        push(pending, sg07, MARKER, eid);
    }
    let incidents: Vec<(Ms, Id)> =
        case.incidents.values().map(|f| (f.at, f.incident_id.clone())).collect();
    queue_sg08(pending, at, eid, &incidents, (sg05, Some(sg07)), clock, &p);
}

/// `_queue_sg08`
fn queue_sg08(
    pending: &mut Pending,
    at: Ms,
    trigger: &Id,
    others: &[(Ms, Id)],
    queued: (Ms, Option<Ms>),
    clock: Ms,
    p: &Params,
) {
    let (lo, hi) = (at - p.cumulative_window, at + p.cumulative_window);
    let mut before = false;
    for (other_at, other) in others {
        let other_at = *other_at;
        if !(lo <= other_at && other_at <= hi) {
            continue;
        }
        if other_at <= at {
            before = true;
        }
        if other_at >= at {
            let due = other_at + p.cumulative_deadline;
            if due >= clock {
                push(pending, due, SG08, other);
            }
        }
    }
    let sg08 = at + p.cumulative_deadline;
    if before {
        push(pending, sg08, SG08, trigger);
    } else if sg08 != queued.0 && Some(sg08) != queued.1 {
        push(pending, sg08, MARKER, trigger);
    }
}

/// `advance`: evaluate every deadline the clock has passed.
fn advance(case: &mut Case, clock: Ms, ctx: &mut Ctx) -> Out {
    let mut out = Vec::new();
    while let Some(Reverse((due, _, _))) = case.pending.peek() {
        if *due >= clock {
            break;
        }
        let Reverse((due, rule, trigger)) = case.pending.pop().unwrap();
        if rule == MARKER {
            continue;
        }
        let key = (rule, trigger);
        if case.alerts.contains(&key) {
            continue;
        }
        if let Some(alert) = evaluate(case, rule, &key.1, ctx) {
            if alert.due_at == due {
                case.alerts.insert(key, alert.clone());
                out.push(alert);
            }
        }
    }
    out
}

/// `prune`: drop facts older than `horizon`, and the alerts whose deadline is older; return
/// those alerts (final).
fn prune(case: &mut Case, horizon: Ms) -> Out {
    if horizon <= case.pruned_to {
        return Vec::new();
    }
    case.pruned_to = horizon;
    let mut fin = Vec::new();
    if !case.alerts.is_empty() {
        case.alerts.items.retain(|(_, a)| {
            if a.due_at < horizon {
                fin.push(a.clone());
                false
            } else {
                true
            }
        });
    }
    if horizon <= case.oldest {
        return fin;
    }
    case.incidents.items.retain(|(_, f)| f.at >= horizon);
    let sg05 = &mut case.sg05;
    case.episodes.items.retain(|(k, e)| {
        if e.last_at < horizon {
            sg05.remove(k);
            false
        } else {
            true
        }
    });
    if case.referrals.first().is_some_and(|r| r.at < horizon) {
        case.referrals.retain(|r| r.at >= horizon);
    }
    let mut oldest = FOREVER;
    case.seen.retain(|_, t| {
        if *t < horizon {
            false
        } else {
            if *t < oldest {
                oldest = *t;
            }
            true
        }
    });
    case.oldest = oldest;
    fin
}

/// `quiet_from`
fn quiet_from(case: &Case) -> Ms {
    let mut latest = case.latest;
    for a in case.alerts.values() {
        if a.due_at > latest {
            latest = a.due_at;
        }
    }
    latest
}

// ---------------------------------------------------------------------------------------------
// Resolution by an event in order

/// `_resolved_by_referral`
fn resolved_by_referral(case: &mut Case, r: &ReferralFact, ctx: &Ctx) -> Out {
    let rules: &[Rule] = match r.agency {
        Agency::ChildrensSocialCare => &[SG01, SG05, SG08],
        Agency::School => &[SG02],
        Agency::Other => return Vec::new(),
    };
    let at = r.at;
    let retention = ctx.p.retention;
    let mut out = Vec::new();
    for (key, alert) in case.alerts.items.iter_mut() {
        let rule = key.0;
        if !rules.contains(&rule)
            || at <= alert.due_at
            || at > alert.due_at + retention
            || alert.status == AlertStatus::Withdrawn
            || alert.resolved_at.is_some_and(|x| x <= at)
        {
            continue;
        }
        if (rule == SG01 || rule == SG02) && r.incident_id.as_ref().is_some_and(|i| *i != key.1) {
            continue;
        }
        let new = replace_status(alert, AlertStatus::Resolved, Some(at), ctx.now);
        *alert = new.clone();
        out.push(new);
    }
    out
}

/// `_resolved_by_step`
fn resolved_by_step(case: &mut Case, episode_id: &Id, idx: usize, ctx: &Ctx) -> Out {
    let ep = case.episodes.get(episode_id).unwrap();
    let s = &ep.steps[idx];
    let (at, status) = (s.at, s.status);
    let regrade = status.grading() && raised_grade(s.risk);
    let not_report = ep.report != Some(idx);
    let retention = ctx.p.retention;
    let mut out = Vec::new();
    for (key, alert) in case.alerts.items.iter_mut() {
        if key.1 != *episode_id || alert.status == AlertStatus::Withdrawn {
            continue;
        }
        let due = alert.due_at;
        let resolves = match key.0 {
            SG03 => status == Status::Reviewed && at > due,
            SG06 => status == Status::Interview && at > due,
            SG07 => at > due && (status == Status::Returned || regrade),
            SG04 => regrade && at >= due && not_report,
            _ => continue,
        };
        if !resolves || alert.resolved_at.is_some_and(|x| x <= at) {
            continue;
        }
        if at > due + retention {
            continue;
        }
        let new = replace_status(alert, AlertStatus::Resolved, Some(at), ctx.now);
        *alert = new.clone();
        out.push(new);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Re-evaluation after a late event

/// `_reevaluate`
fn reevaluate(case: &mut Case, clock: Ms, ctx: &mut Ctx, since: Ms) -> Out {
    let mut out = refresh(case, ctx, since);
    let p = ctx.p;
    let mut candidates: Vec<(Ms, Rule, Id)> = Vec::new();
    for f in case.incidents.values() {
        candidates.push((f.at + p.da_referral_deadline, SG01, f.incident_id.clone()));
        candidates.push((ctx.texts.encompass_due(f.at), SG02, f.incident_id.clone()));
        candidates.push((f.at + p.cumulative_deadline, SG08, f.incident_id.clone()));
    }
    for ep in case.episodes.values() {
        if let Some(rep) = ep.report() {
            let r = rep.at;
            candidates.push((r + p.review_deadline, SG03, ep.id.clone()));
            candidates.push((r + p.repeat_referral_deadline, SG05, ep.id.clone()));
            candidates.push((r + p.long_missing_deadline, SG07, ep.id.clone()));
            candidates.push((r + p.cumulative_deadline, SG08, ep.id.clone()));
            candidates.push((r, SG04, ep.id.clone()));
        }
        if let Some(ret) = ep.returned() {
            candidates.push((ret.at + p.return_interview_deadline, SG06, ep.id.clone()));
        }
    }
    candidates.sort();
    for (due, rule, trigger) in candidates {
        let key = (rule, trigger);
        if case.alerts.contains(&key) {
            continue;
        }
        if due >= clock && rule != SG04 {
            case.pending.push(Reverse((due, rule, key.1)));
            continue;
        }
        if let Some(alert) = evaluate(case, rule, &key.1, ctx) {
            case.alerts.insert(key, alert.clone());
            out.push(alert);
        }
    }
    out
}

/// `_refresh` with `check_breach=True` (the only way it is called).
fn refresh(case: &mut Case, ctx: &mut Ctx, since: Ms) -> Out {
    let mut out = Vec::new();
    let keys: Vec<(Rule, Id)> = case.alerts.iter().map(|(k, _)| k.clone()).collect();
    for key in keys {
        let alert = case.alerts.get(&key).unwrap().clone();
        let (rule, trigger) = (key.0, &key.1);
        let new = if alert.due_at >= since {
            match evaluate(case, rule, trigger, ctx) {
                None => {
                    if alert.status == AlertStatus::Withdrawn {
                        continue;
                    }
                    if !case.incidents.contains(trigger) && !case.episodes.contains(trigger) {
                        continue;
                    }
                    let met = met_at(case, &alert);
                    replace_status(&alert, AlertStatus::Withdrawn, met, ctx.now)
                }
                Some(mut fresh) => {
                    if alert.status != AlertStatus::Withdrawn {
                        let resolved_at = earliest(fresh.resolved_at, alert.resolved_at);
                        if resolved_at != fresh.resolved_at {
                            fresh =
                                replace_status(&fresh, AlertStatus::Resolved, resolved_at, ctx.now);
                        }
                    }
                    if same_content(&fresh, &alert) {
                        continue;
                    }
                    fresh
                }
            }
        } else {
            if alert.status == AlertStatus::Withdrawn {
                continue;
            }
            let found = resolution(case, rule, trigger, alert.due_at, ctx.p.retention);
            let resolved_at = earliest(found, alert.resolved_at);
            if resolved_at == alert.resolved_at {
                continue;
            }
            replace_status(&alert, AlertStatus::Resolved, resolved_at, ctx.now)
        };
        case.alerts.insert(key, new.clone());
        out.push(new);
    }
    out
}

fn earliest(a: Option<Ms>, b: Option<Ms>) -> Option<Ms> {
    match (a, b) {
        (None, b) => b,
        (a, None) => a,
        (Some(a), Some(b)) => Some(a.min(b)),
    }
}

/// `_met_at`: when a withdrawn alert's action was in fact taken.
fn met_at(case: &Case, alert: &Alert) -> Option<Ms> {
    let (rule, due) = (alert.rule, alert.due_at);
    if matches!(rule, SG01 | SG02 | SG05 | SG08) {
        let agency = if rule == SG02 { Agency::School } else { Agency::ChildrensSocialCare };
        case.referrals.iter().filter(|r| r.agency == agency && r.at <= due).map(|r| r.at).max()
    } else {
        let ep = case.episodes.get(&alert.trigger)?;
        ep.steps.iter().filter(|s| s.at <= due && s.status != Status::Reported).map(|s| s.at).max()
    }
}

// ---------------------------------------------------------------------------------------------
// SG04: immediate

/// `_check_sg04`
fn check_sg04(case: &mut Case, event: &Event, ctx: &mut Ctx) -> Out {
    let lookback = ctx.p.lookback;
    let (lo, hi, only): (Ms, Ms, Option<&Id>) = match event {
        Event::Missing { at, status, looked_after, episode_id, .. } => {
            if *status == Status::Reported {
                (*at, *at + lookback, None)
            } else if *looked_after {
                let Some(own) = case.episodes.get(episode_id) else {
                    return Vec::new();
                };
                let Some(rep) = own.report() else {
                    return Vec::new();
                };
                if *at > rep.at {
                    return Vec::new();
                }
                (rep.at, rep.at, Some(episode_id))
            } else {
                return Vec::new();
            }
        }
        Event::Incident { at, domestic_abuse: true, .. } => (*at, *at + lookback, None),
        _ => return Vec::new(),
    };
    let triggers: Vec<Id> = case
        .episodes
        .values()
        .filter(|ep| only.is_none_or(|id| *id == ep.id))
        .filter(|ep| {
            ep.report().is_some_and(|rep| lo <= rep.at && rep.at <= hi && undergraded(rep.risk))
        })
        .map(|ep| ep.id.clone())
        .collect();
    let mut out = Vec::new();
    for trigger in triggers {
        let Some(alert) = evaluate(case, SG04, &trigger, ctx) else {
            continue;
        };
        let key = (SG04, trigger);
        let new = match case.alerts.get(&key) {
            None => true,
            Some(known) => !same_content(known, &alert),
        };
        if new {
            case.alerts.insert(key, alert.clone());
            out.push(alert);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The rules: each gives the alert's makings if the (rule, trigger) is breached.

/// What a summary is built from (the `facts` of Python's rules).
pub enum Facts {
    Incident(DaFact),
    Report(Step),
    Prior(Step, usize),
    Repeat(Step, usize),
    Returned(Step),
    LongMissing(Step, Risk),
    Cumulative { later_incident: bool, later_at: Ms, earlier_at: Ms },
}

struct Found {
    severity: Severity,
    due: Ms,
    evidence: Vec<Id>,
    facts: Facts,
}

/// `_evaluate`
fn evaluate(case: &mut Case, rule: Rule, trigger: &Id, ctx: &mut Ctx) -> Option<Alert> {
    let p = ctx.p;
    let found = match rule {
        SG01 => sg01(case, trigger, &p),
        SG02 => sg02(case, trigger, ctx),
        SG03 => sg03(case, trigger, &p),
        SG04 => sg04(case, trigger, &p),
        SG05 => sg05(case, trigger, &p),
        SG06 => sg06(case, trigger, &p),
        SG07 => sg07(case, trigger, &p),
        SG08 => sg08(case, trigger, &p),
        _ => None,
    }?;
    if ctx.until.is_some_and(|u| found.due > u) {
        return None;
    }
    let resolved_at = resolution(case, rule, trigger, found.due, p.retention);
    let summary = ctx.texts.summary(rule, found.due, &found.facts);
    Some(Alert {
        alert_id: crate::text::alert_id(rule, &case.child_id, trigger).into(),
        rule,
        child_id: case.child_id.clone(),
        trigger: trigger.clone(),
        severity: found.severity,
        raised_at: found.due,
        due_at: found.due,
        evidence: found.evidence.into(),
        summary: summary.into(),
        status: if resolved_at.is_some() { AlertStatus::Resolved } else { AlertStatus::Raised },
        resolved_at,
        detected_at: ctx.now,
    })
}

/// `_referral_met`: a referral to `agency` carrying `incident_id` by `due`, or any in
/// [start, due].
fn referral_met(case: &Case, agency: Agency, incident_id: Option<&Id>, start: Ms, due: Ms) -> bool {
    case.referrals.iter().any(|r| {
        r.agency == agency
            && r.at <= due
            && (r.at >= start
                || incident_id.is_some_and(|i| r.incident_id.as_ref().is_some_and(|x| x == i)))
    })
}

fn sg01(case: &Case, trigger: &Id, p: &Params) -> Option<Found> {
    let f = case.incidents.get(trigger)?;
    let due = f.at + p.da_referral_deadline;
    if referral_met(case, Agency::ChildrensSocialCare, Some(&f.incident_id), f.at, due) {
        return None;
    }
    let severity = if f.present || f.dash_high { Severity::High } else { Severity::Medium };
    Some(Found {
        severity,
        due,
        evidence: vec![f.event_id.clone()],
        facts: Facts::Incident(f.clone()),
    })
}

fn sg02(case: &Case, trigger: &Id, ctx: &mut Ctx) -> Option<Found> {
    let f = case.incidents.get(trigger)?;
    if f.age.is_some_and(|a| !(4..=17).contains(&a)) {
        return None;
    }
    let due = ctx.texts.encompass_due(f.at);
    if referral_met(case, Agency::School, Some(&f.incident_id), f.at, due) {
        return None;
    }
    Some(Found {
        severity: Severity::Medium,
        due,
        evidence: vec![f.event_id.clone()],
        facts: Facts::Incident(f.clone()),
    })
}

fn sg03(case: &Case, trigger: &Id, p: &Params) -> Option<Found> {
    let ep = case.episodes.get(trigger)?;
    let rep = ep.report()?;
    if !low(rep.risk) {
        return None;
    }
    let r = rep.at;
    let due = r + p.review_deadline;
    for s in &ep.steps {
        if (s.status == Status::Reviewed && r <= s.at && s.at <= due)
            || (s.status == Status::Returned && s.at < due)
        {
            return None;
        }
    }
    let severity = if ep.looked_after_by(due) { Severity::High } else { Severity::Medium };
    Some(Found {
        severity,
        due,
        evidence: vec![rep.event_id.clone()],
        facts: Facts::Report(rep.clone()),
    })
}

fn sg04(case: &Case, trigger: &Id, p: &Params) -> Option<Found> {
    let ep = case.episodes.get(trigger)?;
    let rep = ep.report()?;
    if !undergraded(rep.risk) || !ep.looked_after_by(rep.at) {
        return None;
    }
    let lo = rep.at - p.lookback;
    let mut prior: Vec<(Ms, Id)> = Vec::new();
    for other in case.episodes.values() {
        if other.id == ep.id {
            continue;
        }
        if let Some(o) = other.report() {
            if lo <= o.at && o.at <= rep.at {
                prior.push((o.at, o.event_id.clone()));
            }
        }
    }
    for f in case.incidents.values() {
        if lo <= f.at && f.at <= rep.at {
            prior.push((f.at, f.event_id.clone()));
        }
    }
    if prior.is_empty() {
        return None;
    }
    prior.sort();
    let n = prior.len();
    let mut evidence = Vec::with_capacity(n + 1);
    evidence.push(rep.event_id.clone());
    evidence.extend(prior.into_iter().map(|(_, e)| e));
    Some(Found {
        severity: Severity::High,
        due: rep.at,
        evidence,
        facts: Facts::Prior(rep.clone(), n),
    })
}

/// `_reports_between`: the first reports of episodes in [lo, hi].
fn reports_between(case: &Case, lo: Ms, hi: Ms) -> Vec<&Step> {
    case.episodes.values().filter_map(|e| e.report()).filter(|r| lo <= r.at && r.at <= hi).collect()
}

/// `_sg05_opens`: decide, once and in report order, whether this episode's report opens an
/// obligation.
fn sg05_opens(case: &mut Case, trigger: &Id, p: &Params) -> bool {
    if let Some(decided) = case.sg05.get(trigger) {
        return *decided;
    }
    let r = case.episodes.get(trigger).unwrap().report().unwrap().at;
    let lo = r - p.lookback;
    let enough = reports_between(case, lo, r).len() as i64 >= p.repeat_episodes;
    let opens = enough
        && !case.sg05.iter().any(|(other_id, opened)| {
            *opened
                && other_id != trigger
                && case
                    .episodes
                    .get(other_id)
                    .and_then(|o| o.report())
                    .is_some_and(|o| lo <= o.at && (o.at, &**other_id) < (r, &**trigger))
        });
    case.sg05.insert(trigger.clone(), opens);
    opens
}

fn sg05(case: &mut Case, trigger: &Id, p: &Params) -> Option<Found> {
    case.episodes.get(trigger)?.report()?;
    if !sg05_opens(case, trigger, p) {
        return None;
    }
    let rep = case.episodes.get(trigger).unwrap().report().unwrap();
    let r = rep.at;
    let due = r + p.repeat_referral_deadline;
    if referral_met(case, Agency::ChildrensSocialCare, None, r - p.lookback, due) {
        return None;
    }
    let mut reports = reports_between(case, r - p.lookback, r);
    // sorted() of the Step tuples: (at, status, risk, looked_after, event_id); every one is a
    // REPORTED step. A risk of None sorts first (Python could not compare it: invalid input).
    reports.sort_by(|a, b| {
        (a.at, a.risk, a.looked_after, &*a.event_id).cmp(&(
            b.at,
            b.risk,
            b.looked_after,
            &*b.event_id,
        ))
    });
    let evidence: Vec<Id> = reports.iter().map(|s| s.event_id.clone()).collect();
    let n = reports.len();
    Some(Found { severity: Severity::High, due, evidence, facts: Facts::Repeat(rep.clone(), n) })
}

fn sg06(case: &Case, trigger: &Id, p: &Params) -> Option<Found> {
    let ep = case.episodes.get(trigger)?;
    let returned = ep.returned()?;
    let ret = returned.at;
    let due = ret + p.return_interview_deadline;
    for s in &ep.steps {
        if s.status == Status::Interview && ret <= s.at && s.at <= due {
            return None;
        }
    }
    let lo = ret - p.lookback;
    let mut others = 0i64;
    for other in case.episodes.values() {
        if let Some(rep) = other.report() {
            // `rep is not own`: another episode's report (an episode's own is its only one).
            if lo <= rep.at && rep.at <= ret && other.id != ep.id {
                others += 1;
            }
        }
    }
    let high = ep.looked_after_by(due) || others >= p.return_repeat_episodes;
    let severity = if high { Severity::High } else { Severity::Medium };
    Some(Found {
        severity,
        due,
        evidence: vec![returned.event_id.clone()],
        facts: Facts::Returned(returned.clone()),
    })
}

fn sg07(case: &Case, trigger: &Id, p: &Params) -> Option<Found> {
    let ep = case.episodes.get(trigger)?;
    let rep = ep.report()?;
    let due = rep.at + p.long_missing_deadline;
    if ep.returned().is_some_and(|r| r.at <= due) {
        return None;
    }
    let risk = ep.risk_at(due);
    if !low(risk) {
        return None;
    }
    Some(Found {
        severity: Severity::High,
        due,
        evidence: vec![rep.event_id.clone()],
        facts: Facts::LongMissing(rep.clone(), risk.unwrap()),
    })
}

fn sg08(case: &Case, trigger: &Id, p: &Params) -> Option<Found> {
    let (later_at, later_event, others, later_incident) =
        if let Some(f) = case.incidents.get(trigger) {
            let others: Vec<(Ms, Id)> = reports_between(case, f.at - p.cumulative_window, f.at)
                .into_iter()
                .map(|s| (s.at, s.event_id.clone()))
                .collect();
            (f.at, f.event_id.clone(), others, true)
        } else {
            let ep = case.episodes.get(trigger)?;
            let rep = ep.report()?;
            let lo = rep.at - p.cumulative_window;
            let others: Vec<(Ms, Id)> = case
                .incidents
                .values()
                .filter(|i| lo <= i.at && i.at <= rep.at)
                .map(|i| (i.at, i.event_id.clone()))
                .collect();
            (rep.at, rep.event_id.clone(), others, false)
        };
    let (earlier_at, earlier_event) = others.into_iter().min()?;
    let due = later_at + p.cumulative_deadline;
    if referral_met(case, Agency::ChildrensSocialCare, None, earlier_at, due) {
        return None;
    }
    Some(Found {
        severity: Severity::High,
        due,
        evidence: vec![later_event, earlier_event],
        facts: Facts::Cumulative { later_incident, later_at, earlier_at },
    })
}

// ---------------------------------------------------------------------------------------------
// Resolution: the action that would have met the rule, taken after its deadline.

/// `_resolution`: the first action after `due`, up to `window` after it.
fn resolution(case: &Case, rule: Rule, trigger: &Id, due: Ms, window: Ms) -> Option<Ms> {
    first_action(case, rule, trigger, due).filter(|found| *found <= due + window)
}

/// `_first_action`
fn first_action(case: &Case, rule: Rule, trigger: &Id, due: Ms) -> Option<Ms> {
    if rule == SG01 || rule == SG02 {
        let agency = if rule == SG02 { Agency::School } else { Agency::ChildrensSocialCare };
        return case
            .referrals
            .iter()
            .filter(|r| {
                r.at > due
                    && r.agency == agency
                    && r.incident_id.as_ref().is_none_or(|i| i == trigger)
            })
            .map(|r| r.at)
            .min();
    }
    if rule == SG05 || rule == SG08 {
        return case
            .referrals
            .iter()
            .filter(|r| r.at > due && r.agency == Agency::ChildrensSocialCare)
            .map(|r| r.at)
            .min();
    }
    let ep = case.episodes.get(trigger)?;
    let steps = ep.steps.iter().enumerate();
    match rule {
        SG03 => steps
            .filter(|(_, s)| s.status == Status::Reviewed && s.at > due)
            .map(|(_, s)| s.at)
            .min(),
        SG06 => steps
            .filter(|(_, s)| s.status == Status::Interview && s.at > due)
            .map(|(_, s)| s.at)
            .min(),
        SG07 => steps
            .filter(|(_, s)| {
                s.at > due
                    && (s.status == Status::Returned
                        || (s.status.grading() && raised_grade(s.risk)))
            })
            .map(|(_, s)| s.at)
            .min(),
        _ => steps
            .filter(|(i, s)| {
                s.status.grading() && raised_grade(s.risk) && s.at >= due && Some(*i) != ep.report
            })
            .map(|(_, s)| s.at)
            .min(),
    }
}

// ---------------------------------------------------------------------------------------------
// The engine (`Detector`), for the inline backtest: every child in one process.

#[derive(Default, Clone, Copy)]
pub struct Stats {
    pub events: u64,
    pub duplicates: u64,
    pub late: u64,
    pub too_late: u64,
    pub alert_versions: u64,
}

pub struct Detector {
    pub ctx: Ctx,
    pub clock: Ms,
    pub max_seen: Ms,
    pub stats: Stats,
    states: HashMap<Id, Case>,
    seq: u64,
    wakeups: BinaryHeap<Reverse<Ms>>,
    waking: HashMap<Ms, Vec<Id>>,
    fin: Vec<Alert>,
}

impl Detector {
    pub fn new(ctx: Ctx) -> Self {
        Detector {
            ctx,
            clock: NEVER,
            max_seen: NEVER,
            stats: Stats::default(),
            states: HashMap::default(),
            seq: 0,
            wakeups: BinaryHeap::new(),
            waking: HashMap::default(),
            fin: Vec::new(),
        }
    }

    /// `Detector.feed`: apply one event, then move the clock to its watermark. `now` is the
    /// processing time, asked for only when the event is not too late (as Python does).
    pub fn feed(&mut self, event: &Event, now: &mut dyn FnMut() -> Ms) -> Out {
        self.stats.events += 1;
        let at = event.at();
        let clock = self.clock;
        let retention = self.ctx.p.retention;
        if at < clock - retention {
            self.stats.too_late += 1;
            return Vec::new();
        }
        self.ctx.now = now();
        let mut out = Vec::new();
        // An incident's children, each once in the order listed; another event's one child.
        let distinct: Vec<Id>;
        let children: &[Id] = match event {
            Event::Incident { children: kids, .. } => {
                let mut ids: Vec<Id> = Vec::with_capacity(kids.len());
                for (id, _, _) in kids {
                    if !ids.contains(id) {
                        ids.push(id.clone());
                    }
                }
                distinct = ids;
                &distinct
            }
            Event::Missing { child_id, .. } | Event::Referral { child_id, .. } => {
                std::slice::from_ref(child_id)
            }
        };
        let mut duplicate = false;
        for child_id in children {
            if !self.states.contains_key(child_id) {
                self.states.insert(child_id.clone(), Case::new(child_id.clone(), self.seq));
                self.seq += 1;
            } else if self.states[child_id].seen.contains_key(event.event_id()) {
                duplicate = true;
                continue;
            }
            let state = self.states.get_mut(child_id).unwrap();
            let found = apply_event(state, event, clock, &mut self.ctx);
            out.extend(found);
            let wake = match state.first_pending() {
                Some(due) if due < state.latest + retention => due,
                _ => next_wake(state, retention),
            };
            if state.wake.is_none_or(|current| wake < current) {
                state.wake = Some(wake);
                wake_at(&mut self.wakeups, &mut self.waking, wake, child_id);
            }
        }
        if duplicate {
            self.stats.duplicates += 1;
        } else if at < clock {
            self.stats.late += 1;
        }
        if at > self.max_seen {
            self.max_seen = at;
            let mut target = at - self.ctx.p.lateness;
            if let Some(until) = self.ctx.until {
                if target > until + 1 {
                    target = until + 1;
                }
            }
            if target > self.clock {
                if self.wakeups.peek().is_some_and(|Reverse(w)| *w < target) {
                    out.extend(self.advance(target));
                } else {
                    self.clock = target;
                }
            }
        }
        self.stats.alert_versions += out.len() as u64;
        out
    }

    /// `Detector.finish`: advance the clock to `until` and fire every deadline up to it.
    pub fn finish(&mut self, until: Option<Ms>, now: Ms) -> Out {
        let until = match until.or(self.ctx.until) {
            Some(u) => u,
            None => self.max_seen,
        };
        if until == NEVER {
            return Vec::new();
        }
        self.ctx.until = Some(self.ctx.until.map_or(until, |u| u.min(until)));
        self.ctx.now = now;
        let out = self.advance(until + 1);
        self.stats.alert_versions += out.len() as u64;
        out
    }

    /// `Detector.drain_final`
    pub fn drain_final(&mut self) -> Out {
        std::mem::take(&mut self.fin)
    }

    /// `Detector.alerts`: the latest version of every alert not yet drained, by
    /// (raised_at, rule, child, trigger); a stable sort over the final ones, then the
    /// children's in the order they came.
    pub fn alerts(&self) -> Out {
        let mut cases: Vec<&Case> = self.states.values().collect();
        cases.sort_by_key(|c| c.seq);
        let mut all: Vec<Alert> = self.fin.clone();
        for case in cases {
            all.extend(case.alerts.values().cloned());
        }
        all.sort_by(|a, b| {
            (a.raised_at, a.rule, &*a.child_id, &*a.trigger).cmp(&(
                b.raised_at,
                b.rule,
                &*b.child_id,
                &*b.trigger,
            ))
        });
        all
    }

    /// `Detector._advance`
    fn advance(&mut self, mut target: Ms) -> Out {
        if let Some(until) = self.ctx.until {
            if target > until + 1 {
                target = until + 1;
            }
        }
        if target <= self.clock {
            return Vec::new();
        }
        self.clock = target;
        let mut out = Vec::new();
        let retention = self.ctx.p.retention;
        let horizon = target - retention;
        while let Some(&Reverse(wake)) = self.wakeups.peek() {
            if wake >= target {
                break;
            }
            self.wakeups.pop();
            let mut children = self.waking.remove(&wake).unwrap_or_default();
            if children.len() > 1 {
                children.sort();
            }
            for child_id in children {
                let Some(state) = self.states.get_mut(&child_id) else {
                    continue;
                };
                if state.wake != Some(wake) {
                    continue;
                }
                if state.first_pending().is_some_and(|due| due < target) {
                    out.extend(advance(state, target, &mut self.ctx));
                }
                if state.latest < horizon || horizon >= state.pruned_to.saturating_add(DAY) {
                    let dropped = prune(state, horizon);
                    self.fin.extend(dropped);
                    if state.seen.is_empty() && state.alerts.is_empty() {
                        self.states.remove(&child_id);
                        continue;
                    }
                }
                let next = match state.first_pending() {
                    Some(due) if due < state.latest + retention => due,
                    _ => next_wake(state, retention),
                };
                if next < target {
                    self.fin.extend(state.alerts.values().cloned());
                    self.states.remove(&child_id);
                    continue;
                }
                state.wake = Some(next);
                wake_at(&mut self.wakeups, &mut self.waking, next, &child_id);
            }
        }
        out
    }
}

fn wake_at(
    wakeups: &mut BinaryHeap<Reverse<Ms>>,
    waking: &mut HashMap<Ms, Vec<Id>>,
    wake: Ms,
    child: &Id,
) {
    match waking.get_mut(&wake) {
        Some(children) => children.push(child.clone()),
        None => {
            waking.insert(wake, vec![child.clone()]);
            wakeups.push(Reverse(wake));
        }
    }
}

/// `_next_wake`: the earliest open deadline, or when the child has been quiet for the
/// retention, whichever comes first.
fn next_wake(state: &Case, retention: Ms) -> Ms {
    match state.first_pending() {
        Some(due) if due < state.latest + retention => due,
        Some(due) => due.min(quiet_from(state) + retention),
        None => quiet_from(state) + retention,
    }
}
