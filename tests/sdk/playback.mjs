// Playback IDs and signing keys with Mux's official Node SDK, and a stream
// URL opened with a token from the SDK's own mux.jwt.signPlaybackId. Run by
// tests/sdk.rs with MUX_BASE_URL, MUX_TOKEN_ID, MUX_TOKEN_SECRET, ASSET_ID
// (a ready asset with a highest.mp4) and STREAM_BASE.
import assert from 'node:assert/strict';
import Mux from '@mux/mux-node';

const mux = new Mux({ baseURL: process.env.MUX_BASE_URL, maxRetries: 0 });
const id = process.env.ASSET_ID;
const base = process.env.STREAM_BASE;

const pub = await mux.video.assets.createPlaybackId(id, { policy: 'public' });
assert.equal(pub.policy, 'public');
assert.equal((await fetch(`${base}/${pub.id}/highest.mp4`)).status, 200);
const signed = await mux.video.assets.createPlaybackId(id, { policy: 'signed' });
assert.equal((await mux.video.assets.retrievePlaybackId(id, signed.id)).policy, 'signed');
const asset = await mux.video.assets.retrieve(id);
assert.deepEqual(asset.playback_ids.map((p) => p.id).sort(), [pub.id, signed.id].sort());
assert.equal((await fetch(`${base}/${signed.id}/highest.mp4`)).status, 403);

const key = await mux.system.signingKeys.create();
assert.ok(key.id && key.private_key);
const keys = [];
for await (const k of mux.system.signingKeys.list()) keys.push(k.id);
assert.ok(keys.includes(key.id));
assert.equal((await mux.system.signingKeys.retrieve(key.id)).id, key.id);

const token = await mux.jwt.signPlaybackId(signed.id, { keyId: key.id, keySecret: key.private_key, expiration: '1h' });
const opened = await fetch(`${base}/${signed.id}/highest.mp4?token=${token}`, { headers: { Range: 'bytes=0-9' } });
assert.equal(opened.status, 206);
// The SDK's default: no timestamps, expiring in 7 days.
const undated = await mux.jwt.signPlaybackId(signed.id, { keyId: key.id, keySecret: key.private_key });
assert.equal((await fetch(`${base}/${signed.id}/highest.mp4?token=${undated}`)).status, 200);
const thumb = await mux.jwt.signPlaybackId(signed.id, { keyId: key.id, keySecret: key.private_key, type: 'thumbnail' });
assert.equal((await fetch(`${base}/${signed.id}/highest.mp4?token=${thumb}`)).status, 403);

await mux.system.signingKeys.delete(key.id);
assert.equal((await fetch(`${base}/${signed.id}/highest.mp4?token=${token}`)).status, 403);
await mux.video.assets.deletePlaybackId(id, pub.id);
assert.equal((await fetch(`${base}/${pub.id}/highest.mp4`)).status, 404);
console.log('mux playback sdk: ok');
