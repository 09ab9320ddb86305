// Strata web console. Everything shown comes from this meta node's /api
// routes, called with the admin token the operator enters (kept in this
// tab's sessionStorage). Data is only ever put on the page as text
// (textContent, attribute values): never as HTML.
'use strict';

(() => {
  const TOKEN_KEY = 'strata.console.token';
  const POLL_MS = 1000;
  // A listing makes every slot leader scan its keys, so the services list
  // is asked for less often (and at once after a search or a page turn).
  const SERVICES_MS = 5000;
  const MOVED_MS = 15000; // a slot whose leader changed stays marked this long
  const PAGE_SIZE = 100;
  const RAW_MAX = 200; // characters of a value that is not an instance
  const SVGNS = 'http://www.w3.org/2000/svg';
  const PALETTE = ['#2457c5', '#e04f16', '#079455', '#7a5af8', '#dd2590', '#0e9384',
    '#ca8504', '#4e5ba6', '#c01048', '#3e7b27', '#6938ef', '#b93815'];

  const $ = (id) => document.getElementById(id);

  // el makes an element: attrs are set as attributes (values are text),
  // children are nodes or strings (added as text nodes).
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v !== undefined && v !== null && v !== false) e.setAttribute(k, String(v));
    }
    for (const c of children) {
      if (c === undefined || c === null) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  function svgEl(tag, attrs, text) {
    const e = document.createElementNS(SVGNS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = String(text);
    return e;
  }

  class AuthError extends Error {
    constructor(status, detail) {
      super(detail);
      this.status = status;
    }
  }

  const state = {
    token: sessionStorage.getItem(TOKEN_KEY) || '',
    timer: 0,
    polling: false,
    filter: '',
    prevSlots: new Map(), // slot id -> leader, from the previous poll
    movedAt: new Map(), // slot id -> when its leader change was seen
    selectedSlot: null,
    selectedService: '',
    pages: [''], // the "after" tokens of the services pages seen
    page: 0,
    nextToken: '',
    servicesAt: 0, // when the services list was last asked for (0: ask now)
  };

  async function api(path) {
    const headers = {Accept: 'application/json'};
    if (state.token) headers.Authorization = 'Bearer ' + state.token;
    const r = await fetch(path, {headers, cache: 'no-store', credentials: 'same-origin', redirect: 'error'});
    if (r.status === 401 || r.status === 403) {
      let detail = '';
      try { detail = (await r.json()).error || ''; } catch (_) { /* not JSON */ }
      throw new AuthError(r.status, detail);
    }
    if (!r.ok) {
      let detail = '';
      try { detail = (await r.json()).error || ''; } catch (_) { /* not JSON */ }
      throw new Error(path.split('?')[0] + ' answered ' + r.status + (detail ? ': ' + detail : ''));
    }
    return r.json();
  }

  // readyz is open and answers 503 with its reason while not ready.
  async function readyz() {
    const r = await fetch('/readyz', {cache: 'no-store'});
    try { return await r.json(); } catch (_) { return {status: 'readyz answered ' + r.status}; }
  }

  function showError(msg) {
    const e = $('error');
    e.textContent = msg;
    e.hidden = !msg;
  }

  function showLogin(err) {
    $('main').hidden = true;
    $('login').hidden = false;
    $('logout').hidden = true;
    let msg;
    if (err.status === 403) {
      msg = 'This token is not an operator\'s (403 Forbidden)';
    } else if (state.token) {
      msg = 'The admin token was refused (401 Unauthorized)';
    } else {
      msg = 'This node needs an admin token (401 Unauthorized)';
    }
    if (err.message) msg += ': ' + err.message;
    showError(msg + '. Enter an operator\'s token.');
    // A refused token is not kept.
    state.token = '';
    sessionStorage.removeItem(TOKEN_KEY);
    $('token').focus();
  }

  async function poll() {
    clearTimeout(state.timer);
    if (state.polling) return;
    if (document.hidden) return; // visibilitychange polls again
    state.polling = true;
    try {
      const [members, slots, series, ready] = await Promise.all([
        api('/api/v1/members'), api('/api/v1/slots'), api('/api/v1/console/series'), readyz()]);
      $('login').hidden = true;
      $('main').hidden = false;
      $('logout').hidden = !state.token;
      $('cluster').textContent = members.cluster_id ? 'cluster ' + members.cluster_id : '';
      renderNodes(members, series);
      renderSlots(slots, ready, members);
      renderCharts(series);
      await pollServices();
      showError('');
      $('status').textContent = 'updated ' + new Date().toLocaleTimeString();
    } catch (e) {
      state.polling = false;
      if (e instanceof AuthError) {
        showLogin(e);
        return; // until a token is entered
      }
      showError('Cannot read the cluster: ' + e.message);
      $('status').textContent = 'retrying';
    }
    state.polling = false;
    state.timer = setTimeout(poll, POLL_MS);
  }

  // ---- nodes

  function matches(...fields) {
    const q = state.filter.toLowerCase();
    return !q || fields.some((f) => f !== undefined && f !== null && String(f).toLowerCase().includes(q));
  }

  function fmtBytes(n) {
    if (n === undefined) return '';
    const units = ['B', 'KiB', 'MiB', 'GiB'];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return n.toFixed(i ? 1 : 0) + ' ' + units[i];
  }

  function renderNodes(members, series) {
    const scrape = new Map((series.nodes || []).map((n) => [n.id, n]));
    const gossip = members.gossip || {};
    const nodes = [];
    for (const p of members.meta || []) {
      nodes.push({id: p.id, role: 'meta', zone: '', grpc: p.grpc_address || '', http: p.http_address || '',
        badges: [p.leader ? 'raft leader' : '', p.voter ? 'voter' : 'non-voter'].filter(Boolean)});
    }
    for (const m of members.members || []) {
      nodes.push({id: m.id, role: m.role, zone: m.zone || '', grpc: m.grpc || '', http: m.http || '', badges: []});
    }
    const root = $('nodes');
    root.replaceChildren();
    for (const role of ['meta', 'data', 'session']) {
      const ofRole = nodes.filter((n) => n.role === role);
      const box = el('div', {class: 'role', 'data-role': role}, el('h3', {}, role + ' (' + ofRole.length + ')'));
      const zones = [...new Set(ofRole.map((n) => n.zone))].sort();
      for (const zone of zones) {
        box.append(el('div', {class: 'zone'}, zone ? 'zone ' + zone : 'no zone'));
        const body = el('tbody');
        for (const n of ofRole.filter((x) => x.zone === zone).sort((a, b) => a.id.localeCompare(b.id))) {
          body.append(nodeRow(n, gossip[n.id], scrape.get(n.id)));
        }
        const head = el('tr', {}, el('th', {}, 'node'), el('th', {}, 'state'), el('th', {}, 'gRPC'), el('th', {}, 'HTTP'),
          el('th', {}, role === 'session' ? 'connections' : ''), el('th', {}, 'heap'), el('th', {}, 'goroutines'));
        box.append(el('table', {}, el('thead', {}, head), body));
      }
      root.append(box);
    }
  }

  function nodeRow(n, pool, sc) {
    let st = pool || 'missing';
    let why = pool ? 'gossip: ' + pool : 'not in this node\'s gossip pool';
    if (sc && !sc.up) {
      st = st === 'alive' ? 'down' : st;
      why += '; metrics scrape failed: ' + (sc.error || 'unknown error');
    }
    const g = (sc && sc.gauges) || {};
    const idCell = el('td', {}, n.id, ...n.badges.map((b) => el('span', {class: 'badge'}, b)));
    const row = el('tr', {'data-node': n.id, 'data-state': st},
      idCell,
      el('td', {class: 'state-' + st, title: why}, st),
      el('td', {}, n.grpc), el('td', {}, n.http),
      el('td', {}, n.role === 'session' && g.connections !== undefined ? g.connections : ''),
      el('td', {}, fmtBytes(g.heap_inuse_bytes)),
      el('td', {}, g.goroutines !== undefined ? g.goroutines : ''));
    if (!matches(n.id, n.zone, n.grpc, n.http, n.role, st)) row.classList.add('hidden');
    return row;
  }

  // ---- slots

  function colours(ids) {
    const m = new Map();
    ids.forEach((id, i) => m.set(id, i < PALETTE.length ? PALETTE[i] : 'hsl(' + ((i * 47) % 360) + ' 60% 45%)'));
    return m;
  }

  function renderSlots(table, ready, members) {
    const now = Date.now();
    const slots = table.slots || [];
    const dataIDs = new Set((members.members || []).filter((m) => m.role === 'data').map((m) => m.id));
    for (const s of slots) if (s.leader) dataIDs.add(s.leader);
    const ids = [...dataIDs].sort();
    const colour = colours(ids);
    const led = new Map(ids.map((id) => [id, 0]));
    const map = $('slotmap');
    // One cell per slot, made once and then updated in place.
    while (map.children.length > slots.length) map.lastChild.remove();
    while (map.children.length < slots.length) map.append(el('div', {class: 'cell'}));
    let unsynced = 0;
    let moved = 0;
    slots.forEach((s, i) => {
      const prev = state.prevSlots.get(s.id);
      if (prev !== undefined && prev !== s.leader) state.movedAt.set(s.id, now);
      state.prevSlots.set(s.id, s.leader);
      const recent = now - (state.movedAt.get(s.id) || -Infinity) < MOVED_MS;
      const notSynced = (s.followers || []).filter((f) => !(s.synced || []).includes(f));
      if (s.leader) led.set(s.leader, (led.get(s.leader) || 0) + 1);
      if (notSynced.length) unsynced++;
      if (recent) moved++;
      const c = map.children[i];
      c.setAttribute('data-slot', s.id);
      c.setAttribute('data-leader', s.leader || '');
      c.setAttribute('data-followers', (s.followers || []).join(' '));
      c.className = 'cell';
      if (!s.leader) c.classList.add('nolead');
      if (notSynced.length) c.classList.add('unsynced');
      if (recent) c.classList.add('moved');
      if (state.selectedSlot === s.id) c.classList.add('selected');
      if (!matches(s.id === Number(state.filter) ? state.filter : undefined, s.leader, ...(s.followers || []))) c.classList.add('dim');
      c.style.backgroundColor = s.leader ? colour.get(s.leader) : '';
      c.title = slotText(s, notSynced, recent);
    });
    const legend = $('slot-legend');
    legend.replaceChildren();
    for (const id of ids) {
      const sw = el('span', {class: 'swatch'});
      sw.style.backgroundColor = colour.get(id);
      legend.append(el('span', {'data-legend': id}, sw, id + ' leads ' + led.get(id)));
    }
    const m = (ready && ready.slots) || {};
    let motion = m.state || (ready && ready.status) || '';
    if (m.state === 'moving') {
      motion += ': ' + m.pending_moves + ' pending moves, ' + m.followers_syncing + ' followers syncing' +
        (m.handovers !== null && m.handovers !== undefined ? ', ' + m.handovers + ' handovers' : '');
    }
    $('slot-summary').textContent = slots.length + ' slots, epoch ' + table.epoch + ', ' + motion +
      (unsynced ? ' · ' + unsynced + ' with followers not synced' : '') + (moved ? ' · ' + moved + ' leaders changed' : '');
    const sel = slots.find((s) => s.id === state.selectedSlot);
    if (sel) $('slot-detail').textContent = $('slotmap').children[slots.indexOf(sel)].title;
  }

  function slotText(s, notSynced, recent) {
    const f = (s.followers || []).map((x) => x + (notSynced.includes(x) ? ' (not synced)' : ' (synced)'));
    return 'slot ' + s.id + ': leader ' + (s.leader || 'none') + ' (leader epoch ' + s.leader_epoch + ')' +
      '; followers ' + (f.length ? f.join(', ') : 'none') + (recent ? '; leader changed in the last 15 s' : '');
  }

  // ---- charts

  // chart draws series (each {name, values}) over points' times into svg.
  function chart(svg, points, series, span, unit) {
    const W = 640, H = 200, L = 48, R = 10, T = 22, B = 22;
    svg.replaceChildren();
    const tMax = points.length ? points[points.length - 1].t_ms : Date.now();
    const tMin = tMax - span;
    let yMax = 0;
    for (const s of series) for (const v of s.values) if (v !== null && v > yMax) yMax = v;
    yMax = yMax > 0 ? yMax * 1.15 : 1;
    const x = (t) => L + ((t - tMin) / span) * (W - L - R);
    const y = (v) => H - B - (v / yMax) * (H - T - B);
    for (const f of [0, 0.5, 1]) {
      svg.append(svgEl('line', {class: 'grid', x1: L, x2: W - R, y1: y(yMax * f), y2: y(yMax * f)}));
      svg.append(svgEl('text', {x: L - 4, y: y(yMax * f) + 4, 'text-anchor': 'end'}, fmtNum(yMax * f)));
    }
    svg.append(svgEl('line', {class: 'axis', x1: L, x2: W - R, y1: H - B, y2: H - B}));
    svg.append(svgEl('text', {x: L, y: H - 6}, '-' + Math.round(span / 60000) + ' min'));
    svg.append(svgEl('text', {x: W - R, y: H - 6, 'text-anchor': 'end'}, 'now'));
    svg.append(svgEl('text', {x: L, y: 14}, unit));
    series.forEach((s, k) => {
      let d = '';
      let pen = false;
      points.forEach((p, i) => {
        const v = s.values[i];
        if (v === null || p.t_ms < tMin) { pen = false; return; }
        d += (pen ? 'L' : 'M') + x(p.t_ms).toFixed(1) + ' ' + y(v).toFixed(1);
        pen = true;
        svg.append(svgEl('circle', {class: 's' + k, cx: x(p.t_ms).toFixed(1), cy: y(v).toFixed(1), r: 2, 'data-series': s.name, 'data-value': v}));
      });
      if (d) svg.append(svgEl('path', {class: 'line s' + k, d}));
      svg.append(svgEl('text', {class: 's' + k, x: W - R - 150 + k * 80, y: 14}, '● ' + s.name));
    });
  }

  function fmtNum(v) {
    if (v >= 100) return v.toFixed(0);
    if (v >= 10) return v.toFixed(1);
    return v.toFixed(2);
  }

  function renderCharts(s) {
    const points = s.points || [];
    const span = Math.max(1, s.capacity) * s.interval_seconds * 1000;
    const val = (v) => (v === undefined || v === null ? null : v);
    chart($('chart-latency'), points, [
      {name: 'p50', values: points.map((p) => val(p.push_p50_ms))},
      {name: 'p99', values: points.map((p) => val(p.push_p99_ms))},
    ], span, 'ms');
    chart($('chart-registrations'), points, [
      {name: 'publishers', values: points.map((p) => (p.registrations_per_second ? p.registrations_per_second.publisher || 0 : null))},
      {name: 'subscribers', values: points.map((p) => (p.registrations_per_second ? p.registrations_per_second.subscriber || 0 : null))},
    ], span, '/s');
    const last = points[points.length - 1];
    $('latency-note').textContent = last ? 'over the last ' + s.window_seconds + ' s: ' + last.pushes_in_window + ' pushes acked' : 'no scrape yet';
  }

  // ---- services

  async function pollServices() {
    if (Date.now() - state.servicesAt >= SERVICES_MS) await listServices();
    if (state.selectedService) {
      renderService(await api('/api/v1/service?data_info_id=' + encodeURIComponent(state.selectedService)));
    }
  }

  async function listServices() {
    state.servicesAt = Date.now();
    const q = '/api/v1/services?limit=' + PAGE_SIZE + '&prefix=' + encodeURIComponent(state.filter) +
      (state.pages[state.page] ? '&after=' + encodeURIComponent(state.pages[state.page]) : '');
    const list = await api(q);
    const services = list.services || [];
    const missing = list.missing_slots || [];
    $('services-note').textContent = services.length + (list.next ? '+' : '') + ' shown' +
      (state.filter ? ', data ID prefix "' + state.filter + '"' : '') +
      (missing.length ? ' · partial: ' + missing.length + (missing.length === 1 ? ' slot' : ' slots') + ' could not be listed' : '');
    const body = $('service-list').tBodies[0];
    body.replaceChildren();
    for (const s of services) {
      const row = el('tr', {'data-service': s.data_info_id},
        el('td', {}, s.data_id), el('td', {}, s.publishers), el('td', {}, s.instance_id + ' / ' + s.group));
      if (s.data_info_id === state.selectedService) row.classList.add('selected');
      row.addEventListener('click', () => {
        state.selectedService = s.data_info_id;
        for (const x of body.querySelectorAll('.selected')) x.classList.remove('selected');
        row.classList.add('selected');
        poll();
      });
      body.append(row);
    }
    state.nextToken = list.next || '';
    $('services-next').hidden = !state.nextToken;
    $('services-first').hidden = state.page === 0;
  }

  // instanceOf reads a value as a discovery instance
  // ({"v":1,"addr":...,"weight":...,"zone":...,"metadata":{...},"state":...}),
  // or null.
  function instanceOf(text) {
    let v;
    try { v = JSON.parse(text); } catch (_) { return null; }
    if (!v || typeof v !== 'object' || typeof v.v !== 'number' || v.v < 1 || typeof v.addr !== 'string') return null;
    return v;
  }

  // RANK orders instance states by the traffic they take, as discovery
  // does: an operator's mark shows only when it holds more back than the
  // owner's state (an unknown state is not serving).
  function rank(st) {
    if (st === 'serving') return 0;
    if (st === 'disabled') return 2;
    return 1;
  }

  function valueNode(text, marks) {
    const inst = instanceOf(text);
    if (!inst) {
      const s = String(text);
      return el('span', {class: 'raw'}, s.length > RAW_MAX ? s.slice(0, RAW_MAX) + '… (' + s.length + ' characters)' : s);
    }
    const meta = inst.metadata && typeof inst.metadata === 'object' ? inst.metadata : {};
    let st = typeof inst.state === 'string' && inst.state ? inst.state : 'serving'; // absent: serving
    const mark = marks && Object.prototype.hasOwnProperty.call(marks, inst.addr) ? String(marks[inst.addr]) : '';
    if (mark && rank(mark) > rank(st)) st = mark + ' (operator)';
    const parts = [inst.addr, 'weight ' + (inst.weight || 1)];
    if (inst.zone) parts.push('zone ' + inst.zone);
    parts.push('state ' + st);
    const extra = Object.entries(meta).map(([k, v]) => k + '=' + v).join(' ');
    if (extra) parts.push(extra.length > RAW_MAX ? extra.slice(0, RAW_MAX) + '…' : extra);
    return el('span', {class: 'instance' + (st === 'serving' ? '' : ' not-serving'), 'data-addr': inst.addr, 'data-state': st.split(' ')[0]}, parts.join(' · '));
  }

  function renderService(d) {
    const pubs = d.publishers || [];
    const body = el('tbody');
    for (const p of pubs) {
      body.append(el('tr', {'data-publisher': p.register_id},
        el('td', {}, p.register_id), el('td', {}, p.zone), el('td', {}, p.session),
        el('td', {}, ...(p.values || []).map((v) => valueNode(v, d.instance_states)))));
    }
    $('service-detail').replaceChildren(
      el('h3', {}, d.data_info_id + ' · version ' + d.version + ' · ' + pubs.length + ' publishers'),
      pubs.length ? '' : el('p', {class: 'muted'}, 'no publishers: nothing is registered under this data ID now'),
      el('table', {}, el('thead', {}, el('tr', {}, el('th', {}, 'register ID'), el('th', {}, 'zone'), el('th', {}, 'session'), el('th', {}, 'values'))), body));
  }

  // ---- wiring

  function start() {
    $('login-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      state.token = $('token').value.trim();
      $('token').value = '';
      if (state.token) sessionStorage.setItem(TOKEN_KEY, state.token); else sessionStorage.removeItem(TOKEN_KEY);
      showError('');
      poll();
    });
    $('logout').addEventListener('click', () => {
      state.token = '';
      sessionStorage.removeItem(TOKEN_KEY);
      clearTimeout(state.timer);
      showLogin(new AuthError(401, ''));
      showError('');
    });
    $('search').addEventListener('input', () => {
      state.filter = $('search').value.trim();
      state.pages = [''];
      state.page = 0;
      state.servicesAt = 0;
      poll();
    });
    $('slotmap').addEventListener('click', (ev) => {
      const c = ev.target.closest('.cell');
      if (!c) return;
      state.selectedSlot = Number(c.getAttribute('data-slot'));
      $('slot-detail').textContent = c.title;
      for (const x of $('slotmap').querySelectorAll('.selected')) x.classList.remove('selected');
      c.classList.add('selected');
    });
    $('services-next').addEventListener('click', () => {
      state.pages = state.pages.slice(0, state.page + 1);
      state.pages.push(state.nextToken);
      state.page++;
      state.servicesAt = 0;
      poll();
    });
    $('services-first').addEventListener('click', () => { state.pages = ['']; state.page = 0; state.servicesAt = 0; poll(); });
    // Back in view: catch up at once (unless the page waits for a token).
    document.addEventListener('visibilitychange', () => { if (!document.hidden && !$('main').hidden) poll(); });
    poll();
  }

  start();
})();
