// Building the page from data. Everything a user or a file supplied
// (titles, passthrough, file names, error messages) goes in as text nodes:
// there is no path here that parses a string as HTML.

const SAFE_URL = /^(#|\/(?!\/)|https?:\/\/)/i;

/** An element: `h('a', {href: '#/x', class: 'y', onclick: f}, 'text', child)`. */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (key === 'class') {
      el.className = value;
    } else if (key === 'value' || key === 'checked' || key === 'disabled') {
      el[key] = value;
    } else if ((key === 'href' || key === 'src') && !SAFE_URL.test(String(value))) {
      // Only this page's routes, its own paths and http(s) URLs: never a
      // `javascript:` or `data:` URL, whoever supplied it.
      throw new Error(`refused ${key} ${JSON.stringify(String(value))}`);
    } else {
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces everything in `el` with `children`. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** `1.4 MB`, from bytes. */
export function bytes(n) {
  if (n === undefined || n === null) return '—';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = Number(n);
  while (v >= 1000 && i < units.length - 1) { v /= 1000; i += 1; }
  return `${v >= 100 || i === 0 ? v.toFixed(0) : v.toFixed(1)} ${units[i]}`;
}

/** `1:02:03` or `2:03`, from seconds. */
export function duration(s) {
  if (s === undefined || s === null || s < 0) return '—';
  const total = Math.round(s);
  const hh = Math.floor(total / 3600);
  const mm = Math.floor((total % 3600) / 60);
  const ss = String(total % 60).padStart(2, '0');
  return hh ? `${hh}:${String(mm).padStart(2, '0')}:${ss}` : `${mm}:${ss}`;
}

/** `4.2 Mbit/s`, from bits per second. */
export function bitrate(bps) {
  if (!bps) return '—';
  return bps >= 1e6 ? `${(bps / 1e6).toFixed(1)} Mbit/s` : `${Math.round(bps / 1e3)} kbit/s`;
}

/** Local date and time, from Unix seconds (a string or a number). */
export function when(unixSeconds) {
  const n = Number(unixSeconds);
  if (!n) return '—';
  return new Date(n * 1000).toLocaleString();
}

/** `3 s`, `4 min 05 s`, from milliseconds. */
export function elapsed(ms) {
  if (ms === undefined || ms === null || ms < 0) return '—';
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s} s`;
  return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
}

/** A status badge. */
export function badge(status) {
  return h('span', { class: `badge ${status}` }, status);
}

/** A progress bar with its figure beside it, for an asset's `progress`. */
export function progressBar(progress, label) {
  const pct = Math.max(0, Math.min(100, Number(progress?.progress ?? 0)));
  const known = progress && progress.progress >= 0;
  return h('span', { class: 'progress' },
    h('progress', {
      max: '100', value: known ? String(pct) : undefined,
      'aria-label': label, 'data-progress': known ? pct.toFixed(1) : '',
    }),
    h('span', { class: 'figure' }, known ? `${Math.floor(pct)} %` : ''));
}

/** Shows a short message at the bottom of the page. Errors are announced
 * at once and stay until they are dismissed. */
export function toast(text, kind = 'info') {
  const box = document.getElementById('toast');
  if (kind === 'error') {
    const item = h('div', { class: 'toast error', role: 'alert' }, text, ' ',
      h('button', { type: 'button', class: 'dismiss', 'aria-label': 'Dismiss', onclick: () => item.remove() }, '×'));
    box.append(item);
    return;
  }
  const item = h('div', { class: `toast ${kind}` }, text);
  box.append(item);
  setTimeout(() => item.remove(), 4000);
}

/** What tells a control apart from its neighbours, across a redraw. */
function focusKey(el) {
  return [el.tagName, el.id, el.getAttribute('aria-label') ?? '', el.textContent].join('|');
}

/** Runs `render`, which redraws part of `container`, and gives the focus
 * back to the same control if it was inside and is still there. */
export function keepingFocus(container, render) {
  const active = document.activeElement;
  const key = active && active !== document.body && container.contains(active) ? focusKey(active) : null;
  render();
  if (key && !container.contains(active)) {
    const again = [...container.querySelectorAll(active.tagName)].find((el) => focusKey(el) === key);
    again?.focus();
  }
}
