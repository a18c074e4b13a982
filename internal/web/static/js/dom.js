// DOM building without markup: every piece of data becomes a text node
// (textContent), so job names, commands and logs can never be read as
// HTML. Nothing in the dashboard assigns innerHTML.

const SVG_NS = 'http://www.w3.org/2000/svg';

function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') {
      el.addEventListener(k.slice(2), v);
    } else if (k === 'class') {
      el.setAttribute('class', Array.isArray(v) ? v.filter(Boolean).join(' ') : v);
    } else if (k === 'dataset') {
      for (const [dk, dv] of Object.entries(v)) el.dataset[dk] = dv;
    } else if (k === 'value' && 'value' in el) {
      el.value = v;
    } else if (k === 'checked' || k === 'selected' || k === 'disabled' || k === 'hidden') {
      el[k] = Boolean(v);
    } else {
      el.setAttribute(k, v === true ? '' : String(v));
    }
  }
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// h builds an HTML element: h('a', {href: '#/jobs'}, 'Jobs').
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs instanceof Node || typeof attrs !== 'object' || Array.isArray(attrs)) {
    children.unshift(attrs);
    attrs = null;
  }
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

// s builds an SVG element.
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

// replace swaps a container's children, keeping the focus on the control
// that had it (matched by its data-key), so live refreshes do not throw a
// keyboard user back to the top.
export function replace(container, ...children) {
  const active = document.activeElement;
  const key = active && container.contains(active) ? active.dataset.key : undefined;
  container.replaceChildren();
  append(container, children);
  if (key) {
    const again = container.querySelector(`[data-key="${CSS.escape(key)}"]`);
    if (again) again.focus({ preventScroll: true });
  }
}

const states = {
  pending: 'waiting', running: 'ok', preempting: 'warn', cancelling: 'warn',
  succeeded: 'done', failed: 'bad', cancelled: 'muted',
  ready: 'ok', draining: 'warn', down: 'bad',
  starting: 'waiting', exited: 'done', lost: 'bad', skipped: 'muted',
  waiting: 'waiting', stopping: 'warn',
};

// badge shows a state in words (never by color alone).
export function badge(state) {
  return h('span', { class: ['badge', 'b-' + (states[state] || 'muted')] }, state);
}

// table renders rows; columns are [header, cell(row) => node or text,
// optional class]. An empty list shows a row saying so.
export function table({ caption, columns, rows, empty = 'Nothing to show.', rowKey }) {
  const head = h('thead', h('tr', columns.map(([title, , cls]) => h('th', { scope: 'col', class: cls }, title))));
  const body = h('tbody');
  if (rows.length === 0) {
    body.append(h('tr', h('td', { colspan: columns.length, class: 'empty' }, empty)));
  }
  for (const r of rows) {
    const tr = h('tr', { dataset: rowKey ? { row: rowKey(r) } : undefined });
    for (const [, cell, cls] of columns) tr.append(h('td', { class: cls }, cell(r)));
    body.append(tr);
  }
  return h('table', caption ? h('caption', caption) : null, head, body);
}

export function section(title, ...children) {
  const id = 'sec-' + title.toLowerCase().replace(/[^a-z0-9]+/g, '-');
  return h('section', { class: 'panel', 'aria-labelledby': id }, h('h2', { id }, title), ...children);
}

// Formatting.
const pad = (n) => String(n).padStart(2, '0');

export function time(t) {
  if (!t) return '—';
  const d = new Date(t);
  if (Number.isNaN(d.getTime()) || d.getTime() <= 0) return '—';
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function clock(t) {
  const d = new Date(t);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

export function clockSeconds(t) {
  const d = new Date(t);
  return `${clock(t)}:${pad(d.getSeconds())}`;
}

// localTimes writes the RFC 3339 times the server puts in its reasons
// (UTC) in local time, as the rest of the page does.
export function localTimes(text) {
  return String(text || '').replace(/\b\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z\b/g, (m) => time(m));
}

// timeEl is a <time> with the exact instant for assistive tools.
export function timeEl(t) {
  if (!t) return '—';
  return h('time', { datetime: new Date(t).toISOString() }, time(t));
}

export function duration(ms) {
  if (ms === undefined || ms === null || ms < 0) return '—';
  let s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  let m = Math.floor(s / 60);
  s %= 60;
  if (m < 60) return `${m}m ${pad(s)}s`;
  const hh = Math.floor(m / 60);
  m %= 60;
  if (hh < 48) return `${hh}h ${pad(m)}m`;
  return `${Math.floor(hh / 24)}d ${hh % 24}h`;
}

// until says how far ahead t is: "in 5m 10s", or "now".
export function until(t) {
  const ms = new Date(t).getTime() - Date.now();
  return ms <= 1000 ? 'now' : 'in ' + duration(ms);
}

export function pct(x) {
  if (x === undefined || x === null || Number.isNaN(x)) return '—';
  return `${(x * 100).toFixed(x < 0.1 && x > 0 ? 1 : 0)}%`;
}

export function num(x) {
  if (x === undefined || x === null) return '—';
  return Number.isInteger(x) ? String(x) : x.toFixed(x < 10 ? 2 : 1).replace(/\.?0+$/, '');
}

// flavors renders a flavor map: "h100 16, h200 8".
export function flavors(m, f = (v) => num(v)) {
  const keys = Object.keys(m || {}).sort();
  if (keys.length === 0) return '—';
  return keys.map((k) => `${k} ${f(m[k], k)}`).join(', ');
}

export function link(href, text, attrs = {}) {
  return h('a', { href, ...attrs }, text);
}

export function jobLink(id) {
  return link('#/job/' + encodeURIComponent(id), id, { class: 'mono' });
}

// field is a labelled control: the label names it for assistive tools.
export function field(label, control, hint) {
  const id = control.id || 'f-' + Math.random().toString(36).slice(2, 9);
  control.id = id;
  return h('div', { class: 'field' }, h('label', { for: id }, label), control, hint ? h('small', hint) : null);
}

export function select(options, value, attrs = {}) {
  return h('select', attrs, options.map(([v, text]) => h('option', { value: v, selected: v === value }, text)));
}

export function message(kind, ...text) {
  return h('p', { class: ['msg', 'msg-' + kind], role: kind === 'error' ? 'alert' : 'status' }, ...text);
}
