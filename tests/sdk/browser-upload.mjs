// Opens PAGE_URL in headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core) and prints the upload outcome the page leaves in
// window.result, as JSON. Run by tests/browser.rs.
import { chromium } from 'playwright-core';

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  // Without the background-networking flags Chromium keeps trying hosts
  // this machine cannot reach.
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  const page = await browser.newPage();
  page.on('console', (m) => console.error(`page: ${m.text()}`));
  await page.goto(process.env.PAGE_URL);
  await page.waitForFunction(() => window.result, null, { timeout: 120_000 });
  console.log(JSON.stringify(await page.evaluate(() => window.result)));
} finally {
  await browser.close();
}
