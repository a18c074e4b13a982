// Inference services: each service's replicas (desired, ready, starting,
// waiting for a place, draining), its load (requests in flight, held, a
// second), its endpoint; a service's page adds its replicas one by one
// with their nodes, ports and cold starts, and its latest scaling events.
// The counts move with every request, so the view reloads every two
// seconds while it is open as well as on the server's job events. A
// service's page also sets its replica bounds (PATCH /v1/services/ID),
// in a form the reloads leave alone.

import { get, request } from '../api.js';
import { h, replace, section, table, badge, timeEl, num, link, message, field } from '../dom.js';

const POLL_MS = 2000;

function seconds(s) {
  if (s === undefined || s === null) return '—';
  return s < 60 ? `${num(Math.round(s * 10) / 10)} s` : `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}

function endpoint(s) {
  return location.origin + s.endpoint;
}

function serviceLink(s) {
  return link('#/services/' + encodeURIComponent(s.id), s.name, { 'data-key': 'svc-' + s.id });
}

function replicaCounts(s) {
  const parts = [`${s.ready} ready`];
  if (s.starting) parts.push(`${s.starting} starting`);
  if (s.waiting) parts.push(`${s.waiting} waiting for a place`);
  if (s.draining) parts.push(`${s.draining} draining`);
  if (s.stopping) parts.push(`${s.stopping} stopping`);
  return parts.join(', ');
}

function list(ctx, services) {
  const admin = ctx.who.role === 'admin';
  return section('Services', h('div', { class: 'scroll' }, table({
    caption: 'Live services; requests go to each one\u2019s endpoint with a tenant token or one of its API keys',
    rows: services,
    rowKey: (s) => s.id,
    empty: 'No service. Submit a job of kind: service with a service: section (docs/SERVICES.md).',
    columns: [
      ['Service', (s) => serviceLink(s)],
      ...(admin ? [['Tenant', (s) => s.tenant]] : []),
      ['State', (s) => badge(s.state)],
      ['Desired', (s) => String(s.desired), 'num'],
      ['Replicas', (s) => replicaCounts(s)],
      ['Bounds', (s) => `${s.minReplicas}..${s.maxReplicas}`, 'num'],
      ['In flight', (s) => String(s.inFlight), 'num'],
      ['Held', (s) => String(s.queued), 'num'],
      ['Requests/s', (s) => num(Math.round(s.requestRate * 10) / 10), 'num'],
      ['Endpoint', (s) => h('code', { class: 'mono' }, endpoint(s))],
    ],
  })));
}

function detail(s) {
  const facts = [
    ['Tenant', s.tenant], ['Queue', s.queue], ['State', badge(s.state)],
    ['Endpoint', h('code', { class: 'mono' }, endpoint(s))],
    ['Replicas', `${s.desired} desired${s.mode ? ' (' + s.mode + ')' : ''}; ${replicaCounts(s)}; bounds ${s.minReplicas}..${s.maxReplicas}`],
    ['Autoscaling', `${s.policy}, on ${s.tokens ? 'prompt tokens a second' : 'requests in flight'}`],
    ['Load', `${s.inFlight} in flight, ${s.queued} held, ${num(Math.round(s.requestRate * 100) / 100)} requests a second (last minute)`],
    ['Cold start', s.coldStartSeconds ? `${seconds(s.coldStartSeconds)} reckoned` + ((s.coldStarts || []).length ? `; last measured ${s.coldStarts.slice(-8).map(seconds).join(', ')}` : '') : 'none measured yet'],
    ['API keys', (s.keys || []).length ? s.keys.map((k) => k.id).join(', ') : 'none (gpufleet service key create ' + s.name + ')'],
    ['Submitted', timeEl(s.submitted)],
    ['Job', link('#/job/' + encodeURIComponent(s.id), s.id, { class: 'mono' })],
  ];
  if (s.reason) facts.splice(3, 0, ['Reason', s.reason]);
  return [
    h('dl', { class: 'facts' }, facts.map(([k, v]) => h('div', h('dt', k), h('dd', v)))),
    section('Replicas', h('div', { class: 'scroll' }, table({
      caption: 'Replicas that are not over',
      rows: s.replicas || [],
      rowKey: (r) => `${r.replica}`,
      empty: s.desired === 0 ? 'Scaled to zero: the next request starts a replica.' : 'None placed yet.',
      columns: [
        ['Replica', (r) => String(r.replica), 'num'],
        ['Attempt', (r) => String(r.attempt), 'num'],
        ['Phase', (r) => badge(r.phase)],
        ['Node', (r) => h('span', { class: 'mono' }, r.node || '—')],
        ['Port', (r) => (r.port ? String(r.port) : '—'), 'num'],
        ['In flight', (r) => String(r.inFlight), 'num'],
        ['Placed', (r) => (r.placed ? timeEl(r.placed) : '—')],
        ['Cold start', (r) => (r.readyAt && r.placed ? seconds((new Date(r.readyAt) - new Date(r.placed)) / 1000) : '—'), 'num'],
        ['Why', (r) => r.reason || ''],
      ],
    }))),
    section('Events', h('div', { class: 'scroll' }, table({
      caption: 'Latest first',
      rows: (s.events || []).slice().reverse(),
      empty: 'No event yet.',
      columns: [
        ['Time', (e) => timeEl(e.time)],
        ['Event', (e) => e.kind],
        ['Detail', (e) => e.detail || ''],
      ],
    }))),
  ];
}

// boundsForm sets a service's replica bounds; done reloads the page.
function boundsForm(s, done) {
  const minIn = h('input', { type: 'number', min: '0', max: '10000', step: '1', value: String(s.minReplicas), name: 'minReplicas', 'data-key': 'bounds-min' });
  const maxIn = h('input', { type: 'number', min: '1', max: '10000', step: '1', value: String(s.maxReplicas), name: 'maxReplicas', 'data-key': 'bounds-max' });
  const btn = h('button', { type: 'submit', 'data-key': 'bounds-set' }, 'Set bounds');
  const result = h('div', { class: 'result bounds-result' });
  const form = h('form', {
    class: 'toolbar bounds-form', 'aria-label': 'Replica bounds',
    onsubmit: async (e) => {
      e.preventDefault();
      btn.disabled = true;
      try {
        const body = JSON.stringify({ minReplicas: Number(minIn.value), maxReplicas: Number(maxIn.value) });
        const v = await request('PATCH', '/v1/services/' + encodeURIComponent(s.id), { body, type: 'application/json' });
        replace(result, message('info', `Bounds set to ${v.minReplicas}..${v.maxReplicas}: ${v.desired} desired.`));
        done();
      } catch (err) {
        replace(result, message('error', err.field ? `${err.field}: ${err.message}` : err.message));
      } finally {
        btn.disabled = false;
      }
    },
  }, field('Min replicas', minIn), field('Max replicas', maxIn), btn);
  return section('Replica bounds', form,
    h('p', { class: 'hint' }, 'A floor of 0 lets the service scale to zero when idle; a floor above the count starts replicas now (warm them before a launch); a ceiling below it drains the extra ones without dropping a request. The autoscaler decides within the bounds from its next step.'),
    result);
}

export default {
  async render(ctx) {
    const body = h('div');
    const title = h('h1', 'Services');
    const controls = h('div');
    let refresh = () => {};
    const load = async () => {
      if (ctx.id) {
        const s = await get('/v1/services/' + encodeURIComponent(ctx.id));
        replace(title, 'Service ', s.name);
        replace(body, h('p', link('#/services', '← All services')), ...detail(s));
        if (!controls.firstChild && s.state === 'running') replace(controls, boundsForm(s, () => refresh()));
        return;
      }
      const l = await get('/v1/services');
      replace(body, list(ctx, l.services));
    };
    try {
      await load();
    } catch (e) {
      if (!ctx.id || e.status !== 404) throw e;
      replace(body, message('error', 'No such service that this token may see.'), h('p', link('#/services', '← All services')));
    }
    refresh = ctx.refresher(load);
    const timer = setInterval(refresh, POLL_MS);
    return {
      el: h('div', title, body, controls),
      refresh,
      onEvent: (type) => {
        if (type === 'job') refresh();
      },
      dispose: () => clearInterval(timer),
    };
  },
};
