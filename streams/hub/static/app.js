// Safeguarding hub page. Plain JavaScript, no framework, no CDN (works offline).
// Text from the server is always set with textContent, never parsed as HTML.
// A child's id appears only in the path of an API call and in this page's #hash,
// never in a query string.
'use strict';

(() => {
  const TZ = 'Europe/London';
  const SEVERITY_RANK = { HIGH: 0, MEDIUM: 1, LOW: 2 };
  const STATUS_LABEL = { RAISED: 'Raised', RESOLVED: 'Resolved', WITHDRAWN: 'Withdrawn' };
  const WORKFLOW_LABEL = {
    NEW: 'New', ACKNOWLEDGED: 'Acknowledged', ASSIGNED: 'Assigned', CLOSED: 'Closed',
  };
  const OUTCOME_LABEL = {
    REFERRED: 'Referred',
    SAFEGUARDING_ACTION_TAKEN: 'Safeguarding action taken',
    NO_FURTHER_ACTION: 'No further action',
    DUPLICATE: 'Duplicate',
    FALSE_POSITIVE: 'False positive',
  };
  const STEP_LABEL = {
    REPORTED: 'reported missing',
    RISK_REVIEWED: 'risk reviewed',
    RETURNED: 'returned',
    RETURN_INTERVIEW: 'return home interview held',
  };
  const AGENCY_LABEL = {
    CHILDRENS_SOCIAL_CARE: "children's social care",
    SCHOOL: 'school (Operation Encompass)',
    MARAC: 'MARAC',
    HEALTH: 'health',
    EARLY_HELP: 'early help',
  };
  const GRADE_LABEL = {
    good: 'Good', requires_improvement: 'Requires improvement', inadequate: 'Inadequate',
  };
  const ACTION_TITLE = {
    ASSIGN: 'Assign alert', NOTE: 'Add a note', CLOSE: 'Close alert',
  };

  const hub = {
    session: null,
    alerts: new Map(), // alert_id -> alert view (JSON)
    rows: new Map(), // alert_id -> { node, version }
    version: 0,
    filters: { severity: '', rule: '', status: '', workflow: '' },
    timelineChild: null,
    dialog: null, // { kind, alertId }
    fresh: new Set(),
    source: null,
  };

  const $ = (id) => document.getElementById(id);

  // ---- helpers ------------------------------------------------------------------------

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    if (props) {
      for (const [key, value] of Object.entries(props)) {
        if (value === undefined || value === null || value === false) continue;
        if (key === 'text') node.textContent = value;
        else if (key === 'className') node.className = value;
        else if (key === 'dataset') Object.assign(node.dataset, value);
        else node.setAttribute(key, value === true ? '' : String(value));
      }
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  const dateFormat = new Intl.DateTimeFormat('en-GB', {
    timeZone: TZ, weekday: 'short', day: 'numeric', month: 'short', year: 'numeric',
    hour: '2-digit', minute: '2-digit', timeZoneName: 'short',
  });
  const relativeFormat = new Intl.RelativeTimeFormat('en-GB', { numeric: 'auto' });
  // [unit, its length in ms, use it below this many ms]: "38 hours ago" is more useful to a
  // practitioner than "2 days ago", so hours run up to two days. Counts are truncated, not
  // rounded: "missed 1 hour ago" means at least an hour.
  const MINUTE_MS = 60e3;
  const HOUR_MS = 60 * MINUTE_MS;
  const DAY_MS = 24 * HOUR_MS;
  const UNITS = [
    ['minute', MINUTE_MS, 2 * HOUR_MS],
    ['hour', HOUR_MS, 2 * DAY_MS],
    ['day', DAY_MS, 14 * DAY_MS],
    ['week', 7 * DAY_MS, 9 * 7 * DAY_MS],
    ['month', 30.44 * DAY_MS, 730 * DAY_MS],
    ['year', 365.25 * DAY_MS, Infinity],
  ];

  function localTime(iso) {
    return dateFormat.format(new Date(iso));
  }

  function relative(iso) {
    const diff = Date.parse(iso) - Date.now();
    const size = Math.abs(diff);
    if (size < MINUTE_MS) return diff < 0 ? 'just now' : 'in under a minute';
    const [unit, ms] = UNITS.find(([, , below]) => size < below);
    const count = Math.trunc(size / ms);
    return relativeFormat.format(diff < 0 ? -count : count, unit);
  }

  function timeNode(iso) {
    return el('span', { className: 'when' },
      el('time', { datetime: iso, text: localTime(iso) }), ' ',
      el('span', { className: 'rel', dataset: { rel: iso }, text: `(${relative(iso)})` }));
  }

  function humanize(code) {
    return String(code).toLowerCase().replace(/_/g, ' ');
  }

  function childHref(childId) {
    return `#/children/${encodeURIComponent(childId)}`;
  }

  function announce(text) {
    const node = $('announcer');
    node.textContent = '';
    // A new text node in a live region is read out; the delay lets readers notice the change.
    setTimeout(() => { node.textContent = text; }, 50);
  }

  class ApiError extends Error {
    constructor(message, status) { super(message); this.status = status; }
  }

  async function api(path, options = {}) {
    const headers = { Accept: 'application/json' };
    const init = { method: options.method || 'GET', headers, credentials: 'same-origin' };
    if (options.body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(options.body);
    }
    if (init.method !== 'GET' && hub.session) headers['X-CSRF-Token'] = hub.session.csrf_token;
    const response = await fetch(path, init);
    if (response.status === 401) {
      window.location.reload(); // the page answers with the sign-in form
      throw new ApiError('Signed out', 401);
    }
    let data = null;
    try { data = await response.json(); } catch (_) { data = null; }
    if (!response.ok) {
      throw new ApiError((data && data.error) || `Request failed (${response.status})`,
        response.status);
    }
    return data;
  }

  // ---- alert list ---------------------------------------------------------------------

  function compareAlerts(a, b) {
    return (SEVERITY_RANK[a.severity] ?? 9) - (SEVERITY_RANK[b.severity] ?? 9)
      || Date.parse(a.raised_at) - Date.parse(b.raised_at)
      || (a.alert_id < b.alert_id ? -1 : a.alert_id > b.alert_id ? 1 : 0);
  }

  function matches(alert) {
    const f = hub.filters;
    return (!f.severity || alert.severity === f.severity)
      && (!f.rule || alert.rule_id === f.rule)
      && (!f.status || alert.status === f.status)
      && (!f.workflow || alert.workflow === f.workflow);
  }

  function fact(label, ...value) {
    return [el('dt', { text: label }), el('dd', null, ...value)];
  }

  function actionLine(action) {
    const who = action.user;
    switch (action.kind) {
      case 'ACKNOWLEDGE': return `Acknowledged by ${who}`;
      case 'ASSIGN': return `Assigned to ${action.assignee} by ${who}`;
      case 'NOTE': return `Note by ${who}: ${action.note}`;
      case 'CLOSE': return `Closed by ${who}: ${OUTCOME_LABEL[action.outcome] || action.outcome}`
        + (action.note ? ` (${action.note})` : '');
      default: return `${action.kind} by ${who}`;
    }
  }

  function renderAlert(alert) {
    const finished = alert.status !== 'RAISED' || alert.workflow === 'CLOSED';
    const titleId = `alert-title-${alert.alert_id}`;
    const label = `${alert.rule_title}, child ${alert.child_id}`;
    const closed = alert.workflow === 'CLOSED';
    const notes = alert.actions.filter((a) => a.kind === 'NOTE');

    const facts = el('dl', { className: 'facts' },
      fact('Child', el('a', {
        className: 'child-link', href: childHref(alert.child_id), 'data-testid': 'child-link',
        'aria-label': `Open the timeline of child ${alert.child_id}`, text: alert.child_id,
      })),
      fact('Missed since', timeNode(alert.raised_at)),
      fact('Due', timeNode(alert.due_at)),
      fact('About', el('code', { text: alert.trigger_id })),
      fact('Evidence', el('ul', { className: 'evidence', 'data-testid': 'evidence' },
        alert.evidence.map((id) => el('li', { text: id })))),
      fact('Do now', el('span', {
        className: 'recommended', 'data-testid': 'recommended-action',
        text: alert.recommended_action,
      })),
      alert.resolved_at
        ? fact(alert.status === 'WITHDRAWN' ? 'Withdrawn' : 'Resolved', timeNode(alert.resolved_at))
        : null,
      alert.acknowledged
        ? fact('Acknowledged', `${alert.acknowledged.user}, `, timeNode(alert.acknowledged.at))
        : null,
      alert.assignee
        ? fact('Assigned to', el('span', { 'data-testid': 'assignee', text: alert.assignee }))
        : null,
      alert.closed
        ? fact('Closed', el('span', {
          'data-testid': 'closed-outcome',
          text: `${OUTCOME_LABEL[alert.closed.outcome] || alert.closed.outcome} by ${alert.closed.user}`
            + (alert.closed.note ? ` (${alert.closed.note})` : ''),
        }), ', ', timeNode(alert.closed.at))
        : null,
    );

    const notesBlock = notes.length
      ? el('details', { className: 'notes', 'data-testid': 'notes' },
        el('summary', { text: `Notes (${notes.length})` }),
        el('ol', null, notes.map((n) => el('li', null, `${n.user}: ${n.note} `,
          el('span', { className: 'rel', text: `(${localTime(n.at)})` })))))
      : null;

    const button = (action, text, testid, disabled) => el('button', {
      type: 'button', dataset: { action }, 'data-testid': testid, disabled,
      'aria-label': `${text.replace('…', '')}: ${label}`, text,
    });

    const actions = el('div', { className: 'actions', role: 'group', 'aria-label': `Actions on ${label}` },
      button('ACKNOWLEDGE', 'Acknowledge', 'ack-button', Boolean(alert.acknowledged) || closed),
      button('ASSIGN', 'Assign…', 'assign-button', closed),
      button('NOTE', 'Add note…', 'note-button', false),
      button('CLOSE', 'Close…', 'close-button', closed));

    const classes = ['alert', `sev-${alert.severity}`, `status-${alert.status}`, `wf-${alert.workflow}`];
    if (finished) classes.push('finished');
    if (hub.fresh.has(alert.alert_id)) classes.push('fresh');

    return el('li', {
      className: classes.join(' '), 'data-testid': 'alert-row',
      dataset: { alertId: alert.alert_id, severity: alert.severity, status: alert.status, workflow: alert.workflow },
    }, el('article', { 'aria-labelledby': titleId },
      el('div', { className: 'alert-head' },
        el('span', {
          className: `badge sev sev-${alert.severity}`, 'data-testid': 'severity-badge',
          text: alert.severity,
        }),
        el('h3', { id: titleId }, alert.rule_title, ' ',
          el('span', { className: 'rule-id', text: alert.rule_id })),
        el('span', {
          className: `badge status status-${alert.status}`, 'data-testid': 'status-badge',
          text: STATUS_LABEL[alert.status] || alert.status,
        }),
        el('span', {
          className: `badge workflow wf-${alert.workflow}`, 'data-testid': 'workflow-badge',
          text: WORKFLOW_LABEL[alert.workflow] || alert.workflow,
        })),
      el('p', { className: 'summary', 'data-testid': 'summary', text: alert.summary }),
      facts, notesBlock, actions));
  }

  function renderAlerts() {
    const list = $('alerts');
    const visible = [...hub.alerts.values()].filter(matches).sort(compareAlerts);
    const keep = new Set(visible.map((a) => a.alert_id));
    const focused = document.activeElement;
    const focusedRow = focused && focused.closest ? focused.closest('[data-alert-id]') : null;
    const focusKey = focusedRow && focused.dataset.testid
      ? [focusedRow.dataset.alertId, focused.dataset.testid] : null;

    for (const [id, row] of hub.rows) {
      if (!keep.has(id)) { row.node.remove(); hub.rows.delete(id); }
    }
    let previous = null;
    for (const alert of visible) {
      let row = hub.rows.get(alert.alert_id);
      if (!row || row.version !== alert.version || row.fresh !== hub.fresh.has(alert.alert_id)) {
        const node = renderAlert(alert);
        if (row) row.node.replaceWith(node);
        row = { node, version: alert.version, fresh: hub.fresh.has(alert.alert_id) };
        hub.rows.set(alert.alert_id, row);
      }
      const expected = previous ? previous.nextSibling : list.firstChild;
      if (expected !== row.node) list.insertBefore(row.node, expected);
      previous = row.node;
    }
    if (focusKey) {
      const row = hub.rows.get(focusKey[0]);
      const target = row && row.node.querySelector(`[data-testid="${focusKey[1]}"]`);
      if (target && target !== document.activeElement && !target.disabled) target.focus();
    }
    const open = [...hub.alerts.values()].filter((a) => a.status === 'RAISED' && a.workflow !== 'CLOSED');
    $('alert-count').textContent = `(${visible.length} shown, ${open.length} open)`;
    $('empty').hidden = visible.length > 0;
    document.title = open.length ? `(${open.length}) Safeguarding hub` : 'Safeguarding hub';
  }

  function refreshRelativeTimes() {
    for (const node of document.querySelectorAll('[data-rel]')) {
      node.textContent = `(${relative(node.dataset.rel)})`;
    }
  }

  // ---- live stream --------------------------------------------------------------------

  function setConnection(mode, text) {
    const node = $('connection');
    node.className = `connection connection-${mode}`;
    node.textContent = text;
  }

  function applyAlert(alert, live) {
    const previous = hub.alerts.get(alert.alert_id);
    if (previous && previous.version >= alert.version) return;
    hub.alerts.set(alert.alert_id, alert);
    if (live && !previous && alert.status === 'RAISED' && alert.workflow === 'NEW') {
      hub.fresh.add(alert.alert_id);
      setTimeout(() => { hub.fresh.delete(alert.alert_id); renderAlerts(); }, 8000);
      announce(`New ${alert.severity} alert: ${alert.rule_title}, child ${alert.child_id}.`);
    } else if (live && previous && previous.status !== alert.status) {
      // RESOLVED or WITHDRAWN: the board changes in place; say so for screen readers.
      announce(`Alert ${STATUS_LABEL[alert.status] || alert.status}: ${alert.rule_title}, child ${alert.child_id}.`);
    }
    if (hub.timelineChild === alert.child_id) scheduleTimeline();
  }

  function connect() {
    if (hub.source) hub.source.close();
    const source = new EventSource('/api/alerts/stream');
    hub.source = source;
    source.addEventListener('snapshot', (event) => {
      const data = JSON.parse(event.data);
      hub.alerts = new Map(data.alerts.map((a) => [a.alert_id, a]));
      hub.version = data.version;
      renderAlerts();
      setConnection('live', 'Live');
      scheduleQuality();
      if (hub.timelineChild) scheduleTimeline();
    });
    source.addEventListener('alert', (event) => {
      const data = JSON.parse(event.data);
      hub.version = Math.max(hub.version, data.version);
      applyAlert(data.alert, true);
      renderAlerts();
      scheduleQuality();
    });
    source.addEventListener('timeline', (event) => {
      const data = JSON.parse(event.data);
      hub.version = Math.max(hub.version, data.version);
      if (hub.timelineChild && (data.all || data.child_ids.includes(hub.timelineChild))) {
        scheduleTimeline();
      }
      scheduleQuality();
    });
    source.addEventListener('open', () => setConnection('live', 'Live'));
    source.addEventListener('error', async () => {
      setConnection('reconnecting', 'Reconnecting…');
      if (source.readyState !== EventSource.CLOSED) return; // the browser retries by itself
      try {
        await api('/api/session'); // a 401 reloads the page to the sign-in form
        setTimeout(connect, 3000);
      } catch (_) {
        setTimeout(connect, 5000);
      }
    });
  }

  // ---- actions ------------------------------------------------------------------------

  async function postAction(alertId, body) {
    return api(`/api/alerts/${encodeURIComponent(alertId)}/actions`, { method: 'POST', body });
  }

  async function acknowledge(button, alertId) {
    button.disabled = true;
    button.textContent = 'Acknowledging…';
    try {
      await postAction(alertId, { kind: 'ACKNOWLEDGE' });
      announce('Acknowledgement sent.');
    } catch (error) {
      button.disabled = false;
      button.textContent = 'Acknowledge';
      announce(`Could not acknowledge: ${error.message}`);
    }
  }

  function openDialog(kind, alertId) {
    const alert = hub.alerts.get(alertId);
    if (!alert) return;
    hub.dialog = { kind, alertId };
    $('action-title').textContent = ACTION_TITLE[kind];
    $('action-alert').textContent = `${alert.severity}: ${alert.rule_title}, child ${alert.child_id}`;
    $('field-assignee').hidden = kind !== 'ASSIGN';
    $('field-outcome').hidden = kind !== 'CLOSE';
    $('field-note').hidden = kind === 'ASSIGN';
    $('action-note-label').textContent = kind === 'CLOSE' ? 'Comment (optional)' : 'Note';
    $('action-note').required = kind === 'NOTE';
    $('action-note').value = '';
    $('action-error').textContent = '';
    $('action-submit').disabled = false;
    const assignee = $('action-assignee');
    if (alert.assignee) assignee.value = alert.assignee;
    $('action-dialog').showModal();
    const first = kind === 'ASSIGN' ? assignee : kind === 'CLOSE' ? $('action-outcome') : $('action-note');
    first.focus();
  }

  async function submitDialog(event) {
    event.preventDefault();
    if (!hub.dialog) return;
    const { kind, alertId } = hub.dialog;
    const body = { kind };
    const note = $('action-note').value.trim();
    if (kind === 'ASSIGN') body.assignee = $('action-assignee').value;
    if (kind === 'CLOSE') body.outcome = $('action-outcome').value;
    if ((kind === 'NOTE' || kind === 'CLOSE') && note) body.note = note;
    if (kind === 'NOTE' && !note) {
      $('action-error').textContent = 'Write a note first.';
      return;
    }
    $('action-submit').disabled = true;
    try {
      await postAction(alertId, body);
      $('action-dialog').close();
      hub.dialog = null;
      announce('Sent. The alert updates when the hub has recorded it.');
    } catch (error) {
      $('action-error').textContent = error.message;
      $('action-submit').disabled = false;
    }
  }

  function onAlertClick(event) {
    const button = event.target.closest('button[data-action]');
    if (!button) return;
    const row = button.closest('[data-alert-id]');
    const kind = button.dataset.action;
    if (kind === 'ACKNOWLEDGE') acknowledge(button, row.dataset.alertId);
    else openDialog(kind, row.dataset.alertId);
  }

  // ---- child timeline -----------------------------------------------------------------

  function describeEvent(ev, childId) {
    switch (ev.type) {
      case 'incident': {
        const me = ev.children.find((c) => c.child_id === childId);
        let text = `Police incident ${ev.incident_id}: ${humanize(ev.incident_type)}`;
        if (ev.dash_risk) text += `, DASH risk ${humanize(ev.dash_risk)}`;
        if (me) {
          text += `; child ${me.present ? 'present' : 'not present'}`;
          if (me.age !== null && me.age !== undefined) text += `, aged ${me.age}`;
        }
        const n = ev.children.length;
        return `${text}; ${n} ${n === 1 ? 'child' : 'children'} in the household`;
      }
      case 'missing_report': {
        let text = `Missing episode ${ev.episode_id}: ${STEP_LABEL[ev.status] || humanize(ev.status)}`;
        if (ev.risk_level) text += `, risk ${humanize(ev.risk_level)}`;
        if (ev.looked_after) text += ' (looked-after child)';
        return text;
      }
      case 'referral': {
        let text = `Referral ${ev.referral_id} to ${AGENCY_LABEL[ev.agency] || humanize(ev.agency)}`;
        if (ev.incident_id) text += `, about incident ${ev.incident_id}`;
        if (ev.episode_id) text += `, about missing episode ${ev.episode_id}`;
        return text;
      }
      default:
        return `${ev.type} ${ev.event_id}`;
    }
  }

  const KIND_LABEL = {
    event: 'Event', alert_raised: 'Alert', alert_resolved: 'Resolved',
    alert_withdrawn: 'Withdrawn', action: 'Hub',
  };

  function describeEntry(entry, childId) {
    switch (entry.kind) {
      case 'event': return describeEvent(entry.event, childId);
      case 'alert_raised':
        return `${entry.alert.severity} alert: ${entry.alert.rule_title}. ${entry.alert.summary}`;
      case 'alert_resolved': return `Alert resolved: ${entry.alert.rule_title}`;
      case 'alert_withdrawn':
        return `Alert withdrawn (the action was taken in time): ${entry.alert.rule_title}`;
      case 'action': return `${actionLine(entry.action)} (${entry.alert.rule_title})`;
      default: return entry.kind;
    }
  }

  let timelineTimer = null;
  function scheduleTimeline() {
    clearTimeout(timelineTimer);
    timelineTimer = setTimeout(loadTimeline, 300);
  }

  async function loadTimeline() {
    const childId = hub.timelineChild;
    if (!childId) return;
    let data;
    try {
      data = await api(`/api/children/${encodeURIComponent(childId)}/timeline`);
    } catch (error) {
      $('timeline-note').hidden = false;
      $('timeline-note').textContent = `Could not load the timeline: ${error.message}`;
      return;
    }
    if (hub.timelineChild !== childId) return;
    const list = $('timeline-entries');
    list.replaceChildren(...data.entries.map((entry) => el('li', {
      className: `tl tl-${entry.kind}`, 'data-testid': 'timeline-entry',
      dataset: { kind: entry.kind, ref: entry.ref },
    },
    el('time', { datetime: entry.at, text: localTime(entry.at) }),
    el('p', null, el('span', { className: 'tl-kind', text: KIND_LABEL[entry.kind] || entry.kind }),
      describeEntry(entry, childId)))));
    const note = $('timeline-note');
    if (!data.entries.length) {
      note.hidden = false;
      note.textContent = 'Nothing is known about this child yet.';
    } else if (!data.complete) {
      note.hidden = false;
      note.textContent = 'Older events of this child are not held by the hub; the timeline may be incomplete.';
    } else {
      note.hidden = true;
    }
  }

  function onHashChange() {
    const match = /^#\/children\/(.+)$/.exec(window.location.hash);
    const panel = $('timeline');
    if (!match) {
      hub.timelineChild = null;
      panel.hidden = true;
      return;
    }
    let childId;
    try { childId = decodeURIComponent(match[1]); } catch (_) { return; }
    hub.timelineChild = childId;
    $('timeline-child').textContent = childId;
    $('timeline-entries').replaceChildren();
    $('timeline-note').hidden = true;
    panel.hidden = false;
    $('timeline-title').focus();
    loadTimeline();
  }

  // ---- quality ------------------------------------------------------------------------

  let qualityTimer = null;
  function scheduleQuality() {
    if (qualityTimer) return;
    qualityTimer = setTimeout(() => { qualityTimer = null; loadQuality(); }, 2000);
  }

  function chips(counts, labels, prefix) {
    return el('ul', { className: 'chips' }, Object.entries(counts).map(([key, n]) => el('li', {
      className: `badge ${prefix}-${key}`, text: `${labels[key] || key}: ${n}`,
    })));
  }

  async function loadQuality() {
    let q;
    try { q = await api('/api/quality?days=30'); } catch (_) { return; }
    const body = $('quality-body');
    const table = el('table', null,
      el('caption', { className: 'visually-hidden', text: 'Alerts per rule' }),
      el('thead', null, el('tr', null,
        el('th', { scope: 'col', text: 'Rule' }),
        el('th', { scope: 'col', className: 'num', text: 'Raised' }),
        el('th', { scope: 'col', className: 'num', text: 'Resolved' }),
        el('th', { scope: 'col', className: 'num', text: 'Withdrawn' }))),
      el('tbody', null, q.by_rule.map((r) => el('tr', { dataset: { rule: r.rule_id } },
        el('th', { scope: 'row', title: r.rule_title }, el('span', { text: r.rule_id }), ' ',
          el('span', { className: 'note', text: r.rule_title })),
        el('td', { className: 'num', text: r.RAISED }),
        el('td', { className: 'num', text: r.RESOLVED }),
        el('td', { className: 'num', text: r.WITHDRAWN })))));
    const worst = q.children.filter((c) => c.grade === 'inadequate').slice(0, 10);
    body.replaceChildren(
      el('p', null, `${q.alerts} alerts raised since ${localTime(q.from)}.`),
      el('h3', { text: 'Children' }),
      el('ul', { className: 'grades', 'data-testid': 'quality-grades' },
        Object.entries(q.grades).map(([grade, n]) => el('li', {
          className: `badge grade-${grade}`, dataset: { grade }, text: `${GRADE_LABEL[grade] || grade}: ${n}`,
        }))),
      worst.length ? el('p', { className: 'note', text: 'Inadequate (a HIGH alert still raised):' }) : null,
      worst.length ? el('ul', { className: 'children-list' }, worst.map((c) => el('li', null,
        el('a', { href: childHref(c.child_id), className: 'child-link', text: c.child_id }),
        ` (${c.open_high} open HIGH)`))) : null,
      el('h3', { text: 'Alerts' }),
      chips(q.by_severity, { HIGH: 'High', MEDIUM: 'Medium', LOW: 'Low' }, 'sev'),
      chips(q.by_status, STATUS_LABEL, 'status'),
      chips(q.by_workflow, WORKFLOW_LABEL, 'wf'),
      table);
  }

  // ---- start --------------------------------------------------------------------------

  function fillSelect(select, values, labels) {
    for (const value of values) {
      select.append(el('option', { value, text: labels ? (labels[value] || value) : value }));
    }
  }

  async function start() {
    hub.session = await api('/api/session');
    const s = hub.session;
    $('who').textContent = s.user;
    $('logout-csrf').value = s.csrf_token || '';
    fillSelect($('filter-severity'), s.severities);
    for (const rule of s.rules) {
      $('filter-rule').append(el('option', { value: rule.rule_id, text: `${rule.rule_id}: ${rule.rule_title}` }));
    }
    fillSelect($('filter-status'), s.statuses, STATUS_LABEL);
    fillSelect($('filter-workflow'), s.workflows, WORKFLOW_LABEL);
    fillSelect($('action-assignee'), s.users);
    fillSelect($('action-outcome'), s.outcomes, OUTCOME_LABEL);

    for (const key of Object.keys(hub.filters)) {
      $(`filter-${key}`).addEventListener('change', (event) => {
        hub.filters[key] = event.target.value;
        renderAlerts();
      });
    }
    $('alerts').addEventListener('click', onAlertClick);
    $('action-form').addEventListener('submit', submitDialog);
    $('action-cancel').addEventListener('click', () => { $('action-dialog').close(); hub.dialog = null; });
    $('timeline-close').addEventListener('click', () => {
      window.history.pushState(null, '', window.location.pathname);
      onHashChange();
    });
    window.addEventListener('hashchange', onHashChange);
    setInterval(refreshRelativeTimes, 30000);
    setInterval(loadQuality, 60000); // the 30-day window moves on
    connect();
    onHashChange();
  }

  document.addEventListener('DOMContentLoaded', () => {
    start().catch((error) => setConnection('reconnecting', `Could not start: ${error.message}`));
  });
})();
