// The dashboard's entry: sign-in, the hash router, and one refresh loop.
//
// Live updates are polling of the API: once a second while something is
// preparing or running, every three seconds otherwise, and not while the tab
// is hidden. Each view says, after each refresh, whether anything is moving.

import { api, setCsrf, onSignedOut, ApiError } from './api.js';
import { h, fill, toast } from './dom.js';
import { assetsView } from './assets.js';
import { assetView } from './asset.js';
import { queueView } from './queue.js';

const BUSY_MS = 1000;
const IDLE_MS = 3000;

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const who = document.getElementById('who');
const signOutButton = document.getElementById('sign-out');

let current = null;   // the mounted view
let timer = null;
let generation = 0;   // bumps on every route change, so stale refreshes stop
let loop = null;      // the mounted view's refresh loop
let signInShown = false;

function route() {
  const hash = location.hash || '#/assets';
  const [, section, id] = hash.split('/');
  if (section === 'assets' && id) {
    let decoded = id;
    try { decoded = decodeURIComponent(id); } catch { /* shown as not found */ }
    return { name: 'assets', make: () => assetView(decoded) };
  }
  if (section === 'queue') return { name: 'queue', make: () => queueView() };
  return { name: 'assets', make: () => assetsView() };
}

async function show(focusHeading = true) {
  clearTimeout(timer);
  signInShown = false;
  current?.unmount?.();
  const mine = ++generation;
  const { name, make } = route();
  for (const link of nav.querySelectorAll('a')) {
    if (link.dataset.section === name) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  current = make();
  fill(main, current.element);
  // Tell assistive technology the page changed: focus the new heading.
  const heading = main.querySelector('h1');
  if (heading && focusHeading) {
    heading.setAttribute('tabindex', '-1');
    heading.focus();
  }
  let inFlight = false;
  loop = async () => {
    if (inFlight) return;
    inFlight = true;
    clearTimeout(timer);
    let busy = false;
    try {
      busy = await current.refresh();
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 401)) toast(e.message, 'error');
    } finally {
      inFlight = false;
    }
    if (mine !== generation) return;
    // A hidden tab is not polled; it refreshes when it is shown again.
    if (document.hidden) return;
    timer = setTimeout(loop, busy ? BUSY_MS : IDLE_MS);
  };
  await loop();
}

document.addEventListener('visibilitychange', () => {
  if (!document.hidden && current && loop) loop();
});

function signInForm(message) {
  // Several requests may find the session gone at once: one form.
  if (signInShown) return;
  signInShown = true;
  clearTimeout(timer);
  current?.unmount?.();
  current = null;
  generation += 1;
  nav.hidden = true;
  signOutButton.hidden = true;
  who.textContent = '';
  const error = h('p', { class: 'error', role: 'alert', id: 'sign-in-error' }, message ?? '');
  const id = h('input', { id: 'token-id', name: 'token_id', autocomplete: 'username', required: true, spellcheck: 'false' });
  const secret = h('input', { id: 'token-secret', name: 'token_secret', type: 'password', autocomplete: 'current-password', required: true });
  const form = h('form', { class: 'card sign-in', 'aria-labelledby': 'sign-in-title' },
    h('h1', { id: 'sign-in-title' }, 'Sign in to reeld'),
    h('p', { class: 'muted' }, 'Use an API access token: its id and secret. The daemon made one in data/api-token (ID:SECRET) if the config lists none.'),
    h('label', { for: 'token-id' }, 'Token id'), id,
    h('label', { for: 'token-secret' }, 'Token secret'), secret,
    error,
    h('button', { type: 'submit', class: 'primary' }, 'Sign in'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.textContent = '';
    try {
      const session = await api('POST', '/ui/session', { token_id: id.value.trim(), token_secret: secret.value });
      secret.value = '';
      signedIn(session.data);
    } catch (e) {
      error.textContent = e.status === 401 ? 'That token id and secret are not valid.' : e.message;
      secret.focus();
    }
  });
  fill(main, form);
  id.focus();
}

function signedIn(session) {
  setCsrf(session.csrf_token);
  nav.hidden = false;
  signOutButton.hidden = false;
  who.textContent = `Signed in as ${session.token_id}`;
  show(false);
}

signOutButton.addEventListener('click', async () => {
  try { await api('DELETE', '/ui/session'); } catch { /* gone already */ }
  setCsrf(null);
  signInShown = false;
  signInForm('You are signed out.');
});

onSignedOut(() => signInForm('Your session ended. Sign in again.'));
window.addEventListener('hashchange', () => { if (current) show(); });

try {
  const session = await api('GET', '/ui/session');
  signedIn(session.data);
} catch {
  signInForm();
}
