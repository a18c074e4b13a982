// A job: its state, why it waits and until when, its replicas with their
// nodes and devices, its timeline, and its logs streaming live; cancel.

import { get, post, query, stream, ApiError } from '../api.js';
import { h, replace, section, table, badge, timeEl, time, until, select, field, message, link, localTimes } from '../dom.js';
import { placement } from './jobs.js';

const TERMINAL = new Set(['succeeded', 'failed', 'cancelled']);
// The log panel keeps the last 2 MiB of output; a longer log is read
// whole with gpufleet logs.
const MAX_LOG = 2 << 20;

function ordinal(n) {
  const s = ['th', 'st', 'nd', 'rd'];
  const v = n % 100;
  return n + (s[(v - 20) % 10] || s[v] || s[0]);
}

function facts(j) {
  const rows = [
    ['Tenant', j.tenant], ['Queue', j.queue], ['Kind', j.kind], ['Priority', String(j.priority)],
    ['Preemptible', j.preemptible ? 'yes' : 'no'],
    ['Submitted', timeEl(j.submitted)], ['Started', timeEl(j.started)], ['Finished', timeEl(j.finished)],
    ['Attempt', String(j.attempt)], ['Gang restarts', String(j.restarts || 0)],
    ['Gangs', (j.gangs || []).map((g) => `${g.name ? g.name + ': ' : ''}${g.replicas}${g.minReplicas ? ' (at least ' + g.minReplicas + ')' : ''} x ${g.milli ? g.milli + ' milli of ' : (g.count || 0) + ' '}${(g.accelerators || ['no accelerator']).join(' or ')}`).join('; ')],
    ['Command', h('code', { class: 'cmd' }, (j.command || []).join(' '))],
  ];
  if (j.reason) rows.push(['Reason', localTimes(j.reason)]);
  return h('dl', { class: 'facts' }, rows.map(([k, v]) => h('div', h('dt', k), h('dd', v))));
}

function waiting(j, place) {
  const ex = j.explanation || {};
  const items = [];
  if (place) items.push(h('p', h('strong', `${ordinal(place.position)} in queue ${place.queue}`), ` (${place.code})`));
  items.push(h('p', { class: 'reason' }, h('strong', 'Why it waits: '), localTimes(ex.reason || j.reason) || 'waiting for the next scheduling cycle'));
  items.push(h('p', h('strong', 'Earliest start: '), ex.earliestStart
    ? h('span', timeEl(ex.earliestStart), ` (${until(ex.earliestStart)}, if running jobs end when their estimates say)`)
    : 'no prediction (it does not wait for capacity, or the running jobs have no runtime estimates)'));
  return section('Waiting', ...items);
}

function replicas(j) {
  return section('Replicas',
    h('p', h('strong', 'Placement: '), h('span', { class: 'mono' }, placement(j))),
    h('div', { class: 'scroll' }, table({
      caption: `Attempt ${j.attempt}`,
      rows: j.replicas || [],
      empty: j.state === 'pending' ? 'Not placed yet.' : 'No replica.',
      columns: [
        ['Rank', (r) => String(r.rank), 'num'], ['Gang', (r) => String(r.gang), 'num'], ['Replica', (r) => String(r.replica), 'num'],
        ['Node', (r) => h('span', { class: 'mono' }, r.node)], ['Accelerator', (r) => r.accel || '—'],
        ['Devices', (r) => (r.devices && r.devices.length ? r.devices.join(', ') : '—') + (r.milli > 0 && r.milli < 1000 ? ` (${r.milli} milli)` : '')],
        ['State', (r) => badge(r.state)],
        ['Exit', (r) => (r.exitCode !== undefined ? `code ${r.exitCode}` : '') + (r.signal ? ` ${r.signal}` : '')],
      ],
    })));
}

function timeline(events) {
  const list = h('ol', { class: 'timeline' });
  for (const e of events.events) {
    list.append(h('li', { class: 'ev-' + e.type },
      h('span', { class: 'ev-time' }, e.time ? timeEl(e.time) : 'time not recorded'),
      h('strong', { class: 'ev-type' }, e.type), e.attempt ? ` attempt ${e.attempt}` : '',
      e.detail ? h('span', { class: 'ev-detail' }, ' — ', localTimes(e.detail)) : ''));
  }
  return section('Timeline', list,
    events.derived ? h('p', { class: 'hint' }, 'Read off the job\u2019s record: earlier attempts appear without their times.') : null);
}

function cancelControl(j, onDone) {
  const box = h('div', { class: 'cancel' });
  if (TERMINAL.has(j.state) || j.state === 'cancelling') return box;
  const ask = h('button', { type: 'button', class: 'danger', 'data-key': 'cancel' }, 'Cancel job…');
  ask.addEventListener('click', () => {
    const yes = h('button', { type: 'button', class: 'danger', 'data-key': 'cancel-yes' }, 'Cancel the job');
    const no = h('button', { type: 'button', 'data-key': 'cancel-no' }, 'Keep it');
    const out = h('p', { role: 'alert' });
    yes.addEventListener('click', async () => {
      yes.disabled = true;
      try {
        await post(`/v1/jobs/${encodeURIComponent(j.id)}/cancel`);
        out.textContent = 'Cancelled: its processes are stopping.';
        onDone();
      } catch (e) {
        out.textContent = e.message;
        yes.disabled = false;
      }
    });
    no.addEventListener('click', () => replace(box, ask));
    replace(box, h('div', { class: 'confirm', role: 'group', 'aria-label': 'Confirm the cancellation' },
      h('p', 'Stop this job? Its processes get SIGTERM, then SIGKILL after the stop grace.'), yes, no, out));
    yes.focus();
  });
  box.append(ask);
  return box;
}

// logs shows one rank's output, streamed live.
function logs(j) {
  const ranks = Math.max(1, (j.replicas || []).length || (j.gangs || []).reduce((a, g) => a + g.replicas, 0));
  const rankSel = select([...Array(ranks).keys()].map((r) => [String(r), `rank ${r}`]), '0', { 'data-key': 'log-rank' });
  const follow = h('input', { type: 'checkbox', checked: true, 'data-key': 'log-follow' });
  const out = h('pre', { class: 'log', tabindex: '0', 'aria-label': 'Output of the selected rank' });
  const status = h('p', { class: 'log-status', role: 'status' });
  let ctl = null;
  let paused = false;
  let size = 0;
  let offset = 0;
  let attempt = 0;
  // connect follows the log from where it is; start from the beginning.
  const connect = () => {
    if (ctl) ctl.abort();
    ctl = new AbortController();
    stream(() => query(`/v1/jobs/${encodeURIComponent(j.id)}/logs/stream`, { rank: rankSel.value, offset, attempt: attempt || undefined }), {
      signal: ctl.signal,
      once: true,
      onState: (st, err) => {
        if (st === 'closed' && err) status.textContent = err.message;
        else if (st === 'retrying') status.textContent = 'Reconnecting…';
      },
      onEvent: (type, d) => {
        if (type === 'log') {
          attempt = d.attempt;
          offset = d.next;
          out.append(document.createTextNode(d.text));
          size += d.text.length;
          while (size > MAX_LOG && out.firstChild) {
            size -= out.firstChild.textContent.length;
            out.firstChild.remove();
          }
          if (follow.checked) out.scrollTop = out.scrollHeight;
        } else if (type === 'attempt') {
          attempt = d.attempt;
          offset = 0;
          if (d.attempt > 1) out.append(document.createTextNode(`\n— attempt ${d.attempt} —\n`));
        } else if (type === 'state') {
          attempt = attempt || d.attempt;
          status.textContent = d.state === 'pending' ? 'Waiting for the job to start…' : `Following (job ${d.state}).`;
        } else if (type === 'end') {
          status.textContent = `End of output (job ${d.state}).`;
          ctl = null;
        }
      },
    });
  };
  const start = () => {
    out.replaceChildren();
    size = 0;
    offset = 0;
    attempt = 0;
    status.textContent = 'Connecting…';
    connect();
  };
  rankSel.addEventListener('change', start);
  start();
  const el = section('Logs',
    h('div', { class: 'toolbar' }, field('Replica', rankSel),
      h('div', { class: 'field check' }, h('label', follow, ' Scroll with new output'))),
    status, out);
  return {
    el,
    dispose: () => ctl && ctl.abort(),
    pause: () => {
      if (!ctl) return;
      ctl.abort();
      ctl = null;
      status.textContent = 'Paused while the page is hidden.';
      paused = true;
    },
    resume: () => {
      if (paused) connect();
      paused = false;
    },
  };
}

export default {
  async render(ctx) {
    const id = ctx.id;
    const path = `/v1/jobs/${encodeURIComponent(id)}`;
    let j;
    try {
      j = await get(path);
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) {
        return { el: h('div', h('h1', 'Job ', id), message('error', `There is no job ${id} that this token may see.`), link('#/jobs', 'All jobs')) };
      }
      throw e;
    }
    const head = h('div', { class: 'job-head' });
    const body = h('div');
    const load = async () => {
      j = await get(path);
      const [events, place] = await Promise.all([
        get(path + '/events'),
        j.state === 'pending' ? get(query('/v1/pending', { job: id })).then((l) => l.jobs[0]) : Promise.resolve(null),
      ]);
      replace(head, h('p', { class: 'state' }, 'State: ', badge(j.state), j.state === 'running' && j.started ? ` since ${time(j.started)}` : '',
        TERMINAL.has(j.state) && j.finished ? ` at ${time(j.finished)}` : ''), cancelControl(j, refresh));
      replace(body, j.state === 'pending' ? waiting(j, place) : null, section('Summary', facts(j)), replicas(j), timeline(events));
    };
    const refresh = ctx.refresher(load);
    await load();
    const lg = logs(j);
    return {
      el: h('div', h('h1', 'Job ', h('span', { class: 'mono' }, id)), head, body, lg.el),
      refresh,
      onEvent: (type, data) => {
        if (type === 'job' && data.id === id) refresh();
      },
      dispose: lg.dispose,
      pause: lg.pause,
      resume: lg.resume,
    };
  },
};
