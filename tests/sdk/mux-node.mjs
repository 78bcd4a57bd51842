// Drives reeld with Mux's official Node SDK, unchanged but for its base URL.
// Run by tests/sdk.rs with MUX_BASE_URL, MUX_TOKEN_ID, MUX_TOKEN_SECRET and
// INPUT_URL (a file:// URL reeld may read). Exits non-zero on any mismatch.
import assert from 'node:assert/strict';
import Mux from '@mux/mux-node';

const mux = new Mux({ baseURL: process.env.MUX_BASE_URL, maxRetries: 0 });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what, check, seconds = 120) {
  const until = Date.now() + seconds * 1000;
  for (;;) {
    const asset = await mux.video.assets.retrieve(id);
    if (check(asset)) return asset;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(asset)}`);
    await sleep(200);
  }
}

// Create (the SDK's create call, with a file:// input) and wait for ready.
const created = await mux.video.assets.create({
  inputs: [{ url: process.env.INPUT_URL }],
  passthrough: 'from-node',
  video_quality: 'basic',
});
const id = created.id;
assert.equal(created.status, 'preparing');
let asset = await waitFor('ready', (a) => a.status === 'ready');
assert.equal(asset.encoding_tier, 'baseline');
assert.ok(asset.duration > 1);

// List, with the SDK's cursor auto-pagination over pages of one.
const seen = [];
for await (const a of mux.video.assets.list({ limit: 1 })) seen.push(a.id);
assert.ok(seen.includes(id), `list lacks ${id}: ${seen}`);
assert.equal(new Set(seen).size, seen.length, 'no asset twice');

// Update.
asset = await mux.video.assets.update(id, { passthrough: 'updated', meta: { title: 'Node' } });
assert.equal(asset.passthrough, 'updated');
assert.equal(asset.meta.title, 'Node');

// Master access, and a download through master.url.
asset = await mux.video.assets.updateMasterAccess(id, { master_access: 'temporary' });
assert.equal(asset.master.status, 'ready');
const master = await fetch(asset.master.url);
assert.equal(master.status, 200);
assert.equal(master.headers.get('content-type'), 'video/mp4');
const bytes = new Uint8Array(await master.arrayBuffer());
assert.ok(bytes.length > 1000);
assert.equal(new TextDecoder().decode(bytes.slice(4, 8)), 'ftyp');

// A static rendition: created, ready, downloaded, deleted.
const file = await mux.video.assets.createStaticRendition(id, { resolution: 'highest' });
assert.equal(file.status, 'preparing');
asset = await waitFor('highest.mp4', (a) =>
  a.static_renditions?.files?.some((f) => f.id === file.id && f.status === 'ready'));
const ready = asset.static_renditions.files.find((f) => f.id === file.id);
const got = await fetch(ready.url);
assert.equal(got.status, 200);
assert.equal(String((await got.arrayBuffer()).byteLength), ready.filesize);
await mux.video.assets.deleteStaticRendition(id, file.id);
asset = await mux.video.assets.retrieve(id);
assert.ok(!asset.static_renditions?.files?.some((f) => f.id === file.id));

// Errors come back as the SDK's own error classes.
await assert.rejects(mux.video.assets.retrieve('abcdefABCDEF0123456789abcdefABCD'), Mux.NotFoundError);
await assert.rejects(
  mux.video.assets.updateMasterAccess(id, { master_access: 'sometimes' }),
  Mux.BadRequestError,
);
const stranger = new Mux({ baseURL: process.env.MUX_BASE_URL, tokenId: 'x', tokenSecret: 'y', maxRetries: 0 });
await assert.rejects(stranger.video.assets.list(), Mux.AuthenticationError);

// Delete.
await mux.video.assets.delete(id);
await assert.rejects(mux.video.assets.retrieve(id), Mux.NotFoundError);
console.log('mux-node: every call passed');
