// Drives reeld's Cloudflare Stream routes with Cloudflare's official Node SDK,
// unchanged but for its base URL. Run by tests/sdk.rs with CF_BASE_URL
// (…/client/v4), CF_API_TOKEN, CF_ACCOUNT_ID and VIDEO_UID (a ready asset).
import assert from 'node:assert/strict';
import Cloudflare from 'cloudflare';

const cf = new Cloudflare({ baseURL: process.env.CF_BASE_URL, apiToken: process.env.CF_API_TOKEN, maxRetries: 0 });
const account_id = process.env.CF_ACCOUNT_ID;
const uid = process.env.VIDEO_UID;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const video = await cf.stream.get(uid, { account_id });
assert.equal(video.uid, uid);
assert.equal(video.readyToStream, true);
assert.equal(video.status.state, 'ready');

// The default download, polled until ready.
let downloads = await cf.stream.downloads.create(uid, { account_id });
assert.ok(['inprogress', 'ready'].includes(downloads.default.status), JSON.stringify(downloads));
for (let i = 0; downloads.default.status !== 'ready'; i++) {
  assert.ok(i < 600, `not ready: ${JSON.stringify(downloads)}`);
  await sleep(200);
  downloads = await cf.stream.downloads.get(uid, { account_id });
}
assert.equal(downloads.default.percentComplete, 100);
const open = await fetch(downloads.default.url, { headers: { Range: 'bytes=0-99' } });
assert.equal(open.status, 206);
assert.equal((await open.arrayBuffer()).byteLength, 100);

// Signed URLs with a key of our own.
const edited = await cf.stream.edit(uid, { account_id, requireSignedURLs: true });
assert.equal(edited.requireSignedURLs, true);
assert.equal((await fetch(downloads.default.url)).status, 403);
const key = await cf.stream.keys.create({ account_id, body: {} });
assert.ok(key.id && key.pem && key.jwk);
const keys = [];
for await (const k of cf.stream.keys.get({ account_id })) keys.push(k.id);
assert.ok(keys.includes(key.id), `${keys}`);
const { token } = await cf.stream.token.create(uid, { account_id, id: key.id, pem: key.pem, downloadable: true });
const signed = await fetch(downloads.default.url.replace(uid, token));
assert.equal(signed.status, 200);
await cf.stream.keys.delete(key.id, { account_id });
assert.equal((await fetch(downloads.default.url.replace(uid, token))).status, 403);

// A wrong token gets Cloudflare's error class for 401.
const wrong = new Cloudflare({ baseURL: process.env.CF_BASE_URL, apiToken: 'wrong-token-0123456789', maxRetries: 0 });
await assert.rejects(wrong.stream.get(uid, { account_id }), (e) => e.status === 401);

await cf.stream.downloads.delete(uid, { account_id });
downloads = await cf.stream.downloads.get(uid, { account_id });
assert.equal(downloads.default, undefined);
console.log('cloudflare sdk: ok');
