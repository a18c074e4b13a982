// The dashboard's shell: sign-in, navigation between views by the URL's
// fragment (#/jobs?state=pending, #/job/ID), the live event stream, and
// the views' life cycle. Each view is a module whose render(ctx) returns
// its element and, optionally, onEvent(type, data) for live changes,
// refresh() to reload what it shows, and dispose().

import { get, setToken, token, stream, ApiError } from './api.js';
import { h, replace, message } from './dom.js';
import fleet from './views/fleet.js';
import queues from './views/queues.js';
import jobs from './views/jobs.js';
import job from './views/job.js';
import submit from './views/submit.js';
import { extraViews } from './views/extra.js';

const views = { fleet, queues, jobs, job, submit, ...extraViews };

const $ = (id) => document.getElementById(id);
const viewEl = $('view');
let who = null;
const features = new Set();
let current = null;
let seq = 0;
let live = null;
let firstShow = true;

function parseRoute() {
  const hash = location.hash.replace(/^#/, '') || '/fleet';
  const [path, qs] = hash.split('?');
  const parts = path.split('/').filter(Boolean);
  return { name: parts[0] || 'fleet', id: parts.slice(1).map(decodeURIComponent).join('/'), params: new URLSearchParams(qs || '') };
}

// refresher makes fn run at most once a second and never twice at once:
// a burst of events becomes one reload.
function refresher(fn) {
  let timer = null;
  let running = false;
  let again = false;
  let last = 0;
  const run = async () => {
    timer = null;
    if (running) {
      again = true;
      return;
    }
    running = true;
    last = Date.now();
    try {
      await fn();
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) signOut('Your token is no longer accepted; sign in again.');
    } finally {
      running = false;
      if (again) {
        again = false;
        schedule();
      }
    }
  };
  const schedule = () => {
    if (timer) return;
    timer = setTimeout(run, Math.max(0, 1000 - (Date.now() - last)));
  };
  return schedule;
}

function context(route) {
  return {
    who, features, route, params: route.params, id: route.id,
    navigate: (hash) => { location.hash = hash; },
    refresher,
  };
}

async function show() {
  if (!who) return;
  if (current && current.dispose) current.dispose();
  current = null;
  const route = parseRoute();
  const view = views[route.name];
  const mine = ++seq;
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.getAttribute('href') === '#/' + route.name || (route.name === 'job' && a.getAttribute('href') === '#/jobs')) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  performance.clearMarks('view-start');
  performance.mark('view-start');
  viewEl.dataset.ready = '';
  replace(viewEl, h('p', { class: 'loading', role: 'status' }, 'Loading…'));
  let v;
  try {
    if (!view) throw new Error(`There is no view "${route.name}" in this dashboard.`);
    v = await view.render(context(route));
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      signOut('Your token is no longer accepted; sign in again.');
      return;
    }
    v = { el: h('div', h('h1', 'Something went wrong'), message('error', e.message)) };
  }
  if (mine !== seq) {
    if (v.dispose) v.dispose();
    return;
  }
  current = v;
  replace(viewEl, v.el);
  performance.measure('view:' + route.name, 'view-start');
  // The view is drawn with its data: tests and timings wait for this.
  viewEl.dataset.shown = String(mine);
  viewEl.dataset.ready = route.name;
  const title = viewEl.querySelector('h1');
  document.title = (title ? title.textContent + ' · ' : '') + 'gpufleet';
  if (!firstShow && title) {
    // Moving between views moves the focus to the new view's title, so
    // that a screen reader announces it and Tab starts from there.
    title.tabIndex = -1;
    title.focus({ preventScroll: false });
  }
  firstShow = false;
}

function setLive(state) {
  const el = $('live');
  el.dataset.state = state;
  el.textContent = { open: 'Live', retrying: 'Reconnecting…', closed: 'Offline', paused: 'Paused' }[state] || state;
}

// startLive opens the event stream; again (after a pause) the view
// reloads once it is open, for what happened meanwhile.
function startLive(again = false) {
  live = new AbortController();
  let opened = again;
  stream('/v1/events', {
    signal: live.signal,
    onState: (state) => {
      setLive(state);
      // What happened while the stream was away is read again.
      if (state === 'open' && opened && current && current.refresh) current.refresh();
      if (state === 'open') opened = true;
    },
    onEvent: (type, data) => {
      if (!current) return;
      if (type === 'reset') {
        if (current.refresh) current.refresh();
      } else if (current.onEvent) {
        current.onEvent(type, data);
      }
    },
  });
}

// A browser keeps at most six connections to a server over HTTP/1.1,
// and each open tab's stream holds one: a tab that is hidden, or a page
// left for another (it may be kept for the back button), closes its
// streams, and opens them again when it is shown.
function pause() {
  if (!live) return;
  live.abort();
  live = null;
  setLive('paused');
  if (current && current.pause) current.pause();
}

function resume() {
  if (!who || live) return;
  startLive(true);
  if (current && current.resume) current.resume();
}

document.addEventListener('visibilitychange', () => (document.hidden ? pause() : resume()));
window.addEventListener('pagehide', pause);
window.addEventListener('pageshow', (e) => {
  if (e.persisted) resume();
});

// openAPIPaths lists the paths of the server's API document, so that a
// view whose API this server lacks (an older or newer server) stays out.
async function openAPIPaths() {
  const doc = await get('/v1/openapi.yaml');
  const out = new Set();
  for (const line of String(doc).split('\n')) {
    const m = /^ {2}(\/[^\s:]+):\s*$/.exec(line);
    if (m) out.add(m[1]);
  }
  return out;
}

async function signIn(tok) {
  setToken(tok);
  try {
    who = await get('/v1/whoami');
  } catch (e) {
    setToken('');
    who = null;
    if (e instanceof ApiError && e.status === 403) throw new Error('This token cannot sign in to the dashboard: use an admin or a tenant token.');
    if (e instanceof ApiError && e.status === 401) throw new Error('The server does not know this token.');
    throw e;
  }
  // The views that depend on optional routes show up once the server's
  // API document says it has them; the first view does not wait for it.
  openAPIPaths().then((paths) => {
    features.clear();
    for (const x of paths) features.add(x);
    // A link shows when the server has its route and the dashboard a view for it.
    for (const a of document.querySelectorAll('#nav a[data-feature]')) a.hidden = !features.has(a.dataset.feature) || !views[a.getAttribute('href').slice(2)];
  }).catch(() => {});
  if (live) live.abort();
  $('who-name').textContent = who.role === 'admin' ? 'admin' : `tenant ${who.tenant}`;
  $('signin').hidden = true;
  $('nav').hidden = false;
  $('who').hidden = false;
  startLive();
  await show();
}

function signOut(why) {
  if (live) live.abort();
  live = null;
  if (current && current.dispose) current.dispose();
  current = null;
  who = null;
  setToken('');
  $('nav').hidden = true;
  $('who').hidden = true;
  viewEl.replaceChildren();
  viewEl.dataset.ready = '';
  $('signin').hidden = false;
  $('signin-error').textContent = why || '';
  $('token').value = '';
  $('token').focus();
  document.title = 'Sign in · gpufleet';
  viewEl.dataset.ready = '';
  $('signin').dataset.ready = 'signin';
}

$('signin-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const tok = $('token').value.trim();
  $('signin-error').textContent = '';
  if (!tok) {
    $('signin-error').textContent = 'Paste an access token.';
    return;
  }
  const button = $('signin-form').querySelector('button');
  button.disabled = true;
  try {
    await signIn(tok);
  } catch (err) {
    $('signin-error').textContent = err.message;
  } finally {
    button.disabled = false;
  }
});
$('signout').addEventListener('click', () => signOut(''));
window.addEventListener('hashchange', show);

if (token()) {
  signIn(token()).catch((e) => signOut(e.message));
} else {
  signOut('');
}
