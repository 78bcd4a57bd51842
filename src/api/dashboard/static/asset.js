// One asset: its facts, tracks, errors, why its input was not standard,
// the master (with master access on and off), its static renditions (add,
// delete, download), a player for any of its files, and its JSON.

import { api, get, ApiError } from './api.js';
import { h, fill, badge, progressBar, duration, bytes, bitrate, when, toast, keepingFocus } from './dom.js';
import { reasons, RESOLUTIONS } from './words.js';
import { assetName, storedBytes } from './assets.js';

/** The asset as JSON without its signed URLs, which change with time. */
function withoutUrls(asset) {
  return JSON.stringify(asset, (key, value) => (key === 'url' ? undefined : value));
}

function facts(asset) {
  const rows = [
    ['Status', badge(asset.status)],
    ['Duration', duration(asset.duration)],
    ['Resolution tier', asset.resolution_tier ?? '—'],
    ['Max resolution tier', asset.max_resolution_tier ?? '—'],
    ['Aspect ratio', asset.aspect_ratio ?? '—'],
    ['Frame rate', asset.max_stored_frame_rate > 0 ? `${asset.max_stored_frame_rate} fps` : '—'],
    ['Stored', bytes(storedBytes(asset))],
    ['Created', when(asset.created_at)],
    ['Ingest type', asset.ingest_type ?? '—'],
    ['Passthrough', asset.passthrough ?? '—'],
  ];
  if (asset.upload_id) rows.push(['Direct upload', asset.upload_id]);
  return h('dl', { class: 'facts' }, rows.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

function tracks(asset) {
  if (!asset.tracks?.length) return h('p', { class: 'muted' }, 'No tracks yet.');
  return h('table', {},
    h('thead', {}, h('tr', {}, ['Track', 'Size', 'Frame rate', 'Channels', 'Duration'].map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, asset.tracks.map((t) => h('tr', {},
      h('td', {}, t.type),
      h('td', {}, t.max_width ? `${t.max_width}×${t.max_height}` : '—'),
      h('td', {}, t.max_frame_rate > 0 ? `${t.max_frame_rate} fps` : '—'),
      h('td', {}, t.max_channels ?? '—'),
      h('td', {}, duration(t.duration))))));
}

export function assetView(id) {
  const path = `/video/v1/assets/${encodeURIComponent(id)}`;
  let latest = null;
  let shown = null;
  let asked = 0;        // answers to older requests are dropped
  let gone = false;
  let resolution = '270p';  // the rendition chooser's value, across redraws
  const player = h('video', { id: 'player', controls: true, preload: 'metadata', playsinline: true });
  const playing = h('p', { class: 'muted', id: 'player-file' }, 'Choose a file to play.');
  // The player stays put while the parts around it are redrawn.
  const top = h('div', { class: 'asset-top' });
  const body = h('div', { class: 'asset-body' });
  const title = h('h1', { id: 'asset-title' }, id);
  const element = h('section', { 'aria-labelledby': 'asset-title' },
    h('p', {}, h('a', { href: '#/assets' }, '← All assets')),
    title, top,
    h('section', { class: 'card', 'aria-labelledby': 'player-title' },
      h('h2', { id: 'player-title' }, 'Player'), playing, player),
    body);

  const play = (name) => {
    const file = name === 'master.mp4'
      ? latest?.master
      : latest?.static_renditions?.files?.find((f) => f.name === name);
    if (!file?.url) { toast(`${name} has no URL to play yet.`, 'error'); return; }
    player.src = file.url;
    fill(playing, `Playing ${name}`);
    player.play().catch((e) => toast(`The browser would not play ${name}: ${e.message}`, 'error'));
  };

  const act = async (what, method, url, payload, after) => {
    try {
      await api(method, url, payload);
      toast(what);
      after?.();
      await view.refresh(true);
    } catch (e) {
      toast(`${what} failed: ${e.message}`, 'error');
    }
  };

  const masterSection = (asset) => {
    const on = asset.master_access === 'temporary';
    return h('section', { class: 'card', 'aria-labelledby': 'master-title' },
      h('h2', { id: 'master-title' }, 'Master'),
      h('p', {}, on
        ? ['Master access is on', asset.master ? [' (', asset.master.status, ')'] : null, '.']
        : 'Master access is off: turn it on to play or download the master for 24 hours.'),
      h('div', { class: 'actions' },
        h('button', {
          type: 'button', id: 'master-access',
          onclick: () => act(on ? 'Master access turned off' : 'Master access turned on', 'PUT',
            `${path}/master-access`, { master_access: on ? 'none' : 'temporary' }),
        }, on ? 'Turn master access off' : 'Turn master access on'),
        asset.master?.url ? [
          h('button', { type: 'button', id: 'play-master', onclick: () => play('master.mp4') }, 'Play master'),
          h('a', { class: 'button', href: asset.master.url, download: '', 'data-file': 'master.mp4' }, 'Download master'),
        ] : null));
  };

  const renditionsSection = (asset) => {
    const files = asset.static_renditions?.files ?? [];
    const choice = h('select', { id: 'add-rendition-resolution', onchange: () => { resolution = choice.value; } },
      RESOLUTIONS.map((r) => h('option', { value: r }, r)));
    choice.value = resolution;
    const rows = files.map((f) => h('tr', { 'data-rendition': f.name, 'data-status': f.status },
      h('td', { class: 'mono' }, f.name),
      h('td', {}, badge(f.status)),
      h('td', { class: 'num' }, bytes(f.filesize)),
      h('td', { class: 'num' }, bitrate(f.bitrate)),
      h('td', {}, f.width ? `${f.width}×${f.height}` : '—'),
      h('td', { class: 'actions' },
        f.url ? [
          h('button', { type: 'button', onclick: () => play(f.name), 'aria-label': `Play ${f.name}` }, 'Play'),
          h('a', { class: 'button', href: f.url, download: '', 'data-file': f.name, 'aria-label': `Download ${f.name}` }, 'Download'),
        ] : null,
        f.id ? h('button', {
          type: 'button', class: 'danger', 'aria-label': `Delete ${f.name}`,
          onclick: () => {
            if (confirm(`Delete the rendition ${f.name}?`)) {
              act(`${f.name} deleted`, 'DELETE', `${path}/static-renditions/${encodeURIComponent(f.id)}`);
            }
          },
        }, 'Delete') : null)));
    return h('section', { class: 'card', 'aria-labelledby': 'renditions-title' },
      h('h2', { id: 'renditions-title' }, 'Static renditions'),
      files.length
        ? h('div', { class: 'table-wrap' }, h('table', { class: 'renditions' },
          h('thead', {}, h('tr', {}, ['File', 'Status', 'Size', 'Bitrate', 'Dimensions', 'Actions'].map((c) => h('th', { scope: 'col' }, c)))),
          h('tbody', {}, rows)))
        : h('p', { class: 'muted' }, 'No static renditions.'),
      asset.status === 'ready' ? h('form', {
        class: 'inline',
        onsubmit: (e) => {
          e.preventDefault();
          act(`Rendition ${choice.value} requested`, 'POST', `${path}/static-renditions`, { resolution: choice.value });
        },
      }, h('label', { for: 'add-rendition-resolution' }, 'Add a rendition'), choice,
      h('button', { type: 'submit', id: 'add-rendition' }, 'Add')) : null);
  };

  const render = (asset) => {
    const name = assetName(asset);
    fill(title, name);
    document.title = `${name} · reeld`;
    keepingFocus(element, () => draw(asset, name));
  };
  const draw = (asset, name) => {
    const why = reasons(asset.non_standard_input_reasons);
    fill(top,
      h('p', { class: 'mono muted' }, asset.id),
      asset.status === 'preparing' ? progressBar(asset.progress, `Progress of ${name}`) : null,
      asset.errors ? h('div', { class: 'card error-box', role: 'alert' },
        h('h2', {}, `Error: ${asset.errors.type}`),
        h('ul', {}, (asset.errors.messages ?? []).map((m) => h('li', {}, m)))) : null,
      h('div', { class: 'actions' },
        h('button', {
          type: 'button', id: 'copy-json',
          onclick: async () => {
            try {
              await navigator.clipboard.writeText(JSON.stringify(latest, null, 2));
              toast('The asset\'s JSON is on the clipboard.');
            } catch {
              toast('The browser refused the clipboard: the JSON is below.', 'error');
              json.open = true;
            }
          },
        }, 'Copy JSON'),
        h('button', {
          type: 'button', class: 'danger', id: 'delete-asset',
          onclick: () => {
            if (confirm(`Delete the asset ${name} and all its files? This cannot be undone.`)) {
              act('Asset deleted', 'DELETE', path, undefined, () => { location.hash = '#/assets'; });
            }
          },
        }, 'Delete asset')));
    fill(body,
      h('section', { class: 'card', 'aria-labelledby': 'facts-title' }, h('h2', { id: 'facts-title' }, 'Details'), facts(asset)),
      why.length ? h('section', { class: 'card', 'aria-labelledby': 'reasons-title' },
        h('h2', { id: 'reasons-title' }, 'Why the input was not standard'),
        h('ul', { class: 'reasons' }, why.map(([code, text]) => h('li', { 'data-reason': code }, text)))) : null,
      h('section', { class: 'card', 'aria-labelledby': 'tracks-title' }, h('h2', { id: 'tracks-title' }, 'Tracks'), tracks(asset)),
      masterSection(asset),
      renditionsSection(asset),
      json);
  };
  const jsonText = h('pre', { class: 'json' });
  const json = h('details', {}, h('summary', {}, 'JSON'), jsonText);

  const view = {
    element,
    async refresh(force = false) {
      let answer;
      const mine = ++asked;
      try {
        answer = await get(path);
      } catch (e) {
        if (mine !== asked || gone) return false;
        if (e instanceof ApiError && e.status === 404) {
          fill(top, h('p', { role: 'alert' }, 'This asset does not exist, or was deleted.'));
          body.replaceChildren();
          return false;
        }
        throw e;
      }
      if (mine !== asked || gone) return false;
      latest = answer.data;
      jsonText.textContent = JSON.stringify(latest, null, 2);
      const key = withoutUrls(latest);
      if (force || key !== shown) {
        shown = key;
        render(latest);
      }
      // Signed URLs are renewed in place, so an open page never offers an
      // expired one.
      for (const link of element.querySelectorAll('a[data-file]')) {
        const name = link.dataset.file;
        const file = name === 'master.mp4' ? latest.master : latest.static_renditions?.files?.find((f) => f.name === name);
        if (file?.url) link.href = file.url;
      }
      const files = latest.static_renditions?.files ?? [];
      return latest.status === 'preparing' || files.some((f) => f.status === 'preparing');
    },
    unmount() { gone = true; player.pause(); player.removeAttribute('src'); document.title = 'reeld'; },
  };
  return view;
}
