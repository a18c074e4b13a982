// Submit: a job document in YAML, checked by the server with the same
// strict parser as gpufleet submit; every problem is listed with its line,
// column and field path, and a button puts the cursor on its line.

import { get, post, ApiError } from '../api.js';
import { h, replace, section, field, select, message } from '../dom.js';

function templates(queue) {
  return {
    batch: `# One accelerator for a few minutes.
name: batch-job
queue: ${queue}
kind: batch
gangs:
  - replicas: 1
    accelerators: h100
    count: 1
estimatedRuntime: 10m
command: [sh, -c, 'for i in 1 2 3 4 5; do echo "step $i"; sleep 2; done']
`,
    gang: `# A gang of two replicas with four accelerators each, started together.
name: train
queue: ${queue}
kind: training
gangs:
  - name: workers
    replicas: 2
    accelerators: h100
    count: 4
estimatedRuntime: 1h
command:
  - sh
  - -c
  - 'echo "rank $RANK of $WORLD_SIZE on devices $CUDA_VISIBLE_DEVICES"; sleep 30'
`,
    fraction: `# A quarter of one accelerator.
name: small
queue: ${queue}
kind: batch
gangs:
  - replicas: 1
    accelerators: h100
    milli: 250
command: [sh, -c, 'echo hello from a fraction; sleep 20']
`,
  };
}

// key makes an idempotency key: a document submitted twice (a double
// click, a retry) makes one job. Random bytes suffice; crypto.randomUUID
// needs a secure context that a plain-HTTP server on another host is not.
function newKey() {
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  return 'dash-' + [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
}

// problems splits the server's message (one problem a line, each
// "file:line:column: path: what") into parts.
export function problems(err) {
  return String(err.message).split('\n').filter(Boolean).map((line) => {
    const m = /^[^:\n]+:(\d+):(\d+): (.*)$/.exec(line);
    return m ? { line: Number(m[1]), col: Number(m[2]), text: m[3] } : { text: line.replace(/^job\.yaml: /, '') };
  });
}

function goTo(area, line, col) {
  const lines = area.value.split('\n');
  let start = 0;
  for (let i = 0; i < line - 1 && i < lines.length; i++) start += lines[i].length + 1;
  const len = (lines[line - 1] || '').length;
  area.focus();
  area.setSelectionRange(start + Math.max(0, Math.min(col - 1, len)), start + len);
}

export default {
  async render(ctx) {
    const qs = await get('/v1/queues');
    const leaves = qs.queues.filter((q) => !qs.queues.some((o) => o.parent === q.name)).map((q) => q.name).sort();
    const tpl = templates(leaves[0] || 'QUEUE');
    const area = h('textarea', { class: 'editor', rows: 22, spellcheck: 'false', autocapitalize: 'off', autocomplete: 'off',
      'aria-describedby': 'doc-hint', 'data-key': 'doc', wrap: 'off' });
    area.value = tpl.batch;
    let key = newKey();
    area.addEventListener('input', () => { key = newKey(); });
    const pick = select([['batch', 'One accelerator'], ['gang', 'A gang of 2 x 4 accelerators'], ['fraction', 'A quarter of an accelerator']], 'batch', { 'data-key': 'template' });
    pick.addEventListener('change', () => {
      area.value = tpl[pick.value];
      key = newKey();
    });
    const out = h('div', { class: 'result', 'aria-live': 'polite' });
    const send = h('button', { type: 'submit' }, 'Submit job');
    const form = h('form', { class: 'submit-form', 'aria-label': 'Submit a job' },
      h('div', { class: 'toolbar' }, field('Start from', pick)),
      field('Job document (YAML)', area),
      h('small', { id: 'doc-hint' }, `Queues you may submit to: ${leaves.join(', ') || 'none'}. Fields: name, queue, kind, priority, preemptible, gangs (replicas, minReplicas, accelerators, count or milli, cpu, memory), topology, estimatedRuntime, maxRuntime, command, env, restartPolicy, maxRestarts.`),
      h('div', { class: 'actions' }, send), out);
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      send.disabled = true;
      replace(out, message('info', 'Submitting…'));
      try {
        const job = await post('/v1/jobs?filename=job.yaml', { body: area.value, type: 'application/yaml', extraHeaders: { 'Idempotency-Key': key } });
        ctx.navigate('#/job/' + encodeURIComponent(job.id));
      } catch (err) {
        if (!(err instanceof ApiError)) throw err;
        const list = h('ul', { class: 'problems' });
        for (const p of problems(err)) {
          list.append(h('li',
            p.line ? h('button', { type: 'button', class: 'link', onclick: () => goTo(area, p.line, p.col) }, `Line ${p.line}, column ${p.col}`) : null,
            p.line ? ': ' : '', h('span', { class: 'mono' }, p.text)));
        }
        replace(out, h('div', { class: 'msg msg-error', role: 'alert' },
          h('p', h('strong', `The server refused the job (${err.status}${err.field ? ', field ' + err.field : ''}):`)), list));
      } finally {
        send.disabled = false;
      }
    });
    return { el: h('div', h('h1', 'Submit a job'), section('Job document', form)) };
  },
};
