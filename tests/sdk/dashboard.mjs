// Drives reeld's web dashboard in headless Chromium (Debian's
// /usr/bin/chromium, through playwright-core), as a person would: sign in,
// watch a dropped file become ready, play it, add and delete a rendition,
// delete the asset, upload by dropping a file on the page. Every check
// waits for something to appear on the page; none waits a fixed time.
// Run by tests/dashboard.rs, which passes the daemon's address, the token,
// the watch folder, the clips and where to save screenshots; prints what
// it saw as JSON for the test to check against the API.
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { chromium } from 'playwright-core';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const BASE = env('BASE_URL');
const TOKEN_ID = env('TOKEN_ID');
const TOKEN_SECRET = env('TOKEN_SECRET');
const WATCH_DIR = env('WATCH_DIR');
const DROP_CLIP = env('DROP_CLIP');
const UPLOAD_CLIP = env('UPLOAD_CLIP');
const SHOTS = env('SHOTS_DIR');
const XSS = '<img src=x onerror=alert(1)>';
const LONG = 180_000;
const basic = `Basic ${Buffer.from(`${TOKEN_ID}:${TOKEN_SECRET}`).toString('base64')}`;

/** The API, with the token, from outside the browser (for set-up only). */
async function apiCall(method, path, body) {
  const r = await fetch(`${BASE}${path}`, {
    method,
    headers: { Authorization: basic, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await r.json().catch(() => null);
  assert.ok(r.ok, `${method} ${path}: ${r.status} ${JSON.stringify(json)}`);
  return json;
}

const seen = { alerts: [], progress: [], shotWhilePreparing: false };
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--autoplay-policy=no-user-gesture-required'],
});
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const page = await context.newPage();
  page.setDefaultTimeout(30_000);
  page.on('console', (m) => console.error(`page ${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => console.error(`page error: ${e.message}`));
  page.on('dialog', async (dialog) => {
    if (dialog.type() === 'confirm') {
      await dialog.accept();
    } else {
      seen.alerts.push(`${dialog.type()}: ${dialog.message()}`);
      await dialog.dismiss();
    }
  });
  const csp = [];
  page.on('response', (r) => {
    if (r.url() === `${BASE}/`) csp.push(r.headers()['content-security-policy']);
  });

  // A wrong secret does not sign in.
  await page.goto(`${BASE}/`);
  await page.getByLabel('Token id').fill(TOKEN_ID);
  await page.getByLabel('Token secret').fill('not-the-secret-at-all');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByText('That token id and secret are not valid.').waitFor();
  assert.equal(await page.evaluate(async () => (await fetch('/ui/session')).status), 401);
  assert.equal(await page.locator('#nav').isHidden(), true);
  assert.ok(csp[0]?.includes("script-src 'self'"), `CSP: ${csp[0]}`);

  // The right one does; the secret is not kept by the page.
  await page.getByLabel('Token secret').fill(TOKEN_SECRET);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByText(`Signed in as ${TOKEN_ID}`).waitFor();
  const storage = await page.evaluate(() => JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }) + document.cookie);
  assert.ok(!storage.includes(TOKEN_SECRET), 'the secret is kept in web storage or a script-readable cookie');
  const cookies = await context.cookies();
  const session = cookies.find((c) => c.name === 'reeld_session');
  assert.ok(session?.httpOnly && session.sameSite === 'Strict', JSON.stringify(cookies));

  // A state-changing request without the CSRF token is refused, even with
  // the cookie; the page's own requests carry it.
  const noCsrf = await page.evaluate(async () => {
    const r = await fetch('/video/v1/assets', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}' });
    return { status: r.status, body: await r.json() };
  });
  assert.equal(noCsrf.status, 403, JSON.stringify(noCsrf));
  assert.match(noCsrf.body.error.messages[0], /CSRF/);

  // A file dropped into the watch folder: its row appears, preparing, with
  // a rising bar, and turns ready, all without a reload.
  await page.evaluate(() => { window.notReloaded = true; });
  copyFileSync(DROP_CLIP, join(WATCH_DIR, basename(DROP_CLIP)));
  const anyRow = page.locator('tr[data-asset-id]').first();
  await anyRow.waitFor({ timeout: LONG });
  const assetId = await anyRow.getAttribute('data-asset-id');
  const thisRow = page.locator(`tr[data-asset-id="${assetId}"]`);
  const deadline = Date.now() + LONG;
  for (;;) {
    const status = await thisRow.getAttribute('data-status');
    if (status === 'ready') break;
    assert.equal(status, 'preparing');
    const value = await thisRow.locator('progress').getAttribute('data-progress', { timeout: 2000 }).catch(() => null);
    if (value) {
      const v = Number(value);
      if (seen.progress.at(-1) !== v) seen.progress.push(v);
      if (v > 0 && !seen.shotWhilePreparing) {
        seen.shotWhilePreparing = true;
        await page.screenshot({ path: join(SHOTS, 'dashboard-assets.png') });
      }
    }
    assert.ok(Date.now() < deadline, 'the dropped file did not become ready');
    await page.waitForFunction(
      ([id, before]) => {
        const tr = document.querySelector(`tr[data-asset-id="${id}"]`);
        if (!tr) return false;
        const p = tr.querySelector('progress');
        return tr.dataset.status !== 'preparing' || (p && p.dataset.progress !== before);
      },
      [assetId, value ?? ''],
      { timeout: LONG },
    );
  }
  assert.equal(await page.evaluate(() => window.notReloaded), true, 'the page was reloaded');

  // A title that is markup is shown as text, and nothing runs.
  await apiCall('PATCH', `/video/v1/assets/${assetId}`, { meta: { title: XSS } });
  await thisRow.getByText(XSS, { exact: true }).waitFor();
  assert.equal(await page.locator('main img').count(), 0);

  // The asset's page: play the master; add a 270p rendition, see it ready,
  // delete it; then delete the asset.
  await thisRow.getByRole('link').click();
  await page.getByRole('heading', { level: 1, name: XSS }).waitFor();
  await page.getByRole('button', { name: 'Turn master access on' }).click();
  await page.getByRole('button', { name: 'Play master' }).click();
  await page.waitForFunction(() => document.getElementById('player').currentTime > 0.5, null, { timeout: 60_000 });
  const played = await page.evaluate(() => document.getElementById('player').currentTime);
  await page.getByLabel('Add a rendition').selectOption('270p');
  await page.getByRole('button', { name: 'Add', exact: true }).click();
  const rendition = page.locator('tr[data-rendition="270p.mp4"]');
  await page.locator('tr[data-rendition="270p.mp4"][data-status="ready"]').waitFor({ timeout: LONG });
  await page.evaluate(() => document.getElementById('player').pause());
  await page.screenshot({ path: join(SHOTS, 'dashboard-asset.png'), fullPage: true });
  await rendition.getByRole('button', { name: 'Delete 270p.mp4' }).click();
  await rendition.waitFor({ state: 'detached' });
  await page.getByRole('button', { name: 'Delete asset' }).click();
  await page.getByRole('heading', { level: 1, name: 'Assets' }).waitFor();
  await page.locator(`tr[data-asset-id="${assetId}"]`).waitFor({ state: 'detached' });

  // Upload by dropping a file on the page: UpChunk sends it, the asset appears.
  const bytes = readFileSync(UPLOAD_CLIP).toString('base64');
  const name = basename(UPLOAD_CLIP);
  const transfer = await page.evaluateHandle(([b64, fileName]) => {
    const raw = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const dt = new DataTransfer();
    dt.items.add(new File([raw], fileName, { type: 'video/mp4' }));
    return dt;
  }, [bytes, name]);
  await page.dispatchEvent('#dropzone', 'drop', { dataTransfer: transfer });
  await page.locator(`li.upload[data-state="uploaded"]`).waitFor({ timeout: LONG });
  const uploadedRow = page.locator('tr[data-asset-id]').filter({ hasText: name });
  await uploadedRow.waitFor({ timeout: LONG });
  const uploadedId = await uploadedRow.getAttribute('data-asset-id');

  // The queue page answers.
  await page.getByRole('link', { name: 'Queue' }).click();
  await page.getByRole('heading', { level: 2, name: 'Failed webhook deliveries' }).waitFor();

  // Signing out ends the session.
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByText('You are signed out.').waitFor();
  assert.equal(await page.evaluate(async () => (await fetch('/video/v1/assets')).status), 401);

  assert.deepEqual(seen.alerts, []);
  console.log(JSON.stringify({ asset_id: assetId, uploaded_id: uploadedId, progress: seen.progress, played }));
} finally {
  await browser.close();
}
