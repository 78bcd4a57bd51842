// The asset list: status, live progress, duration, tier, size and age of
// each asset, filtered by status and searched by title, passthrough or id
// (the list route's `status` and `search`), with the upload drop zone.

import { get } from './api.js';
import { h, fill, badge, progressBar, duration, bytes, when, keepingFocus } from './dom.js';
import { uploadZone } from './upload.js';

const PAGE_SIZE = 25;

/** What an asset is called in lists: its title, passthrough, or id. */
export function assetName(asset) {
  return asset.meta?.title || asset.passthrough || asset.id;
}

/** Bytes stored for an asset: its master and ready renditions. */
export function storedBytes(asset) {
  const files = asset.static_renditions?.files ?? [];
  const renditions = files.reduce((sum, f) => sum + (f.filesize ? Number(f.filesize) : 0), 0);
  const total = (asset.master_filesize ?? 0) + renditions;
  return total || null;
}

function row(asset) {
  const name = assetName(asset);
  return h('tr', { 'data-asset-id': asset.id, 'data-status': asset.status },
    h('td', { class: 'name' },
      h('a', { href: `#/assets/${encodeURIComponent(asset.id)}` }, name),
      name !== asset.id ? h('div', { class: 'muted small mono' }, asset.id) : null),
    h('td', {}, badge(asset.status)),
    h('td', {}, asset.status === 'preparing'
      ? progressBar(asset.progress, `Progress of ${name}`)
      : h('span', { class: 'muted' }, asset.status === 'ready' ? 'done' : '—')),
    h('td', { class: 'num' }, duration(asset.duration)),
    h('td', {}, asset.resolution_tier ?? '—'),
    h('td', { class: 'num' }, bytes(storedBytes(asset))),
    h('td', {}, when(asset.created_at)));
}

export function assetsView() {
  let page = 1;
  let more = false;
  let asked = 0;       // answers to older requests are dropped
  let gone = false;
  const rows = new Map(); // id → [json, tr]
  const status = h('select', { id: 'filter-status' },
    ['', 'preparing', 'ready', 'errored'].map((s) => h('option', { value: s }, s || 'All')));
  const search = h('input', { id: 'filter-search', type: 'search', placeholder: 'Title, passthrough or id', spellcheck: 'false' });
  const tbody = h('tbody');
  const empty = h('p', { class: 'muted', hidden: true }, 'No assets match.');
  const pageLabel = h('span', { class: 'muted' });
  const prev = h('button', { type: 'button', onclick: () => { page -= 1; reload(); } }, 'Previous');
  const next = h('button', { type: 'button', onclick: () => { page += 1; reload(); } }, 'Next');
  let view;
  const reload = () => { rows.clear(); tbody.replaceChildren(); view.refresh(); };
  let debounce = null;
  status.addEventListener('change', () => { page = 1; reload(); });
  search.addEventListener('input', () => {
    clearTimeout(debounce);
    debounce = setTimeout(() => { page = 1; reload(); }, 300);
  });

  const element = h('section', { 'aria-labelledby': 'assets-title' },
    h('div', { class: 'heading' }, h('h1', { id: 'assets-title' }, 'Assets')),
    uploadZone(() => view.refresh()),
    h('form', { class: 'filters', role: 'search', onsubmit: (e) => e.preventDefault() },
      h('label', { for: 'filter-status' }, 'Status'), status,
      h('label', { for: 'filter-search' }, 'Search'), search),
    h('div', { class: 'table-wrap' },
      h('table', { class: 'assets' },
        h('caption', { class: 'visually-hidden' }, 'Assets, newest first'),
        h('thead', {}, h('tr', {},
          ['Asset', 'Status', 'Progress', 'Duration', 'Tier', 'Size', 'Created']
            .map((c) => h('th', { scope: 'col' }, c)))),
        tbody)),
    empty,
    h('div', { class: 'pager' }, prev, pageLabel, next));

  view = {
    element,
    async refresh() {
      const query = new URLSearchParams({ limit: String(PAGE_SIZE), page: String(page) });
      if (status.value) query.set('status', status.value);
      if (search.value.trim()) query.set('search', search.value.trim());
      const mine = ++asked;
      const answer = await get(`/video/v1/assets?${query}`);
      if (mine !== asked || gone) return false;
      const seen = new Set();
      let before = null;
      for (const asset of answer.data) {
        seen.add(asset.id);
        const json = JSON.stringify(asset);
        const known = rows.get(asset.id);
        let tr = known?.[1];
        if (!known || known[0] !== json) {
          const fresh = row(asset);
          if (tr) keepingFocus(tbody, () => tr.replaceWith(fresh));
          tr = fresh;
          rows.set(asset.id, [json, tr]);
        }
        // Newest first: keep the table in the answer's order.
        if (before === null) {
          if (tbody.firstChild !== tr) tbody.prepend(tr);
        } else if (before.nextSibling !== tr) {
          before.after(tr);
        }
        before = tr;
      }
      for (const [id, [, tr]] of rows) {
        if (!seen.has(id)) { tr.remove(); rows.delete(id); }
      }
      more = Boolean(answer.next_cursor);
      empty.hidden = answer.data.length > 0;
      prev.disabled = page <= 1;
      next.disabled = !more;
      fill(pageLabel, `Page ${page}`);
      return answer.data.some((a) => a.status === 'preparing');
    },
    unmount() { gone = true; clearTimeout(debounce); },
  };
  return view;
}
