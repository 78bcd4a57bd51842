// Uploading from the page: a file dropped on the zone (or chosen with the
// button) becomes a direct upload (`POST /video/v1/uploads`), and UpChunk
// sends it to the upload's URL in chunks, with a progress bar. The asset it
// makes appears in the list by itself.

import { UpChunk } from './vendor/upchunk.mjs';
import { api } from './api.js';
import { h, toast } from './dom.js';

const MAX_TITLE = 200;

function startUpload(file, list, onCreated) {
  const bar = h('progress', { max: '100', value: '0', 'aria-label': `Upload of ${file.name}` });
  const state = h('span', { class: 'muted' }, 'starting');
  const item = h('li', { class: 'upload', 'data-file': file.name },
    h('span', { class: 'name' }, file.name), bar, state);
  list.append(item);
  (async () => {
    let upload;
    try {
      upload = (await api('POST', '/video/v1/uploads', {
        cors_origin: location.origin,
        new_asset_settings: { meta: { title: file.name.slice(0, MAX_TITLE) } },
      })).data;
    } catch (e) {
      state.textContent = `failed: ${e.message}`;
      item.dataset.state = 'failed';
      return;
    }
    const chunks = UpChunk.createUpload({ endpoint: upload.url, file });
    sending += 1;
    chunks.on('progress', (event) => {
      bar.value = event.detail;
      state.textContent = `${Math.floor(event.detail)} %`;
    });
    chunks.on('error', (event) => {
      sending -= 1;
      state.textContent = `failed: ${event.detail.message}`;
      item.dataset.state = 'failed';
      toast(`Upload of ${file.name} failed: ${event.detail.message}`, 'error');
    });
    chunks.on('success', () => {
      sending -= 1;
      bar.value = 100;
      state.textContent = 'uploaded';
      item.dataset.state = 'uploaded';
      onCreated();
      setTimeout(() => item.remove(), 10000);
    });
  })();
}

// One list for the page's life: uploads go on while other views are shown,
// and their bars are there again on coming back.
const list = h('ul', { class: 'uploads', 'aria-label': 'Uploads' });
let sending = 0;
window.addEventListener('beforeunload', (event) => {
  if (sending > 0) event.preventDefault();
});

/** The drop zone; `onCreated` runs when a file has been sent. */
export function uploadZone(onCreated) {
  const input = h('input', { id: 'upload-file', type: 'file', accept: 'video/*,audio/*', multiple: true, hidden: true, 'aria-label': 'Files to upload' });
  input.addEventListener('change', () => {
    for (const file of input.files) startUpload(file, list, onCreated);
    input.value = '';
  });
  const zone = h('div', { class: 'dropzone', id: 'dropzone' },
    h('p', {}, 'Drop video or audio files here, or ',
      h('button', { type: 'button', onclick: () => input.click() }, 'choose files'), '.'),
    input, list);
  zone.addEventListener('dragover', (event) => { event.preventDefault(); zone.classList.add('over'); });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', (event) => {
    event.preventDefault();
    zone.classList.remove('over');
    for (const file of event.dataTransfer.files) startUpload(file, list, onCreated);
  });
  return zone;
}
