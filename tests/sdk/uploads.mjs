// Direct uploads with Mux's Node SDK and UpChunk (@mux/upchunk, pinned),
// unchanged but for the base URL. Run by tests/sdk.rs with MUX_BASE_URL,
// MUX_TOKEN_ID, MUX_TOKEN_SECRET and CLIP (a path to an MP4 of several
// 256 KiB chunks). Exits non-zero on any mismatch.
//
// UpChunk is a browser library: here it runs on Node 20 with an
// XMLHttpRequest made over fetch (below), set before UpChunk is imported
// because its xhr dependency captures the global when it loads.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import Mux from '@mux/mux-node';

const requests = []; // [{range, status, resent}] for every PUT UpChunk made

// The XMLHttpRequest UpChunk's xhr package uses, over fetch. For the second
// chunk it first sends the first chunk again, as a client does whose answer
// was lost, so the server sees an overlapping re-sent chunk.
let firstChunk = null;
class FetchXHR {
  constructor() {
    this.readyState = 0;
    this.status = 0;
    this.upload = {};
    this.headers = {};
    this.responseText = '';
    this.response = '';
    this.withCredentials = false;
    this.responseHeaders = '';
  }
  open(method, url) {
    this.method = method;
    this.url = url;
    this.readyState = 1;
  }
  setRequestHeader(name, value) {
    this.headers[name] = value;
  }
  getAllResponseHeaders() {
    return this.responseHeaders;
  }
  abort() {
    this.controller?.abort();
  }
  async send(body) {
    this.controller = new AbortController();
    try {
      const bytes = body ? new Uint8Array(await body.arrayBuffer()) : undefined;
      const range = this.headers['Content-Range'];
      if (range?.startsWith('bytes 0-')) firstChunk = { bytes, headers: { ...this.headers } };
      else if (firstChunk && requests.length === 1) {
        const again = await fetch(this.url, { method: 'PUT', headers: firstChunk.headers, body: firstChunk.bytes, redirect: 'manual' });
        requests.push({ range: firstChunk.headers['Content-Range'], status: again.status, resent: true, rangeHeader: again.headers.get('range') });
        await again.arrayBuffer();
      }
      const res = await fetch(this.url, {
        method: this.method, headers: this.headers, body: bytes, redirect: 'manual', signal: this.controller.signal,
      });
      this.responseText = this.response = await res.text();
      this.status = res.status;
      this.responseHeaders = [...res.headers].map(([k, v]) => `${k}: ${v}`).join('\r\n');
      requests.push({ range, status: res.status, resent: false, rangeHeader: res.headers.get('range') });
      this.upload.onprogress?.({ lengthComputable: true, loaded: bytes?.length ?? 0, total: bytes?.length ?? 0 });
    } catch (e) {
      this.status = 0;
      this.readyState = 4;
      this.onerror?.(e);
      return;
    }
    this.readyState = 4;
    this.onreadystatechange?.();
    this.onload?.();
  }
}
globalThis.XMLHttpRequest = FetchXHR;
const { UpChunk } = await import('@mux/upchunk');

const mux = new Mux({ baseURL: process.env.MUX_BASE_URL, maxRetries: 0 });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function until(what, get, check, seconds = 120) {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const value = await get();
    if (check(value)) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(value)}`);
    await sleep(200);
  }
}

// Create with the SDK.
const upload = await mux.video.uploads.create({
  cors_origin: '*',
  new_asset_settings: { passthrough: 'upchunk', video_quality: 'basic', meta: { title: 'From UpChunk' } },
});
assert.equal(upload.status, 'waiting');
assert.equal(upload.timeout, 3600);
assert.ok(upload.url.startsWith(process.env.MUX_BASE_URL), upload.url);
assert.equal((await mux.video.uploads.retrieve(upload.id)).status, 'waiting');

// Upload with UpChunk, 256 KiB chunks.
const clip = await readFile(process.env.CLIP);
const file = new File([clip], 'clip.mp4', { type: 'video/mp4' });
const chunks = Math.ceil(clip.length / (256 * 1024));
assert.ok(chunks >= 3, `the clip is only ${clip.length} bytes`);
await new Promise((resolve, reject) => {
  const up = UpChunk.createUpload({ endpoint: upload.url, file, chunkSize: 256 });
  up.on('success', resolve);
  up.on('error', (e) => reject(new Error(`UpChunk: ${e.detail?.message ?? JSON.stringify(e.detail)}`)));
});
const sent = requests.filter((r) => !r.resent);
assert.equal(sent.length, chunks, JSON.stringify(requests));
sent.slice(0, -1).forEach((r, i) => {
  assert.equal(r.status, 308, JSON.stringify(r));
  assert.equal(r.rangeHeader, `bytes=0-${(i + 1) * 256 * 1024 - 1}`);
});
assert.equal(sent.at(-1).status, 200);
const resent = requests.find((r) => r.resent);
assert.deepEqual([resent.status, resent.rangeHeader], [308, `bytes=0-${256 * 1024 - 1}`], 'the re-sent first chunk');

// The upload made an asset, found by upload_id, with the upload's settings.
const done = await mux.video.uploads.retrieve(upload.id);
assert.equal(done.status, 'asset_created');
const listed = await mux.video.assets.list({ upload_id: upload.id });
assert.equal(listed.data.length, 1);
assert.equal(listed.data[0].id, done.asset_id);
const asset = await until('the asset to be ready', () => mux.video.assets.retrieve(done.asset_id),
  (a) => a.status !== 'preparing');
assert.equal(asset.status, 'ready', JSON.stringify(asset));
assert.equal(asset.upload_id, upload.id);
assert.equal(asset.ingest_type, 'on_demand_direct_upload');
assert.equal(asset.passthrough, 'upchunk');
assert.equal(asset.meta.title, 'From UpChunk');
assert.ok(Math.abs(asset.duration - Number(process.env.CLIP_SECONDS)) < 0.2, `${asset.duration}`);

// Cancel, and cancelling again is PermissionDeniedError (403).
const other = await mux.video.uploads.create({ cors_origin: 'https://app.example.com', timeout: 600 });
const cancelled = await mux.video.uploads.cancel(other.id);
assert.equal(cancelled.status, 'cancelled');
await assert.rejects(mux.video.uploads.cancel(other.id), Mux.PermissionDeniedError);
await assert.rejects(mux.video.uploads.cancel(upload.id), Mux.PermissionDeniedError);
await assert.rejects(mux.video.uploads.retrieve('nosuchupload'), Mux.NotFoundError);

// List: the SDK's auto-pagination pages until an empty page, and the
// past-the-end page is {"data": []}.
const ids = [];
for await (const u of mux.video.uploads.list({ limit: 1 })) ids.push(u.id);
assert.deepEqual(ids, [other.id, upload.id]);
const past = await mux.video.uploads.list({ page: 50, limit: 10 });
assert.deepEqual(past.data, []);
console.log(`uploads.mjs: ${chunks} chunks, ${requests.length} PUTs, asset ${asset.id} ready`);
