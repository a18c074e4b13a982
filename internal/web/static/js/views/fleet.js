// Fleet: sites, blocks, racks and nodes as a map, each node's devices
// colored by what is allocated on them, per accelerator type; nodes down
// and draining; utilization and fragmentation over time. A tenant sees
// the fleet's capacity and where its own jobs run, not other tenants'
// allocations.

import { get, query } from '../api.js';
import { h, s, replace, section, badge, pct, num, select, field, message } from '../dom.js';
import { lineChart } from '../chart.js';

const LEVELS = ['region', 'zone', 'block', 'rack'];

// holdingJobs reads the jobs the token may see that hold devices
// (running, or stopping and still holding them): their replicas give each
// device's allocation. A few pages of each state at most.
export async function holdingJobs() {
  const read = async (state) => {
    const out = [];
    let before = '';
    for (let page = 0; page < 5; page++) {
      const l = await get(query('/v1/jobs', { state, order: 'newest', limit: 10000, before }));
      out.push(...l.jobs);
      if (!l.next) break;
      before = l.next;
    }
    return out;
  };
  const lists = await Promise.all(['running', 'preempting', 'cancelling'].map(read));
  return lists.flat();
}

// deviceUse maps node -> per-device milli in use, from running replicas.
function deviceUse(jobs) {
  const use = new Map();
  for (const j of jobs) {
    for (const r of j.replicas || []) {
      if (r.state === 'exited' || r.state === 'lost' || r.state === 'skipped') continue;
      const devs = use.get(r.node) || [];
      for (const d of r.devices || []) {
        devs[d] = (devs[d] || 0) + (r.milli > 0 && r.milli < 1000 ? r.milli : 1000);
      }
      use.set(r.node, devs);
    }
  }
  return use;
}

function bucket(frac) {
  if (frac <= 0) return 'a0';
  if (frac < 0.34) return 'a1';
  if (frac < 0.67) return 'a2';
  if (frac < 1) return 'a3';
  return 'a4';
}

function deviceCells(count, used) {
  const size = 11;
  const gap = 3;
  const per = Math.min(count, 8);
  const rows = Math.ceil(count / per) || 1;
  const w = per * (size + gap);
  const svg = s('svg', { viewBox: `0 0 ${w} ${rows * (size + gap)}`, width: w, height: rows * (size + gap), 'aria-hidden': 'true', class: 'cells' });
  for (let i = 0; i < count; i++) {
    const x = (i % per) * (size + gap);
    const y = Math.floor(i / per) * (size + gap);
    const m = Math.min(1000, used[i] || 0);
    svg.append(s('rect', { x, y, width: size, height: size, rx: 2, class: 'cell' }));
    if (m > 0) {
      const fh = (size * m) / 1000;
      svg.append(s('rect', { x, y: y + size - fh, width: size, height: fh, rx: m === 1000 ? 2 : 0, class: 'cell-used' }));
    }
  }
  return svg;
}

function nodeTile(n, used, admin) {
  const devs = used || [];
  const milli = admin && n.allocatedMilli !== undefined ? n.allocatedMilli : devs.reduce((a, b) => a + (b || 0), 0);
  const frac = n.count > 0 ? milli / (n.count * 1000) : 0;
  const whose = admin ? 'allocated' : 'held by your jobs';
  const summary = `${n.name}: ${n.state}${n.drained ? ' (drained by an administrator)' : ''}, ${num(milli / 1000)} of ${n.count} ${n.accel || 'accelerators'} ${whose}`;
  return h('li', { class: ['node', 'st-' + n.state, bucket(frac)], title: summary, dataset: { node: n.name } },
    h('span', { class: 'node-name' }, n.name),
    n.state === 'ready' ? null : badge(n.state),
    n.count > 0 ? deviceCells(n.count, devs) : h('span', { class: 'cpu-only' }, 'CPU only'),
    h('span', { class: 'sr-only' }, summary));
}

// group nests nodes by topology level: site (region/zone), block, rack.
function group(nodes) {
  const sites = new Map();
  for (const n of nodes) {
    const p = n.path || {};
    const site = `${p.region || 'default'} / ${p.zone || 'default'}`;
    const block = p.block || 'default';
    const rack = p.rack || 'default';
    if (!sites.has(site)) sites.set(site, new Map());
    const blocks = sites.get(site);
    if (!blocks.has(block)) blocks.set(block, new Map());
    const racks = blocks.get(block);
    if (!racks.has(rack)) racks.set(rack, []);
    racks.get(rack).push(n);
  }
  return sites;
}

function map(nodes, use, admin) {
  const out = h('div', { class: 'map' });
  const sorted = (m) => [...m.entries()].sort(([a], [b]) => a.localeCompare(b));
  for (const [site, blocks] of sorted(group(nodes))) {
    const siteEl = h('div', { class: 'site' }, h('h3', 'Site ', h('span', { class: 'mono' }, site)));
    for (const [block, racks] of sorted(blocks)) {
      const blockEl = h('div', { class: 'block' }, h('h4', 'Block ', h('span', { class: 'mono' }, block)));
      const rackRow = h('div', { class: 'racks' });
      for (const [rack, ns] of sorted(racks)) {
        ns.sort((a, b) => a.name.localeCompare(b.name));
        rackRow.append(h('div', { class: 'rack' }, h('h5', 'Rack ', h('span', { class: 'mono' }, rack)),
          h('ul', { class: 'nodes', 'aria-label': `Nodes of rack ${rack}` }, ns.map((n) => nodeTile(n, use.get(n.name), admin)))));
      }
      blockEl.append(rackRow);
      siteEl.append(blockEl);
    }
    out.append(siteEl);
  }
  return out;
}

function legend(admin) {
  const item = (cls, text) => h('li', h('span', { class: ['key', cls], 'aria-hidden': 'true' }), text);
  return h('ul', { class: 'legend map-legend', 'aria-label': 'Legend' },
    item('a0', 'nothing allocated'), item('a2', 'partly allocated'), item('a4', 'full'),
    item('st-draining', 'draining (no new work)'), item('st-down', 'down'),
    h('li', admin ? 'Each square is a device; its fill is the share of it that running replicas hold.'
      : 'Each square is a device; filled squares are held by your jobs. Other tenants\u2019 allocations are not shown.'));
}

function summary(nodes, latest, use, admin, queues) {
  const count = (st) => nodes.filter((n) => n.state === st).length;
  const types = new Map();
  for (const n of nodes) {
    if (!n.accel || n.state === 'down') continue;
    const t = types.get(n.accel) || { total: 0, used: 0 };
    t.total += n.count;
    t.used += admin ? (n.allocatedMilli || 0) / 1000 : (use.get(n.name) || []).reduce((a, b) => a + (b || 0), 0) / 1000;
    types.set(n.accel, t);
  }
  const cards = [
    ['Nodes', `${count('ready')} ready, ${count('draining')} draining, ${count('down')} down`],
    ...[...types.entries()].sort().map(([t, v]) => [t, admin ? `${num(v.used)} of ${v.total} allocated (${pct(v.used / v.total)})`
      : `${v.total} up, ${num(v.used)} held by your jobs`]),
  ];
  if (admin && latest && latest.fleet) {
    cards.push(['Utilization', pct(latest.fleet.utilization)], ['Fragmentation', pct(latest.fleet.fragmentation)],
      ['Jobs', `${latest.fleet.running} running, ${latest.fleet.pending} pending`]);
  } else if (!admin) {
    // The queues that hold jobs: those without queues below them.
    const mine = queues.filter((q) => !queues.some((o) => o.parent === q.name));
    cards.push(['Your jobs', `${mine.reduce((a, q) => a + q.running, 0)} running, ${mine.reduce((a, q) => a + q.pending, 0)} pending`]);
  }
  return h('dl', { class: 'cards' }, cards.map(([k, v]) => h('div', { class: 'card' }, h('dt', k), h('dd', v))));
}

function charts(history) {
  const samples = history.samples.filter((x) => x.fleet);
  const t = (x) => new Date(x.time).getTime();
  const every = `the server samples every ${num(history.intervalSeconds)} s`;
  const util = lineChart({
    title: 'Utilization and fragmentation', yMax: 1, yFormat: pct, empty: `No samples yet: ${every}.`,
    series: [
      { name: 'utilization', points: samples.map((x) => [t(x), x.fleet.utilization]) },
      { name: 'fragmentation (free capacity on partly used nodes)', points: samples.map((x) => [t(x), x.fleet.fragmentation]) },
    ],
  });
  const types = [...new Set(samples.flatMap((x) => Object.keys(x.fleet.byType || {})))].sort();
  const byType = lineChart({
    title: 'Allocated by accelerator type', yMax: 1, yFormat: pct, empty: `No samples yet: ${every}.`,
    series: types.map((ty) => ({
      name: ty,
      points: samples.map((x) => {
        const v = (x.fleet.byType || {})[ty];
        return [t(x), v && v.accelerators ? v.allocated / v.accelerators : 0];
      }),
    })),
  });
  return h('div', { class: 'charts' }, util, byType);
}

export default {
  async render(ctx) {
    const admin = ctx.who.role === 'admin';
    const body = h('div');
    let accel = ctx.params.get('accel') || '';
    const load = async () => {
      const [nodes, history, running, queues] = await Promise.all([
        get('/v1/nodes'), get('/v1/history'), holdingJobs(), admin ? Promise.resolve({ queues: [] }) : get('/v1/queues')]);
      const all = nodes.nodes;
      const use = deviceUse(running);
      const types = [...new Set(all.map((n) => n.accel).filter(Boolean))].sort();
      const shown = accel ? all.filter((n) => n.accel === accel) : all;
      const pick = select([['', 'All types'], ...types.map((t) => [t, t])], accel, { 'data-key': 'accel' });
      pick.addEventListener('change', () => {
        accel = pick.value;
        ctx.navigate(accel ? '#/fleet?accel=' + encodeURIComponent(accel) : '#/fleet');
      });
      const latest = history.samples.at(-1);
      replace(body,
        summary(all, latest, use, admin, queues.queues),
        section('Map',
          h('div', { class: 'toolbar' }, field('Accelerator type', pick)),
          all.length === 0 ? message('info', 'No node has registered yet.') : map(shown, use, admin),
          legend(admin)),
        admin ? section('Over time', charts(history)) : null);
    };
    await load();
    const refresh = ctx.refresher(load);
    return {
      el: h('div', h('h1', 'Fleet'), body),
      refresh,
      onEvent: (type, data) => {
        if (type === 'node' || type === 'sample' || (type === 'job' && (data.state === 'running' || data.previous === 'running' || data.previous === 'cancelling' || data.previous === 'preempting'))) refresh();
      },
    };
  },
};
