// Verifies one captured webhook delivery with Mux's Node SDK:
// mux.webhooks.unwrap(body, headers, secret) checks the Mux-Signature header
// and parses the event. Reads BODY, SIGNATURE and SECRET from the environment.
import assert from 'node:assert/strict';
import Mux from '@mux/mux-node';

const mux = new Mux({ tokenId: 'x', tokenSecret: 'y' });
const headers = { 'mux-signature': process.env.SIGNATURE };
const event = await mux.webhooks.unwrap(process.env.BODY, headers, process.env.SECRET);
assert.equal(event.id, JSON.parse(process.env.BODY).id);
await assert.rejects(mux.webhooks.unwrap(process.env.BODY + ' ', headers, process.env.SECRET));
await assert.rejects(mux.webhooks.unwrap(process.env.BODY, headers, 'another-secret'));
console.log(`unwrap accepted ${event.type}`);
