// The Sluice operator console: one page over the admin JSON API of `sluice serve` (same origin).
//
// Security rules this file keeps (the server's CSP enforces most of them, this file keeps all):
// - no inline script or style, no eval, no string-to-code of any kind;
// - everything that comes from the API (event data, attributes, reasons, labels, tenant names,
//   problem details) is put into the page with textContent / createTextNode only, never as HTML;
//   attributes are set only under fixed names (data-*, aria-label, value), never href/src/style/on*;
// - every state-changing request is a same-origin fetch with a JSON body and content type, which
//   is what the server's CSRF check asks for; the session itself is an HttpOnly cookie.
'use strict';

(function () {
  const POLL_MS = 2000;
  const WINDOW_SECS = 300;
  const PAGES = ['overview', 'events', 'dead-letters', 'keys', 'sources'];

  const $ = (id) => document.getElementById(id);

  const state = {
    session: null,
    page: null,
    pollTimer: null,
    pollSeq: 0,
    prev: null,
    series: { xs: [], accepted: [], rejected: [], stored: [], deadLettered: [] },
    chart: null,
    events: { list: [], next: null, query: null, selected: null },
    dlq: { list: [], selected: null },
  };

  // ---- DOM helpers (text only) ------------------------------------------------------------

  /** An element with fixed-name attributes and text or element children. */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (name === 'class') node.className = value;
      else if (name === 'dataset') Object.assign(node.dataset, value);
      else if (name === 'text') node.textContent = String(value);
      else node.setAttribute(name, value === true ? '' : String(value));
    }
    for (const child of children) {
      if (child === undefined || child === null) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  const text = (value) => (value === undefined || value === null ? '' : String(value));

  function cell(value, cls) {
    return el('td', { class: cls }, value === undefined || value === null || value === '' ? '—' : text(value));
  }

  function clear(node) {
    node.replaceChildren();
  }

  function show(node, visible) {
    node.hidden = !visible;
  }

  const numberFormat = new Intl.NumberFormat('en', { maximumFractionDigits: 0 });
  const rateFormat = new Intl.NumberFormat('en', { maximumFractionDigits: 2, minimumFractionDigits: 0 });

  function fmtCount(n) {
    return typeof n === 'number' && Number.isFinite(n) ? numberFormat.format(n) : '–';
  }

  function fmtRate(r) {
    return typeof r === 'number' && Number.isFinite(r) ? rateFormat.format(r) : '–';
  }

  /** An RFC 3339 instant as "2026-12-05 14:34:27 UTC" (the exact value stays in the datetime attribute). */
  function fmtTime(at) {
    const ms = Date.parse(at);
    if (!Number.isFinite(ms)) return text(at);
    return `${new Date(ms).toISOString().slice(0, 19).replace('T', ' ')} UTC`;
  }

  function fmtAge(secs) {
    if (secs === null || secs === undefined) return 'none';
    if (typeof secs !== 'number' || !Number.isFinite(secs)) return '–';
    if (secs < 60) return `${secs.toFixed(1)} s`;
    if (secs < 3600) return `${Math.floor(secs / 60)} min ${Math.floor(secs % 60)} s`;
    if (secs < 86400) return `${Math.floor(secs / 3600)} h ${Math.floor((secs % 3600) / 60)} min`;
    return `${Math.floor(secs / 86400)} d ${Math.floor((secs % 86400) / 3600)} h`;
  }

  // ---- Notices and confirmation ---------------------------------------------------------

  let noticeTimer = null;

  function notify(message, kind) {
    const box = $('notice');
    box.textContent = message;
    box.className = `notice ${kind || 'ok'}`;
    box.setAttribute('role', kind === 'error' ? 'alert' : 'status');
    show(box, true);
    clearTimeout(noticeTimer);
    if (kind !== 'error') noticeTimer = setTimeout(() => show(box, false), 8000);
  }

  function clearNotice() {
    clearTimeout(noticeTimer);
    show($('notice'), false);
  }

  /** Words for a failed request: the problem's title, detail, code and request id. */
  function describe(err) {
    if (!(err instanceof ApiError)) return `The request failed: ${err && err.message ? err.message : err}`;
    const p = err.problem || {};
    let out = `${p.title || `HTTP ${err.status}`}`;
    if (p.detail) out += `: ${p.detail}`;
    const ids = [];
    if (p.code) ids.push(`code ${p.code}`);
    if (p.request_id) ids.push(`request ${p.request_id}`);
    if (ids.length) out += ` (${ids.join(', ')})`;
    return out;
  }

  function failed(what, err) {
    if (err instanceof ApiError && err.status === 401) return; // handled: back to the sign-in page
    notify(`${what} failed. ${describe(err)}`, 'error');
  }

  let confirmResolve = null;

  /** An in-page yes/no question; resolves true on Confirm. */
  function askConfirm(question, yesLabel) {
    if (confirmResolve) confirmResolve(false);
    $('confirm-text').textContent = question;
    $('confirm-yes').textContent = yesLabel || 'Confirm';
    show($('confirm'), true);
    $('confirm-no').focus();
    return new Promise((resolve) => {
      confirmResolve = resolve;
    });
  }

  function answerConfirm(yes) {
    show($('confirm'), false);
    const resolve = confirmResolve;
    confirmResolve = null;
    if (resolve) resolve(yes);
  }

  // ---- The API -------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, problem) {
      super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
      this.status = status;
      this.problem = problem;
    }
  }

  /**
   * One request to the admin API. State-changing methods always carry a JSON body and the JSON
   * content type (the server's CSRF check); the browser adds the same-origin Origin header.
   */
  async function api(method, path, body) {
    const init = {
      method,
      credentials: 'same-origin',
      cache: 'no-store',
      redirect: 'error',
      headers: { accept: 'application/json, application/problem+json' },
    };
    if (method !== 'GET') {
      init.headers['content-type'] = 'application/json';
      init.body = JSON.stringify(body === undefined ? {} : body);
    }
    const res = await fetch(path, init);
    const type = res.headers.get('content-type') || '';
    let payload = null;
    if (res.status !== 204 && type.includes('json')) {
      try {
        payload = await res.json();
      } catch (_) {
        payload = null;
      }
    }
    if (!res.ok) {
      const err = new ApiError(res.status, payload);
      if (res.status === 401 && state.session && !path.startsWith('/admin/api/session')) {
        signedOut('Your session has ended. Sign in again.');
      }
      throw err;
    }
    return payload;
  }

  // ---- Session ---------------------------------------------------------------------------

  async function boot() {
    bindHandlers();
    try {
      const session = await api('GET', '/admin/api/session');
      signedIn(session);
    } catch (err) {
      signedOut(err instanceof ApiError && err.status === 401 ? null : `Could not reach the console API. ${describe(err)}`);
    }
    show($('loading'), false);
  }

  function signedIn(session) {
    state.session = session || {};
    $('session-label').textContent = text(state.session.label);
    $('session-token-id').textContent = text(state.session.token_id);
    show($('page-login'), false);
    show($('nav'), true);
    show($('whoami'), true);
    document.body.dataset.signedIn = 'true';
    startPolling();
    route();
  }

  function signedOut(message) {
    state.session = null;
    stopPolling();
    resetData();
    document.body.dataset.signedIn = 'false';
    show($('nav'), false);
    show($('whoami'), false);
    for (const name of PAGES) show($(`page-${name}`), false);
    state.page = null;
    show($('page-login'), true);
    if (message) notify(message, 'error');
    $('login-token').focus();
  }

  /** Forgets everything shown while signed in (secrets and data alike). */
  function resetData() {
    state.prev = null;
    state.series = { xs: [], accepted: [], rejected: [], stored: [], deadLettered: [] };
    if (state.chart) {
      state.chart.destroy();
      state.chart = null;
    }
    state.events = { list: [], next: null, query: null, selected: null };
    state.dlq = { list: [], selected: null };
    clear($('events-rows'));
    $('event-json').textContent = 'Select an event to see its JSON.';
    $('event-selected-id').textContent = '';
    clear($('dlq-rows'));
    clearDlqInspect();
    clear($('keys-rows'));
    clear($('sources-rows'));
    hideKeyCreated();
    hideSourceCreated();
  }

  async function login(event) {
    event.preventDefault();
    const input = $('login-token');
    const token = input.value.trim();
    input.value = '';
    const error = $('login-error');
    show(error, false);
    clearNotice();
    if (!token) return;
    try {
      await api('POST', '/admin/api/session', { token });
      const session = await api('GET', '/admin/api/session');
      signedIn(session);
    } catch (err) {
      error.textContent =
        err instanceof ApiError && err.status === 401
          ? 'That token was refused. Sign in with an admin token (adm_…) from "sluice admin token create"; tenant API keys cannot sign in here.'
          : `Sign-in failed. ${describe(err)}`;
      show(error, true);
      input.focus();
    }
  }

  async function logout() {
    try {
      await api('DELETE', '/admin/api/session');
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 401)) {
        failed('Signing out', err);
        return;
      }
    }
    signedOut(null);
    notify('Signed out.');
  }

  // ---- Routing ---------------------------------------------------------------------------

  function route() {
    if (!state.session) return;
    const wanted = location.hash.replace(/^#/, '');
    const page = PAGES.includes(wanted) ? wanted : 'overview';
    state.page = page;
    for (const name of PAGES) show($(`page-${name}`), name === page);
    for (const link of document.querySelectorAll('#nav a[data-page]')) {
      if (link.dataset.page === page) link.setAttribute('aria-current', 'page');
      else link.removeAttribute('aria-current');
    }
    document.title = `${$(`page-${page}`).querySelector('h2').textContent} · Sluice console`;
    if (page === 'overview') ensureChart();
    else if (page === 'dead-letters') loadDlq();
    else if (page === 'keys') loadKeys();
    else if (page === 'sources') loadSources();
    else if (page === 'events') $('events-tenant').focus();
  }

  // ---- Overview ---------------------------------------------------------------------------

  function startPolling() {
    stopPolling();
    const seq = ++state.pollSeq;
    const tick = async () => {
      if (seq !== state.pollSeq) return;
      try {
        onOverview(await api('GET', '/admin/api/overview'));
      } catch (err) {
        if (seq === state.pollSeq && !(err instanceof ApiError && err.status === 401)) {
          $('overview-at').textContent = `update failed: ${describe(err)}`;
        }
      }
      if (seq === state.pollSeq && state.session) state.pollTimer = setTimeout(tick, POLL_MS);
    };
    tick();
  }

  function stopPolling() {
    state.pollSeq++;
    clearTimeout(state.pollTimer);
    state.pollTimer = null;
  }

  function sumValues(obj) {
    let total = 0;
    for (const v of Object.values(obj || {})) if (typeof v === 'number') total += v;
    return total;
  }

  /** Per-second rate between two samples of a cumulative counter, or null across a reset. */
  function rate(now, before, dt) {
    if (typeof now !== 'number' || typeof before !== 'number' || !(dt > 0) || now < before) return null;
    return (now - before) / dt;
  }

  function onOverview(o) {
    if (!o || typeof o !== 'object') return;
    const parsed = Date.parse(o.at);
    const t = Number.isFinite(parsed) ? parsed / 1000 : Date.now() / 1000;
    const stored = o.stored || {};
    const rejected = o.rejected || {};
    const cur = {
      t,
      accepted: o.accepted,
      rejectedTotal: sumValues(rejected),
      rejected,
      stored: stored.stored,
      deadLettered: stored.dead_lettered,
    };
    const prev = state.prev;
    const rates = { accepted: null, rejected: null, stored: null, deadLettered: null, byCode: {} };
    if (prev && t > prev.t) {
      const dt = t - prev.t;
      rates.accepted = rate(cur.accepted, prev.accepted, dt);
      rates.rejected = rate(cur.rejectedTotal, prev.rejectedTotal, dt);
      rates.stored = rate(cur.stored, prev.stored, dt);
      rates.deadLettered = rate(cur.deadLettered, prev.deadLettered, dt);
      for (const code of Object.keys(rejected)) rates.byCode[code] = rate(rejected[code], prev.rejected[code] || 0, dt);
      const s = state.series;
      s.xs.push(t);
      s.accepted.push(rates.accepted);
      s.rejected.push(rates.rejected);
      s.stored.push(rates.stored);
      s.deadLettered.push(rates.deadLettered);
      while (s.xs.length && s.xs[0] < t - WINDOW_SECS) {
        s.xs.shift();
        s.accepted.shift();
        s.rejected.shift();
        s.stored.shift();
        s.deadLettered.shift();
      }
    }
    if (!prev || t >= prev.t) state.prev = cur;

    $('overview-at').textContent = fmtTime(o.at);
    $('overview-at').setAttribute('datetime', text(o.at));
    $('ov-accepted').textContent = fmtCount(cur.accepted);
    $('ov-accepted-rate').textContent = fmtRate(rates.accepted);
    $('ov-rejected').textContent = fmtCount(cur.rejectedTotal);
    $('ov-rejected-rate').textContent = fmtRate(rates.rejected);
    $('ov-stored').textContent = fmtCount(cur.stored);
    $('ov-stored-rate').textContent = fmtRate(rates.stored);
    const queue = o.queue || {};
    const dlq = o.dlq || {};
    $('ov-queue-visible').textContent = fmtCount(queue.visible);
    $('ov-queue-in-flight').textContent = fmtCount(queue.in_flight);
    $('ov-queue-oldest').textContent = fmtAge(queue.oldest_age_secs);
    $('ov-dlq-visible').textContent = fmtCount(dlq.visible);
    $('ov-dlq-in-flight').textContent = fmtCount(dlq.in_flight);
    $('ov-dlq-oldest').textContent = fmtAge(dlq.oldest_age_secs);

    const storedRows = $('stored-rows');
    clear(storedRows);
    for (const outcome of ['stored', 'duplicate', 'retried', 'dead_lettered']) {
      storedRows.append(el('tr', { dataset: { outcome } }, cell(outcome), cell(fmtCount(stored[outcome]), 'num')));
    }
    const rejectedRows = $('rejected-rows');
    clear(rejectedRows);
    const codes = Object.keys(rejected).sort();
    for (const code of codes) {
      rejectedRows.append(
        el('tr', { dataset: { code } }, cell(code), cell(fmtCount(rejected[code]), 'num'), cell(fmtRate(rates.byCode[code]), 'num')),
      );
    }
    show($('rejected-none'), codes.length === 0);

    const chartBox = $('rate-chart');
    const s = state.series;
    chartBox.dataset.samples = String(s.xs.length);
    chartBox.dataset.maxAcceptedRate = String(Math.max(0, ...s.accepted.filter((v) => typeof v === 'number')));
    if (state.chart) state.chart.setData(chartData());
  }

  function chartData() {
    const s = state.series;
    return [s.xs.slice(), s.accepted.slice(), s.rejected.slice(), s.stored.slice(), s.deadLettered.slice()];
  }

  function chartWidth() {
    return Math.max(320, $('rate-chart').clientWidth || 0);
  }

  function ensureChart() {
    if (state.chart) {
      state.chart.setSize({ width: chartWidth(), height: 280 });
      return;
    }
    if (typeof window.uPlot !== 'function') {
      $('rate-chart').textContent = 'The chart library did not load; the numbers above are still live.';
      return;
    }
    const opts = {
      width: chartWidth(),
      height: 280,
      scales: {
        x: { time: true },
        y: { range: (_u, _min, max) => [0, Math.max(1, (max || 0) * 1.15)] },
      },
      series: [
        {},
        // Drawn first and wider: stored usually follows accepted exactly, and both stay visible.
        { label: 'accepted/s', stroke: '#2da44e', width: 5, value: (_u, v) => fmtRate(v) },
        { label: 'rejected/s', stroke: '#cf222e', width: 2, value: (_u, v) => fmtRate(v) },
        { label: 'stored/s', stroke: '#0969da', width: 2, value: (_u, v) => fmtRate(v) },
        { label: 'dead-lettered/s', stroke: '#9a6700', width: 2, dash: [6, 4], value: (_u, v) => fmtRate(v) },
      ],
      axes: [
        // Whole seconds at least: polls are 2 s apart.
        { space: 70, incrs: [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600] },
        { label: 'events per second' },
      ],
    };
    state.chart = new window.uPlot(opts, chartData(), $('rate-chart'));
  }

  // ---- Events ---------------------------------------------------------------------------

  async function searchEvents(event) {
    if (event) event.preventDefault();
    const tenant = $('events-tenant').value.trim();
    if (!tenant) {
      notify('A tenant is required: events are stored per tenant.', 'error');
      return;
    }
    const query = new URLSearchParams({ tenant });
    const type = $('events-type').value.trim();
    const id = $('events-id').value.trim();
    const limit = $('events-limit').value.trim();
    if (type) query.set('type', type);
    if (id) query.set('id', id);
    if (limit) query.set('limit', limit);
    state.events = { list: [], next: null, query, selected: null };
    $('event-json').textContent = 'Select an event to see its JSON.';
    $('event-selected-id').textContent = '';
    clear($('events-rows'));
    show($('events-empty'), false);
    show($('events-more'), false);
    await fetchEvents(null);
    if (id && state.events.list.length === 1) selectEvent(0);
  }

  async function fetchEvents(cursor) {
    const query = new URLSearchParams(state.events.query);
    if (cursor) query.set('cursor', cursor);
    const rows = $('events-rows');
    rows.dataset.state = 'loading';
    let res;
    try {
      res = await api('GET', `/admin/api/events?${query}`);
    } catch (err) {
      rows.dataset.state = 'failed';
      failed('Searching events', err);
      return;
    }
    clearNotice();
    state.events.list = state.events.list.concat(Array.isArray(res.events) ? res.events : []);
    state.events.next = res.next_cursor || null;
    renderEvents();
  }

  function renderEvents() {
    const rows = $('events-rows');
    clear(rows);
    state.events.list.forEach((ev, i) => {
      const open = el('button', { type: 'button', class: 'link', dataset: { testid: 'event-open' } }, text(ev.id));
      open.addEventListener('click', (e) => {
        e.stopPropagation();
        selectEvent(i);
      });
      const row = el(
        'tr',
        { dataset: { eventId: text(ev.id), index: String(i) }, class: state.events.selected === i ? 'selected' : null },
        el('td', {}, open),
        cell(ev.type),
        cell(ev.received_at, 'mono'),
      );
      row.addEventListener('click', () => selectEvent(i));
      rows.append(row);
    });
    show($('events-empty'), state.events.list.length === 0);
    show($('events-more'), Boolean(state.events.next));
    rows.dataset.state = 'ready';
  }

  function selectEvent(i) {
    const ev = state.events.list[i];
    if (!ev) return;
    state.events.selected = i;
    for (const row of $('events-rows').children) {
      row.classList.toggle('selected', row.dataset.index === String(i));
      row.setAttribute('aria-selected', row.dataset.index === String(i) ? 'true' : 'false');
    }
    $('event-selected-id').textContent = text(ev.id);
    $('event-json').textContent = JSON.stringify(ev, null, 2);
  }

  // ---- Dead letters ----------------------------------------------------------------------

  function checkedIds() {
    return Array.from($('dlq-rows').querySelectorAll('input[type=checkbox]:checked'), (box) => box.value);
  }

  async function loadDlq() {
    const keep = new Set(checkedIds());
    $('dlq-rows').dataset.state = 'loading';
    let res;
    try {
      res = await api('GET', '/admin/api/dead-letters?limit=100');
    } catch (err) {
      $('dlq-rows').dataset.state = 'failed';
      failed('Loading dead letters', err);
      return;
    }
    state.dlq.list = Array.isArray(res.messages) ? res.messages : [];
    const rows = $('dlq-rows');
    clear(rows);
    state.dlq.list.forEach((m, i) => {
      const attrs = m.attributes || {};
      const box = el('input', {
        type: 'checkbox',
        value: text(m.message_id),
        'aria-label': `Select message ${text(m.message_id)}`,
        dataset: { testid: 'dlq-check' },
      });
      box.checked = keep.has(text(m.message_id));
      box.addEventListener('click', (e) => e.stopPropagation());
      box.addEventListener('change', syncSelectAll);
      const inspect = el('button', { type: 'button', class: 'link', dataset: { testid: 'dlq-inspect' } }, 'Inspect');
      inspect.addEventListener('click', (e) => {
        e.stopPropagation();
        inspectDlq(i);
      });
      const row = el(
        'tr',
        { dataset: { messageId: text(m.message_id), index: String(i) } },
        el('td', {}, box),
        cell(m.reason, 'reason'),
        cell(attrs.request_id, 'mono'),
        cell(attrs.source_ip, 'mono'),
        cell(attrs.received_at, 'mono'),
        cell(attrs.tenant),
        cell(m.receive_count, 'num'),
        el('td', {}, inspect),
      );
      row.addEventListener('click', () => inspectDlq(i));
      rows.append(row);
    });
    show($('dlq-empty'), state.dlq.list.length === 0);
    syncSelectAll();
    const selected = state.dlq.selected;
    const again = state.dlq.list.findIndex((m) => text(m.message_id) === selected);
    if (again >= 0) inspectDlq(again);
    else clearDlqInspect();
    rows.dataset.state = 'ready';
  }

  function syncSelectAll() {
    const boxes = $('dlq-rows').querySelectorAll('input[type=checkbox]');
    const checked = $('dlq-rows').querySelectorAll('input[type=checkbox]:checked');
    $('dlq-select-all').checked = boxes.length > 0 && checked.length === boxes.length;
    $('dlq-select-all').indeterminate = checked.length > 0 && checked.length < boxes.length;
  }

  function clearDlqInspect() {
    state.dlq.selected = null;
    $('dlq-selected-id').textContent = '';
    clear($('dlq-meta'));
    $('dlq-attributes').textContent = 'Select a message to inspect it.';
    $('dlq-body').textContent = '';
  }

  function inspectDlq(i) {
    const m = state.dlq.list[i];
    if (!m) return;
    state.dlq.selected = text(m.message_id);
    for (const row of $('dlq-rows').children) row.classList.toggle('selected', row.dataset.index === String(i));
    $('dlq-selected-id').textContent = text(m.message_id);
    const meta = $('dlq-meta');
    clear(meta);
    for (const [label, value] of [
      ['reason', m.reason],
      ['failed at', m.failed_at],
      ['sent at', m.sent_at],
      ['receive count', m.receive_count],
    ]) {
      meta.append(el('dt', {}, label), el('dd', { dataset: { field: label } }, value === undefined || value === null ? '—' : text(value)));
    }
    $('dlq-attributes').textContent = JSON.stringify(m.attributes || {}, null, 2);
    // The body as text; pretty-printed when it is JSON (still text: nothing in it is rendered).
    let body = text(m.body);
    try {
      body = JSON.stringify(JSON.parse(body), null, 2);
    } catch (_) {
      /* not JSON: shown as it is */
    }
    $('dlq-body').textContent = body;
  }

  async function redrive(payload, what) {
    try {
      const res = await api('POST', '/admin/api/dead-letters/redrive', payload);
      const moved = res && typeof res.moved === 'number' ? res.moved : 0;
      notify(`${what}: moved ${moved} message${moved === 1 ? '' : 's'} back to the queue.`);
    } catch (err) {
      failed(what, err);
    }
    await loadDlq();
  }

  async function redriveSelected() {
    const ids = checkedIds();
    if (!ids.length) {
      notify('Select at least one message to redrive.', 'error');
      return;
    }
    await redrive({ message_ids: ids }, 'Redrive');
  }

  async function redriveAll() {
    await redrive({ all: true }, 'Redrive all');
  }

  async function dropSelected() {
    const ids = checkedIds();
    if (!ids.length) {
      notify('Select at least one message to drop.', 'error');
      return;
    }
    const n = ids.length;
    const yes = await askConfirm(
      `Drop ${n} message${n === 1 ? '' : 's'} from the dead-letter queue for good? Dropped messages cannot be recovered.`,
      'Drop',
    );
    if (!yes) return;
    try {
      const res = await api('POST', '/admin/api/dead-letters/drop', { message_ids: ids });
      const dropped = res && typeof res.dropped === 'number' ? res.dropped : 0;
      notify(`Dropped ${dropped} message${dropped === 1 ? '' : 's'}.`);
    } catch (err) {
      failed('Drop', err);
    }
    await loadDlq();
  }

  // ---- Keys ---------------------------------------------------------------------------

  async function loadKeys() {
    $('keys-rows').dataset.state = 'loading';
    let res;
    try {
      res = await api('GET', '/admin/api/keys');
    } catch (err) {
      $('keys-rows').dataset.state = 'failed';
      failed('Loading keys', err);
      return;
    }
    const keys = Array.isArray(res.keys) ? res.keys : [];
    const rows = $('keys-rows');
    clear(rows);
    for (const k of keys) {
      let action = el('td', {});
      if (!k.revoked_at) {
        const revoke = el('button', { type: 'button', class: 'danger small', dataset: { testid: 'key-revoke' } }, 'Revoke');
        revoke.addEventListener('click', () => revokeKey(k));
        action = el('td', {}, revoke);
      }
      rows.append(
        el(
          'tr',
          { dataset: { keyId: text(k.id) }, class: k.revoked_at ? 'revoked' : null },
          cell(k.id, 'mono'),
          cell(k.tenant),
          cell(k.label),
          cell(k.created_at, 'mono'),
          cell(k.expires_at, 'mono'),
          cell(k.revoked_at, 'mono'),
          action,
        ),
      );
    }
    show($('keys-empty'), keys.length === 0);
    rows.dataset.state = 'ready';
  }

  async function revokeKey(k) {
    const yes = await askConfirm(
      `Revoke key ${text(k.id)} of tenant ${text(k.tenant)}? Requests with it are refused from then on (within auth.cache_secs).`,
      'Revoke',
    );
    if (!yes) return;
    try {
      await api('POST', `/admin/api/keys/${encodeURIComponent(text(k.id))}/revoke`);
      notify(`Key ${text(k.id)} revoked.`);
    } catch (err) {
      failed('Revoking the key', err);
    }
    await loadKeys();
  }

  async function createKey(event) {
    event.preventDefault();
    const tenant = $('keys-tenant').value.trim();
    const label = $('keys-label').value.trim();
    hideKeyCreated();
    try {
      const res = await api('POST', '/admin/api/keys', { tenant, label });
      $('key-created-id').textContent = text(res.id);
      $('key-created-tenant').textContent = text(res.tenant);
      $('key-created-value').textContent = text(res.key);
      show($('key-created'), true);
      $('keys-label').value = '';
      clearNotice();
    } catch (err) {
      failed('Creating the key', err);
    }
    await loadKeys();
  }

  function hideKeyCreated() {
    show($('key-created'), false);
    $('key-created-value').textContent = '';
    $('key-created-id').textContent = '';
    $('key-created-tenant').textContent = '';
  }

  async function copyKey() {
    const key = $('key-created-value').textContent;
    try {
      await navigator.clipboard.writeText(key);
      notify('Key copied to the clipboard.');
    } catch (_) {
      const range = document.createRange();
      range.selectNodeContents($('key-created-value'));
      const selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      notify('Copying is not allowed here: the key is selected, copy it with Ctrl+C.', 'error');
    }
  }

  // ---- Sources --------------------------------------------------------------------------

  async function loadSources() {
    $('sources-rows').dataset.state = 'loading';
    let res;
    try {
      res = await api('GET', '/admin/api/sources');
    } catch (err) {
      $('sources-rows').dataset.state = 'failed';
      failed('Loading sources', err);
      return;
    }
    const sources = Array.isArray(res.sources) ? res.sources : [];
    const rows = $('sources-rows');
    clear(rows);
    for (const s of sources) {
      let action = el('td', {});
      if (!s.deleted_at) {
        const del = el('button', { type: 'button', class: 'danger small', dataset: { testid: 'source-delete' } }, 'Delete');
        del.addEventListener('click', () => deleteSource(s));
        action = el('td', {}, del);
      }
      rows.append(
        el(
          'tr',
          { dataset: { sourceId: text(s.id) }, class: s.deleted_at ? 'revoked' : null },
          cell(s.id, 'mono'),
          cell(s.tenant),
          cell(s.kind),
          cell(s.live_secrets, 'num'),
          cell(s.created_at, 'mono'),
          cell(s.deleted_at, 'mono'),
          action,
        ),
      );
    }
    show($('sources-empty'), sources.length === 0);
    rows.dataset.state = 'ready';
  }

  async function deleteSource(s) {
    const yes = await askConfirm(
      `Delete source ${text(s.id)} of tenant ${text(s.tenant)}? Its deliveries are refused from then on.`,
      'Delete',
    );
    if (!yes) return;
    try {
      await api('POST', `/admin/api/sources/${encodeURIComponent(text(s.id))}/delete`);
      notify(`Source ${text(s.id)} deleted.`);
    } catch (err) {
      failed('Deleting the source', err);
    }
    await loadSources();
  }

  async function createSource(event) {
    event.preventDefault();
    const tenant = $('sources-tenant').value.trim();
    const kind = $('sources-kind').value;
    const secretInput = $('sources-secret');
    const secret = secretInput.value;
    hideSourceCreated();
    try {
      const res = await api('POST', '/admin/api/sources', { tenant, kind, secret });
      secretInput.value = '';
      $('source-created-id').textContent = text(res.id);
      $('source-created-url').textContent = `https://<your host>${text(res.path)}`;
      show($('source-created'), true);
      clearNotice();
    } catch (err) {
      failed('Creating the source', err);
    }
    await loadSources();
  }

  function hideSourceCreated() {
    show($('source-created'), false);
    $('source-created-id').textContent = '';
    $('source-created-url').textContent = '';
  }

  // ---- Wiring ---------------------------------------------------------------------------

  function bindHandlers() {
    $('login-form').addEventListener('submit', login);
    $('logout').addEventListener('click', logout);
    window.addEventListener('hashchange', route);
    window.addEventListener('resize', () => {
      if (state.chart && state.page === 'overview') state.chart.setSize({ width: chartWidth(), height: 280 });
    });
    $('events-form').addEventListener('submit', searchEvents);
    $('events-more').addEventListener('click', () => fetchEvents(state.events.next));
    $('dlq-refresh').addEventListener('click', loadDlq);
    $('dlq-redrive-selected').addEventListener('click', redriveSelected);
    $('dlq-redrive-all').addEventListener('click', redriveAll);
    $('dlq-drop-selected').addEventListener('click', dropSelected);
    $('dlq-select-all').addEventListener('change', (e) => {
      for (const box of $('dlq-rows').querySelectorAll('input[type=checkbox]')) box.checked = e.target.checked;
      syncSelectAll();
    });
    $('keys-form').addEventListener('submit', createKey);
    $('key-created-copy').addEventListener('click', copyKey);
    $('key-created-dismiss').addEventListener('click', hideKeyCreated);
    $('sources-form').addEventListener('submit', createSource);
    $('source-created-dismiss').addEventListener('click', hideSourceCreated);
    $('confirm-yes').addEventListener('click', () => answerConfirm(true));
    $('confirm-no').addEventListener('click', () => answerConfirm(false));
    document.addEventListener('keydown', (e) => {
      if (e.key === 'Escape' && !$('confirm').hidden) answerConfirm(false);
    });
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', boot);
  else boot();
})();
