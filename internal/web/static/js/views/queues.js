// Queues: the queue tree with each queue's nominal quota, usage, borrowed
// and lent capacity, and its share of the fleet against the share its
// quota entitles it to, now and over time.

import { get } from '../api.js';
import { h, replace, section, table, flavors, num, pct, link } from '../dom.js';
import { lineChart, bar } from '../chart.js';

// tree orders queues as the tree reads: each tenant, then its queues
// below it, with their depth.
function tree(queues) {
  const kids = new Map();
  for (const q of queues) {
    const p = q.parent || '';
    if (!kids.has(p)) kids.set(p, []);
    kids.get(p).push(q);
  }
  const names = new Set(queues.map((q) => q.name));
  const out = [];
  const walk = (parent, depth) => {
    for (const q of (kids.get(parent) || []).sort((a, b) => a.name.localeCompare(b.name))) {
      out.push({ ...q, depth });
      walk(q.name, depth + 1);
    }
  };
  walk('', 0);
  // A tenant's token sees its queues; their parent may be the tenant
  // itself, listed too, or (never today) one it does not see.
  for (const q of queues) if (q.parent && !names.has(q.parent) && !out.some((o) => o.name === q.name)) out.push({ ...q, depth: 0 });
  return out;
}

function quotaText(q) {
  return flavors(q.quotas, (l) => {
    let t = num(l.nominal);
    if (l.borrowingLimit !== undefined) t += ` (borrow ≤ ${num(l.borrowingLimit)})`;
    if (l.lendingLimit !== undefined) t += ` (lend ≤ ${num(l.lendingLimit)})`;
    return t;
  });
}

function shareChart(history, rows) {
  const tops = rows.filter((r) => r.depth === 0);
  // Lines for the tenants (an admin) or a tenant's own queues; at most
  // eight, those with the largest shares.
  const pick = (tops.length > 1 ? tops : rows).slice();
  const peak = (name) => Math.max(0, ...history.samples.map((x) => (x.queues[name] || {}).share || 0));
  pick.sort((a, b) => peak(b.name) - peak(a.name) || a.name.localeCompare(b.name));
  const chosen = pick.slice(0, 8);
  const t = (x) => new Date(x.time).getTime();
  const series = [];
  chosen.forEach((q, i) => {
    const pts = history.samples.filter((x) => x.queues[q.name]);
    series.push({ name: `${q.name} share`, color: i, points: pts.map((x) => [t(x), x.queues[q.name].share]) });
    series.push({ name: `${q.name} entitlement`, color: i, dashed: true, points: pts.map((x) => [t(x), x.queues[q.name].entitlement]) });
  });
  const top = Math.max(0.05, ...series.flatMap((sr) => sr.points.map((p) => p[1]))) * 1.1;
  return lineChart({
    title: 'Share of the fleet against entitlement (dashed)', yMax: Math.min(1, top), yFormat: pct, series,
    empty: `No samples yet: the server samples every ${num(history.intervalSeconds)} s.`,
  });
}

export default {
  async render(ctx) {
    const body = h('div');
    const load = async () => {
      const [qs, history] = await Promise.all([get('/v1/queues'), get('/v1/history')]);
      const rows = tree(qs.queues);
      const scale = Math.max(0.05, ...rows.map((r) => Math.max(r.share || 0, r.entitlement || 0))) * 1.1;
      const tbl = table({
        caption: 'Quotas and usage in accelerators, per flavor',
        rows,
        rowKey: (q) => q.name,
        empty: 'No queue yet.',
        columns: [
          ['Queue', (q) => h('span', { class: ['tree', 'depth-' + Math.min(q.depth, 3)] },
            q.depth === 0 ? h('strong', q.name) : link('#/jobs?queue=' + encodeURIComponent(q.name), q.name, { 'data-key': 'q-' + q.name }))],
          ['Weight', (q) => num(q.weight ?? 1), 'num'],
          ['Nominal quota', quotaText],
          ['In use', (q) => flavors(q.usage)],
          ['Borrowed', (q) => flavors(q.borrowed)],
          ['Lent', (q) => flavors(q.lent)],
          ['Share / entitlement', (q) => bar(q.share || 0, q.entitlement || 0, scale, `${pct(q.share || 0)} of ${pct(q.entitlement || 0)}`)],
          ['Pending', (q) => (q.depth === 0 && !q.parent ? '' : link('#/jobs?state=pending&queue=' + encodeURIComponent(q.name), String(q.pending))), 'num'],
          ['Running', (q) => String(q.running), 'num'],
        ],
      });
      replace(body,
        section('Queue tree', h('div', { class: 'scroll' }, tbl),
          h('p', { class: 'hint' }, 'Borrowed is what a queue\u2019s jobs hold above its nominal quota. Lent is the part of its idle quota that other queues below the same parent use, shared among the lenders in proportion to what each may lend. Shares are dominant shares of the fleet\u2019s pool: the largest, over flavors, of usage (or nominal quota, for the entitlement) over the pool.')),
        section('Over time', shareChart(history, rows)));
    };
    await load();
    const refresh = ctx.refresher(load);
    return {
      el: h('div', h('h1', 'Queues'), body),
      refresh,
      onEvent: (type) => {
        if (type === 'job' || type === 'sample') refresh();
      },
    };
  },
};
