// Charts drawn as inline SVG. Each chart is a figure whose caption says
// in words what the lines show and their latest values, for those who do
// not see the drawing.

import { h, s, clock, clockSeconds } from './dom.js';

const W = 640;
const M = { left: 46, right: 14, top: 12, bottom: 24 };

// lineChart draws series of [timeMs, value] points over a shared time axis.
// yMax fixes the top of the axis (else the largest value), yFormat labels
// values and xFormat times (default: the clock). A series may be dashed
// (an entitlement line).
export function lineChart({ title, series, yMax, yFormat = String, xFormat, height = 170, empty }) {
  const all = series.flatMap((sr) => sr.points);
  const fig = h('figure', { class: 'chart' });
  const titleId = 'c-' + Math.random().toString(36).slice(2, 9);
  fig.append(h('figcaption', { id: titleId }, h('strong', title)));
  if (all.length === 0) {
    fig.append(h('p', { class: 'empty' }, empty || 'No samples yet.'));
    return fig;
  }
  const t0 = Math.min(...all.map((p) => p[0]));
  let t1 = Math.max(...all.map((p) => p[0]));
  if (t1 === t0) t1 = t0 + 60000;
  let top = yMax ?? Math.max(...all.map((p) => p[1]));
  if (!(top > 0)) top = 1;
  const H = height;
  const x = (t) => M.left + ((t - t0) / (t1 - t0)) * (W - M.left - M.right);
  const y = (v) => H - M.bottom - (v / top) * (H - M.top - M.bottom);
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-labelledby': titleId, class: 'chart-svg' });
  for (let i = 0; i <= 4; i++) {
    const v = (top * i) / 4;
    svg.append(s('line', { x1: M.left, x2: W - M.right, y1: y(v), y2: y(v), class: 'grid' }));
    svg.append(s('text', { x: M.left - 6, y: y(v) + 4, class: 'tick', 'text-anchor': 'end' }, yFormat(v)));
  }
  const ticks = 5;
  // Minutes label a span of an hour or more; a shorter one needs seconds.
  const label = xFormat || (t1 - t0 >= 3600e3 ? clock : clockSeconds);
  for (let i = 0; i <= ticks; i++) {
    const t = t0 + ((t1 - t0) * i) / ticks;
    svg.append(s('text', { x: x(t), y: H - 6, class: 'tick', 'text-anchor': i === 0 ? 'start' : i === ticks ? 'end' : 'middle' }, label(t)));
  }
  series.forEach((sr, i) => {
    const cls = ['line', 's' + (sr.color ?? i) % 8, sr.dashed ? 'dashed' : ''].join(' ');
    if (sr.points.length === 1) {
      const [t, v] = sr.points[0];
      svg.append(s('circle', { cx: x(t), cy: y(v), r: 3, class: cls + ' dot' }));
      return;
    }
    const d = sr.points.map(([t, v], k) => `${k ? 'L' : 'M'}${x(t).toFixed(1)},${y(Math.min(v, top)).toFixed(1)}`).join('');
    svg.append(s('path', { d, class: cls }));
  });
  fig.append(svg);
  const legend = h('ul', { class: 'legend' });
  series.forEach((sr, i) => {
    const last = sr.points.at(-1);
    legend.append(h('li', h('span', { class: ['swatch', 's' + (sr.color ?? i) % 8, sr.dashed ? 'dashed' : ''], 'aria-hidden': 'true' }),
      `${sr.name}: ${last ? yFormat(last[1]) : '—'}`));
  });
  fig.append(legend);
  return fig;
}

// bar draws a value against a mark (a share against its entitlement) on a
// 0..max scale, with the figures in words beside it.
export function bar(value, mark, max, label) {
  const w = 120;
  const hgt = 12;
  const sc = (v) => Math.max(0, Math.min(1, v / max)) * w;
  return h('span', { class: 'bar' },
    s('svg', { viewBox: `0 0 ${w} ${hgt}`, width: w, height: hgt, 'aria-hidden': 'true' },
      s('rect', { x: 0, y: 0, width: w, height: hgt, class: 'bar-bg' }),
      s('rect', { x: 0, y: 0, width: sc(value), height: hgt, class: value > mark ? 'bar-over' : 'bar-fill' }),
      s('line', { x1: sc(mark), x2: sc(mark), y1: 0, y2: hgt, class: 'bar-mark' })),
    h('span', { class: 'bar-text' }, label));
}
