// Jobs: filtered by state, tenant, queue and kind, newest first, a page at
// a time. Pending jobs are listed from the scheduling core, in their
// queues' order, each with its position, the reason it waits and its
// earliest start; running jobs with their placement.

import { get, query } from '../api.js';
import { h, replace, section, table, badge, timeEl, duration, until, jobLink, select, field, message, link, localTimes } from '../dom.js';

const STATES = ['pending', 'running', 'preempting', 'cancelling', 'succeeded', 'failed', 'cancelled'];
const KINDS = ['training', 'fine-tuning', 'batch', 'service'];
const PAGE = 50;

// placement lists a job's nodes with its replicas on each.
export function placement(j) {
  const per = new Map();
  for (const r of j.replicas || []) per.set(r.node, (per.get(r.node) || 0) + 1);
  if (per.size === 0) return '—';
  return [...per.entries()].map(([n, c]) => (c > 1 ? `${n} (${c})` : n)).join(', ');
}

function ran(j) {
  if (!j.started) return '—';
  const end = j.finished ? new Date(j.finished).getTime() : Date.now();
  return duration(end - new Date(j.started).getTime());
}

function filters(ctx, tenants, queues) {
  const p = ctx.params;
  const admin = ctx.who.role === 'admin';
  const go = (changes) => {
    const next = new URLSearchParams(p);
    for (const [k, v] of Object.entries(changes)) {
      if (v) next.set(k, v);
      else next.delete(k);
    }
    next.delete('before');
    next.delete('offset');
    const qs = next.toString();
    ctx.navigate('#/jobs' + (qs ? '?' + qs : ''));
  };
  const mk = (name, label, options) => {
    const el = select([['', 'All'], ...options.map((o) => [o, o])], p.get(name) || '', { 'data-key': 'filter-' + name, name });
    el.addEventListener('change', () => go({ [name]: el.value }));
    return field(label, el);
  };
  return h('form', { class: 'toolbar', role: 'search', 'aria-label': 'Filter jobs', onsubmit: (e) => e.preventDefault() },
    mk('state', 'State', STATES),
    admin ? mk('tenant', 'Tenant', tenants) : null,
    mk('queue', 'Queue', queues),
    mk('kind', 'Kind', KINDS));
}

async function pendingPage(ctx, admin) {
  const p = ctx.params;
  const offset = Number(p.get('offset') || 0);
  const l = await get(query('/v1/pending', { queue: p.get('queue'), tenant: p.get('tenant'), kind: p.get('kind'), limit: PAGE, offset }));
  const tbl = table({
    caption: `${l.total} pending, in their queues' order`,
    rows: l.jobs,
    rowKey: (j) => (j.element !== undefined ? `${j.id}[${j.element}]` : j.id),
    empty: 'No job is waiting.',
    columns: [
      ['Position', (j) => h('span', { class: 'pos' }, `#${j.position}`), 'num'],
      // An array job's replicas wait each on its own.
      ['Job', (j) => (j.element !== undefined ? h('span', jobLink(j.id), ` replica ${j.element}`) : jobLink(j.id))],
      ['Queue', (j) => j.queue, 'nowrap'],
      ...(admin ? [['Tenant', (j) => j.tenant]] : []),
      ['Kind', (j) => j.kind],
      ['Priority', (j) => String(j.priority), 'num'],
      ['Waiting', (j) => duration(Date.now() - new Date(j.submitted).getTime())],
      ['Why it waits', (j) => h('span', { class: 'reason' }, h('span', { class: 'code' }, j.code), ' ', localTimes(j.reason))],
      ['Earliest start', (j) => (j.earliestStart ? h('span', timeEl(j.earliestStart), ' ', h('small', `(${until(j.earliestStart)})`)) : '—')],
    ],
  });
  const base = new URLSearchParams(p);
  const pager = h('nav', { class: 'pager', 'aria-label': 'Pages' });
  if (offset > 0) {
    base.set('offset', String(Math.max(0, offset - PAGE)));
    pager.append(link('#/jobs?' + base.toString(), '← Earlier in the queues'));
  }
  if (l.next) {
    base.set('offset', l.next);
    pager.append(link('#/jobs?' + base.toString(), 'Later in the queues →'));
  }
  return [tbl, pager];
}

async function jobsPage(ctx, admin) {
  const p = ctx.params;
  const l = await get(query('/v1/jobs', {
    state: p.get('state'), queue: p.get('queue'), tenant: p.get('tenant'), kind: p.get('kind'),
    order: 'newest', limit: PAGE, before: p.get('before'),
  }));
  const tbl = table({
    caption: 'Newest first',
    rows: l.jobs,
    rowKey: (j) => j.id,
    empty: 'No job matches.',
    columns: [
      ['Job', (j) => jobLink(j.id)],
      ['State', (j) => badge(j.state)],
      ...(admin ? [['Tenant', (j) => j.tenant]] : []),
      ['Queue', (j) => j.queue, 'nowrap'],
      ['Kind', (j) => j.kind],
      ['Submitted', (j) => timeEl(j.submitted)],
      ['Ran', ran],
      ['Placement or reason', (j) => {
        if (j.state === 'pending') return localTimes((j.explanation && j.explanation.reason) || j.reason) || '—';
        if (j.state === 'running' || j.state === 'preempting' || j.state === 'cancelling') return h('span', { class: 'mono' }, placement(j));
        return localTimes(j.reason);
      }],
    ],
  });
  const pager = h('nav', { class: 'pager', 'aria-label': 'Pages' });
  if (p.get('before')) {
    const first = new URLSearchParams(p);
    first.delete('before');
    pager.append(link('#/jobs?' + first.toString(), '← Newest'));
  }
  if (l.next) {
    const older = new URLSearchParams(p);
    older.set('before', l.next);
    pager.append(link('#/jobs?' + older.toString(), 'Older →'));
  }
  const note = l.jobs.length < PAGE && l.next
    ? message('info', 'Few jobs match this filter: this page read as many stored jobs as one page may. Older ones may match further on.') : null;
  return [tbl, note, pager];
}

export default {
  async render(ctx) {
    const admin = ctx.who.role === 'admin';
    const [tenants, queues] = await Promise.all([admin ? get('/v1/tenants') : Promise.resolve({ tenants: [] }), get('/v1/queues')]);
    const leafNames = queues.queues.filter((q) => !queues.queues.some((o) => o.parent === q.name)).map((q) => q.name).sort();
    const body = h('div');
    const pending = ctx.params.get('state') === 'pending';
    const load = async () => {
      const parts = pending ? await pendingPage(ctx, admin) : await jobsPage(ctx, admin);
      replace(body, h('div', { class: 'scroll' }, parts[0]), ...parts.slice(1));
    };
    await load();
    const refresh = ctx.refresher(load);
    return {
      el: h('div', h('h1', 'Jobs'), filters(ctx, tenants.tenants.map((t) => t.name).sort(), leafNames),
        section(pending ? 'Pending jobs' : 'Jobs', body)),
      refresh,
      onEvent: (type) => {
        if (type === 'job') refresh();
      },
    };
  },
};
