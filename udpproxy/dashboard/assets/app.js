// The discal dashboard: polls status.json once a second, keeps the last
// minute of each server's answers and CPU here in the page (the proxy keeps
// no history), and draws them. Plain JS, no framework, nothing fetched
// from elsewhere.
'use strict';

const POLL_MS = 1000;   // one point a second
const POINTS = 60;      // a minute of points
const SHARE_POINTS = 5; // the table's share: the last five seconds
const COLORS = ['#4c78a8', '#f58518', '#54a24b', '#e45756', '#72b7b2', '#b279a2', '#eeca3b', '#9d755d'];
const SVG = 'http://www.w3.org/2000/svg';

// servers: name → {color, answered (last counter), delta[], cpu[]}, each
// array POINTS long, oldest first, null where nothing is known.
const servers = new Map();
let nextColor = 0;

function track(name) {
  let s = servers.get(name);
  if (!s) {
    s = {color: COLORS[nextColor++ % COLORS.length], answered: null,
         delta: Array(POINTS).fill(null), cpu: Array(POINTS).fill(null)};
    servers.set(name, s);
  }
  return s;
}

function push(arr, v) { arr.push(v); arr.shift(); }

// record adds one point per server from one status document.
function record(status) {
  const seen = new Set();
  for (const sv of status.servers) {
    seen.add(sv.name);
    const s = track(sv.name);
    // A counter that went down belongs to a new server under the same name.
    push(s.delta, s.answered === null || sv.answered < s.answered ? null : sv.answered - s.answered);
    // A dead server's last report is not its CPU now: a gap, not a flat line.
    push(s.cpu, sv.state === 'down' ? null : sv.proc_cpu);
    s.answered = sv.answered;
    s.last = sv;
  }
  for (const name of servers.keys()) {
    if (!seen.has(name)) servers.delete(name);
  }
}

// shareAt is server s's share of all answers at point i, null when none.
function shareAt(s, i) {
  let total = 0;
  for (const o of servers.values()) total += o.delta[i] || 0;
  return total > 0 && s.delta[i] !== null ? s.delta[i] / total : null;
}

// recentShare is s's share of the answers over the last SHARE_POINTS.
function recentShare(s) {
  let mine = 0, total = 0;
  for (let i = POINTS - SHARE_POINTS; i < POINTS; i++) {
    for (const o of servers.values()) total += o.delta[i] || 0;
    mine += s.delta[i] || 0;
  }
  return total > 0 ? mine / total : null;
}

function fmt(v, digits, unit) { return v === null || v === undefined ? '–' : v.toFixed(digits) + unit; }

// fmtAge is how long ago a report came, from milliseconds.
function fmtAge(ms) {
  if (ms === null || ms === undefined) return '–';
  return ms < 10000 ? ms.toFixed(0) + ' ms' : fmtUptime(ms / 1000);
}

function fmtLatency(us) {
  if (!us) return '–';
  return us < 1000 ? us.toFixed(0) + ' µs' : (us / 1000).toFixed(1) + ' ms';
}

function cell(tr, content) {
  const td = tr.insertCell();
  if (content instanceof Node) td.append(content); else td.textContent = content;
  return td;
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function drawTable() {
  const body = document.querySelector('#servers tbody');
  body.replaceChildren();
  for (const [name, s] of servers) {
    const sv = s.last, share = recentShare(s), dead = sv.state === 'down';
    const tr = body.insertRow();
    tr.dataset.server = name;
    tr.dataset.state = sv.state;
    tr.dataset.share = share === null ? '' : share.toFixed(3);
    tr.dataset.inRotation = sv.in_rotation;
    // A dead server's figures are its last report's: grey, and in place of
    // them how long ago that report came.
    if (dead) tr.className = 'dead';
    const who = el('span');
    const sw = el('span', 'swatch');
    sw.style.background = s.color;
    who.append(sw, el('strong', '', name), el('span', 'addr', sv.calc_addr));
    cell(tr, who);
    const st = el('span');
    st.append(el('span', 'state ' + sv.state, sv.state));
    // In rotation though not up: the fallback of a bad day, serving.
    if (sv.in_rotation && sv.state !== 'up') st.append(el('span', 'fallback', 'serving as a fallback'));
    st.append(el('span', 'why', sv.state_reason));
    cell(tr, st);
    const sh = el('span');
    const bar = el('span', 'bar');
    bar.style.width = ((share || 0) * 6) + 'em';
    bar.style.background = s.color;
    sh.append(bar, fmt(share === null ? null : 100 * share, 0, '%'));
    cell(tr, sh).className = 'share';
    if (dead) {
      const gone = cell(tr, sv.has_report ? `no report for ${fmtAge(sv.report_age_ms)}` : 'never reported');
      gone.colSpan = 2; // the CPU columns
      gone.className = 'gone';
    } else {
      cell(tr, fmt(sv.proc_cpu, 1, '%'));
      cell(tr, fmt(sv.host_cpu, 1, '%'));
    }
    cell(tr, sv.cores ?? '–');
    cell(tr, sv.in_flight);
    cell(tr, dead ? '–' : fmtLatency(sv.latency_us));
    cell(tr, fmtAge(sv.report_age_ms));
    cell(tr, sv.answered);
    cell(tr, sv.timeouts);
  }
}

// drawChart draws one line per server of value(s, i) over the last minute,
// on a scale from 0 to max (or higher, if a value is).
function drawChart(svg, value, max, unit) {
  const W = 600, H = 180, L = 36, T = 8, B = 20;
  for (const s of servers.values()) {
    for (let i = 0; i < POINTS; i++) max = Math.max(max, value(s, i) || 0);
  }
  const x = i => L + (W - L - 4) * i / (POINTS - 1);
  const y = v => T + (H - T - B) * (1 - v / max);
  const nodes = [];
  for (const f of [0, 0.5, 1]) {
    const line = document.createElementNS(SVG, 'line');
    line.setAttribute('class', 'grid');
    line.setAttribute('x1', L); line.setAttribute('x2', W - 4);
    line.setAttribute('y1', y(f * max)); line.setAttribute('y2', y(f * max));
    const label = document.createElementNS(SVG, 'text');
    label.setAttribute('x', 2); label.setAttribute('y', y(f * max) + 4);
    label.textContent = Math.round(f * max) + unit;
    nodes.push(line, label);
  }
  for (const [text, at, anchor] of [['-60 s', L, 'start'], ['now', W - 4, 'end']]) {
    const t = document.createElementNS(SVG, 'text');
    t.setAttribute('x', at); t.setAttribute('y', H - 4); t.setAttribute('text-anchor', anchor);
    t.textContent = text;
    nodes.push(t);
  }
  for (const [name, s] of servers) {
    // A gap where a value is unknown: each run of known points is a line.
    let pts = [];
    const flush = () => {
      if (pts.length > 1) {
        const p = document.createElementNS(SVG, 'polyline');
        p.setAttribute('points', pts.join(' '));
        p.setAttribute('stroke', s.color);
        p.dataset.server = name;
        if (s.last.state === 'down') p.setAttribute('class', 'dead');
        nodes.push(p);
      }
      pts = [];
    };
    for (let i = 0; i < POINTS; i++) {
      const v = value(s, i);
      if (v === null || v === undefined) flush(); else pts.push(x(i).toFixed(1) + ',' + y(v).toFixed(1));
    }
    flush();
  }
  svg.replaceChildren(...nodes);
}

// fmtUptime is a duration in seconds as people say it: "3 d 4 h", "5 m 2 s".
function fmtUptime(sec) {
  const d = Math.floor(sec / 86400), h = Math.floor(sec % 86400 / 3600);
  const m = Math.floor(sec % 3600 / 60), s = Math.floor(sec % 60);
  if (d > 0) return `${d} d ${h} h`;
  if (h > 0) return `${h} h ${m} m`;
  return m > 0 ? `${m} m ${s} s` : `${s} s`;
}

// drawBuild shows the proxy's version, its commit (short, all of it in the
// tooltip) and how long it has been up.
function drawBuild(st) {
  const b = document.getElementById('build');
  const commit = st.commit && st.commit !== 'unknown' ? ' ' + st.commit.slice(0, 12) : '';
  b.textContent = `${st.version}${commit} · up ${fmtUptime(st.uptime_seconds)}`;
  b.title = `version ${st.version}, commit ${st.commit}`;
  b.dataset.uptime = st.uptime_seconds;
}

function drawSummary(st) {
  const up = st.servers.filter(s => s.state === 'up').length;
  const serving = st.servers.filter(s => s.in_rotation).length;
  document.getElementById('summary').textContent =
    `${up} of ${st.servers.length} servers up · ${serving} in rotation · requests ${st.requests} · ` +
    `replies ${st.replies} · retries ${st.retries} · timeouts ${st.timeouts} · no server ${st.no_server} · ` +
    `busy ${st.busy} · pending ${st.pending} · dropped ${st.dropped} · updated ${new Date().toLocaleTimeString()}`;
}

// drawReadiness shows what /readyz says, in the same words: nothing when
// all is well; a degraded banner when no server takes new work and a
// fallback (draining, else ejected servers) answers in their place; an
// alarm when nothing can take work at all.
function drawReadiness(st) {
  const b = document.getElementById('readiness');
  b.dataset.ready = st.ready;
  b.dataset.reason = st.ready_reason;
  if (st.ready && !st.ready_reason) {
    b.hidden = true;
    b.className = '';
    b.textContent = '';
    return;
  }
  b.hidden = false;
  b.className = st.ready ? 'degraded' : 'down';
  b.textContent = st.ready
    ? `${st.ready_reason}. Answers still come; /readyz says 200.`
    : `not ready: ${st.ready_reason}. Clients get "no server available"; /readyz says 503.`;
}

function problem(text) {
  const p = document.getElementById('problem');
  p.textContent = text;
  p.hidden = !text;
}

async function poll() {
  try {
    const r = await fetch('status.json', {cache: 'no-store'});
    if (!r.ok) {
      // A refusal says why (a Host the proxy does not answer to): show it.
      const why = await r.json().then(e => e.error, () => '');
      throw new Error(`HTTP ${r.status}${why ? ': ' + why : ''}`);
    }
    const st = await r.json();
    record(st);
    drawBuild(st);
    drawSummary(st);
    drawReadiness(st);
    drawTable();
    drawChart(document.getElementById('share-chart'), (s, i) => {
      const v = shareAt(s, i);
      return v === null ? null : 100 * v;
    }, 100, '%');
    drawChart(document.getElementById('cpu-chart'), (s, i) => s.cpu[i], 100, '%');
    problem('');
    // How many points the page holds: tests and scripts wait on it.
    document.body.dataset.polls = (+document.body.dataset.polls || 0) + 1;
  } catch (e) {
    problem('cannot read status.json: ' + e.message);
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

async function calculate(ev) {
  ev.preventDefault();
  const out = document.getElementById('calc-result'), by = document.getElementById('calc-server');
  const expr = document.getElementById('expr').value;
  out.textContent = '…';
  by.textContent = '';
  try {
    const r = await fetch('calc', {method: 'POST', headers: {'Content-Type': 'application/json'},
                                   body: JSON.stringify({expr})});
    const a = await r.json();
    out.className = a.error ? 'error' : '';
    out.textContent = a.error ? 'error: ' + a.error : a.result;
    if (a.server) by.textContent = `computed by ${a.server} in ${a.latency} (id ${a.id})`;
  } catch (e) {
    out.className = 'error';
    out.textContent = 'error: ' + e.message;
  }
}

document.getElementById('calc').addEventListener('submit', calculate);
poll();
