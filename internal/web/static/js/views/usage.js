// Usage: this month's usage by tenant, queue, tier, accelerator type and
// site (accelerator-hours, energy, carbon, cost), each tenant's cost day
// by day, and the credits and budgets: standing, grants and threshold
// events (/v1/usage, /v1/credits; docs/ACCOUNTING.md). A tenant's token
// sees only its own.

import { get, query } from '../api.js';
import { h, replace, section, table, num, time } from '../dom.js';
import { lineChart } from '../chart.js';

// money writes an amount (a decimal number of units) to the currency's
// coin.
const money = (v, digits) => (v === undefined || v === null ? '' : Number(v).toFixed(digits));
const fixed = (v, d) => (v === undefined || v === null ? '' : Number(v).toFixed(d));
const utcDay = (t) => new Date(t).toISOString().slice(0, 10);

// costChart draws each tenant's cost this month, day by day, added up.
function costChart(daily) {
  const byTenant = new Map();
  for (const r of daily.rows) {
    if (r.kind !== 'used' || !r.period) continue;
    if (!byTenant.has(r.tenant)) byTenant.set(r.tenant, new Map());
    const days = byTenant.get(r.tenant);
    days.set(r.period, (days.get(r.period) || 0) + Number(r.cost));
  }
  const tenants = [...byTenant.keys()].sort().slice(0, 8);
  const series = tenants.map((t, i) => {
    // From 0 at the month's start to the sum at the end of each day (or
    // now, for today), days without usage included.
    const days = byTenant.get(t);
    const from = Date.parse(daily.from);
    const to = Math.min(Date.parse(daily.to), Date.now());
    const points = [[from, 0]];
    let sum = 0;
    for (let d = from; d < to; d += 86_400_000) {
      sum += days.get(utcDay(d)) || 0;
      points.push([Math.min(d + 86_400_000, to), sum]);
    }
    return { name: `${t} (${daily.currency})`, color: i, points };
  });
  return lineChart({
    title: `Cost this month, day by day, added up (${daily.currency})`, series,
    yFormat: (v) => (v >= 100 ? num(Math.round(v)) : v.toFixed(2)), xFormat: (t) => new Date(t).toISOString().slice(5, 10),
    empty: 'Nothing metered this month yet.',
  });
}

// burnChart draws each prepaid tenant's credits left over the month: at
// the end of each day, today's balance plus what was spent after that day
// (read back from the day's costs), from the month's start or from the
// latest grant's start this month, whichever is later (before a grant
// started, usage was not paid from it). An expiry during the month is not
// redrawn: the line reads what the credits now left paid for.
function burnChart(daily, credits) {
  const cost = new Map();
  for (const r of daily.rows) {
    if (r.kind !== 'used' || !r.period) continue;
    if (!cost.has(r.tenant)) cost.set(r.tenant, new Map());
    const days = cost.get(r.tenant);
    days.set(r.period, (days.get(r.period) || 0) + Number(r.cost));
  }
  const from = Date.parse(daily.from);
  const to = Math.min(Date.parse(daily.to), Date.now());
  const prepaid = credits.balances.filter((b) => !b.queue && !b.postpaid).map((b) => b.tenant).sort().slice(0, 8);
  const series = prepaid.map((t, i) => {
    const left = Number(credits.balances.find((b) => !b.queue && b.tenant === t).credits);
    const starts = credits.grants.filter((g) => g.tenant === t && !g.queue).map((g) => Date.parse(g.start));
    const begin = Math.max(from, ...starts.filter((x) => x <= to));
    const days = cost.get(t) || new Map();
    const ends = [];
    for (let d = from; d < to; d += 86_400_000) ends.push(Math.min(d + 86_400_000, to));
    // Walking back from now: at the end of day k, the balance now plus
    // what the days after k spent; at the line's start, plus the spending
    // of every day that ended after it.
    const points = [];
    let after = 0;
    for (let k = ends.length - 1; k >= 0 && ends[k] > begin; k--) {
      points.unshift([ends[k], left + after]);
      after += days.get(utcDay(ends[k] - 1)) || 0;
    }
    points.unshift([begin, left + after]);
    return { name: `${t} (${credits.currency})`, color: i, points };
  });
  return lineChart({
    title: `Credits left over the month (${credits.currency})`, series,
    yFormat: (v) => (v >= 100 ? num(Math.round(v)) : v.toFixed(2)), xFormat: (t) => new Date(t).toISOString().slice(5, 10),
    empty: 'No prepaid tenant: usage is billed after the fact.',
  });
}

export default {
  async render(ctx) {
    const body = h('div');
    const load = async () => {
      const [rep, daily, credits] = await Promise.all([
        get(query('/v1/usage', { by: 'tenant,queue,tier,type,site' })),
        get(query('/v1/usage', { by: 'tenant', period: 'day' })),
        get('/v1/credits'),
      ]);
      const d = rep.minorDigits;
      const rows = table({
        caption: `From ${utcDay(rep.from)} to ${utcDay(rep.to)} (UTC, to excluded), ${rep.currency}`,
        rows: rep.rows,
        rowKey: (r) => [r.kind, r.tenant, r.queue, r.tier, r.type, r.site].join('|'),
        empty: 'Nothing metered in this range yet.',
        columns: [
          ['Tenant', (r) => (r.kind === 'used' ? r.tenant : `${r.tenant || ''} (${r.kind})`)],
          ['Queue', (r) => r.queue],
          ['Tier', (r) => r.tier],
          ['Type', (r) => r.type],
          ['Site', (r) => r.site],
          ['Accelerator-hours', (r) => fixed(r.acceleratorHours, 2), 'num'],
          ['Energy kWh', (r) => fixed(r.energyKWh, 2), 'num'],
          ['CO2e kg', (r) => fixed(r.co2Kg, 2), 'num'],
          ['Cost', (r) => money(r.cost, d), 'num'],
        ],
      });
      const t = rep.total;
      const total = h('p', { class: 'total' },
        `Total: ${fixed(t.acceleratorHours, 2)} accelerator-hours, ${fixed(t.energyKWh, 2)} kWh, ${fixed(t.co2Kg, 2)} kg CO2e, ${money(t.cost, d)} ${rep.currency}`,
        rep.fleetCost !== undefined ? `; the fleet's cost ${money(rep.fleetCost, d)} ${rep.currency}` : '');
      const cd = credits.minorDigits;
      const balances = table({
        caption: `Standing now, ${credits.currency}`,
        rows: credits.balances,
        rowKey: (b) => b.tenant + '|' + (b.queue || ''),
        empty: 'No tenant yet.',
        columns: [
          ['Tenant', (b) => (b.queue ? `${b.tenant} / ${b.queue}` : b.tenant)],
          ['Credits left', (b) => (b.postpaid ? 'postpaid' : money(b.credits, cd)), 'num'],
          ['Burn an hour', (b) => money(b.burnRate, cd), 'num'],
          ['Spent in ' + (credits.balances[0] || {}).month, (b) => money(b.spent, cd), 'num'],
          ['Monthly budget', (b) => (b.budget === undefined ? '' : money(b.budget, cd)), 'num'],
          ['Admission', (b) => (b.paused ? h('span', { class: 'paused' }, 'paused: ' + b.paused) : 'open')],
        ],
      });
      const grants = table({
        caption: 'Credit grants, in the order they burn',
        rows: credits.grants,
        rowKey: (g) => g.id,
        empty: 'No credit grant: usage is billed after the fact.',
        columns: [
          ['Grant', (g) => g.id],
          ['Tenant', (g) => (g.queue ? `${g.tenant} / ${g.queue}` : g.tenant)],
          ['Kind', (g) => g.kind],
          ['Amount', (g) => money(g.amount, cd), 'num'],
          ['Burned', (g) => money(g.burned, cd), 'num'],
          ['Left', (g) => money(g.left, cd), 'num'],
          ['Expires', (g) => (g.expires ? time(g.expires) : 'never')],
          ['State', (g) => g.state],
        ],
      });
      const events = credits.events.slice(-20).reverse();
      replace(body,
        section('Usage this month', h('div', { class: 'scroll' }, rows), total),
        section('Cost over the month', costChart(daily)),
        section('Credits and budgets', h('div', { class: 'scroll' }, balances), burnChart(daily, credits), h('div', { class: 'scroll' }, grants),
          events.length === 0 ? h('p', { class: 'hint' }, 'No threshold reached yet (events at 50%, 80% and 100% of each grant and budget).')
            : h('ul', { class: 'events' }, events.map((e) => h('li', time(e.time), ' ', e.message)))));
    };
    await load();
    const refresh = ctx.refresher(load);
    return {
      el: h('div', h('h1', 'Usage'), body),
      refresh,
      onEvent: (type) => {
        if (type === 'job' || type === 'sample') refresh();
      },
    };
  },
};
