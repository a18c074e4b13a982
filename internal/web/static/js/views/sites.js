// Sites: each site's power cap, the power it draws or has committed, its
// PUE and the grid's carbon intensity the forecast gives for now
// (/v1/sites; docs/ENERGY.md). An administrator changes a cap with
// gpufleet admin cap SITE KW.

import { get } from '../api.js';
import { h, replace, section, table } from '../dom.js';

const kw = (v) => (v === undefined || v === null ? '—' : Number(v).toFixed(1));

// headroom is the share of the cap the draw leaves, for the meter bar.
function load(s) {
  if (s.capKW === undefined || s.drawKW === undefined) return '—';
  const pct = Math.min(100, Math.round((100 * s.drawKW) / s.capKW));
  return h('span', { class: pct >= 90 ? 'capped' : '' },
    h('meter', { min: 0, max: 100, value: pct, title: `${pct}% of the cap` }), ` ${pct}%`);
}

export default {
  async render(ctx) {
    const body = h('div');
    const refreshData = async () => {
      const l = await get('/v1/sites');
      replace(body,
        section(l.carbonAware ? 'Sites (carbon-aware scheduling on)' : 'Sites',
          h('div', { class: 'scroll' }, table({
            caption: 'Power of facility (IT power x PUE) unless the cap says IT; draw counts capacity held for deferred jobs',
            rows: l.sites,
            rowKey: (s) => s.site,
            empty: 'No site yet: the fleet file gives none and no node has registered.',
            columns: [
              ['Site', (s) => s.site],
              ['Nodes', (s) => String(s.nodes), 'num'],
              ['Cap kW', (s) => (s.capKW === undefined ? 'none' : `${kw(s.capKW)}${s.itCap ? ' IT' : ''}${s.capSource === 'admin' ? ' (admin)' : ''}`), 'num'],
              ['Draw kW', (s) => kw(s.drawKW), 'num'],
              ['Of the cap', load],
              ['PUE', (s) => (s.pue ? String(s.pue) : '—'), 'num'],
              ['gCO2/kWh now', (s) => (s.intensityGPerKWh === undefined ? '—' : Number(s.intensityGPerKWh).toFixed(1)), 'num'],
            ],
          }))));
    };
    await refreshData();
    const refresh = ctx.refresher(refreshData);
    return {
      el: h('div', h('h1', 'Sites'), body),
      refresh,
      onEvent: (type) => {
        if (type === 'job' || type === 'node' || type === 'sample') refresh();
      },
    };
  },
};
