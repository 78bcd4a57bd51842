// Building the page from data. Everything a user or a file supplied
// (titles, passthrough, file names, error messages) goes in as text nodes:
// there is no path here that parses a string as HTML.

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

/** Shows a short message at the bottom of the page. */
export function toast(text, kind = 'info') {
  const box = document.getElementById('toast');
  const item = h('div', { class: `toast ${kind}` }, text);
  box.append(item);
  setTimeout(() => item.remove(), kind === 'error' ? 8000 : 4000);
}
