// The web console as a person sees it, in Debian's chromium driven by
// puppeteer-core, against the live stack that ../console.sh starts and fills
// with known data (its comments tell the story these numbers come from).
// Environment: CONSOLE_BASE (the gateway, http://host:port), CHROMIUM,
// SCREENSHOTS (a directory), TOKEN_SUPPORT, TOKEN_SERVICE and TOKEN_EXPIRED
// (one that expires a second after it was made).
import assert from 'node:assert/strict';
import path from 'node:path';
import puppeteer from 'puppeteer-core';

const base = process.env.CONSOLE_BASE;
const shots = process.env.SCREENSHOTS;
const tokens = {
  support: process.env.TOKEN_SUPPORT, service: process.env.TOKEN_SERVICE, expired: process.env.TOKEN_EXPIRED,
};
for (const [name, value] of Object.entries({ base, shots, ...tokens })) assert.ok(value, `${name} is not set`);
const DAY = 86400e3;

const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  // We run as root in containers: chromium's sandbox needs a normal user.
  args: ['--headless=new', '--no-sandbox', '--window-size=1366,768'],
});
const page = await browser.newPage();
await page.setViewport({ width: 1366, height: 768 });
page.setDefaultTimeout(10000);

// Whatever the page does, it never reaches another host, never breaks its
// own Content-Security-Policy and never throws.
const problems = [];
const origin = new URL(base).origin;
page.on('request', (r) => {
  const url = new URL(r.url());
  if (url.protocol !== 'data:' && url.origin !== origin) problems.push(`request to another origin: ${r.url()}`);
});
page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
page.on('console', (m) => {
  // Refused calls are logged by chromium as failed resources: expected here.
  if (m.type() === 'error' && !/status of (401|403|404|501)/.test(m.text())) problems.push(`console: ${m.text()}`);
});

let failures = 0;
async function check(name, fn) {
  try {
    await fn();
    console.log(`ok    ${name}`);
  } catch (err) {
    failures += 1;
    console.log(`FAIL  ${name}\n      ${String(err.stack || err).split('\n').slice(0, 6).join('\n      ')}`);
    await page.screenshot({ path: path.join(shots, `failed-${failures}.png`) }).catch(() => {});
  }
}
const shot = (name) => page.screenshot({ path: path.join(shots, `${name}.png`) });
// Opens the page of `hash`, afresh even when it is the current one.
const go = (hash) => page.evaluate((h) => {
  if (location.hash === h) window.dispatchEvent(new HashChangeEvent('hashchange'));
  else location.hash = h;
}, hash);
// The text of the first element of `selector` whose text matches `re`,
// once there is one; on a timeout, the error says what the elements showed.
async function waitText(selector, re) {
  try {
    const handle = await page.waitForFunction((s, src, flags) => {
      const el = [...document.querySelectorAll(s)].find((e) => new RegExp(src, flags).test(e.textContent));
      return el ? el.textContent : false;
    }, {}, selector, re.source, re.flags);
    return await handle.jsonValue();
  } catch (err) {
    const shown = await page.$$eval(selector, (els) => els.map((e) => e.textContent)).catch(() => []);
    throw new Error(`no ${selector} shows ${re}; they show ${JSON.stringify(shown)} (${err.message})`);
  }
}
// The console's table (the one with a caption: not the chart's legend)
// under the section headed `title`, or in the page for title null: its
// column headers and its rows as arrays of cell texts.
const tableOf = (title) => page.evaluate((t) => {
  const scope = t ? [...document.querySelectorAll('section')].find((s) => s.querySelector('h2')?.textContent === t)
    : document.querySelector('main');
  const table = scope?.querySelector('table:not([hidden]):has(> caption)');
  return {
    headers: table ? [...table.tHead.rows[0].cells].map((c) => c.textContent) : [],
    rows: table ? [...table.tBodies[0].rows].map((r) => [...r.cells].map((c) => c.textContent.trim())) : [],
  };
}, title);
const rows = async (title) => (await tableOf(title)).rows;
const headers = async (title) => (await tableOf(title)).headers;
const sectionOf = (title) => `xpath///section[h2[text()=${JSON.stringify(title)}]]`;
const setToken = async (value) => {
  await page.$eval('#token', (el, v) => { el.value = v; }, value);
  await page.click('#token-form button[type=submit]');
};
// A moment as a person types it: ISO 8601 in UTC, to the second.
const moment = (ms) => new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z');

await page.goto(`${base}/console`);

await check('without a token the page asks for one; Tab reaches the token field and Enter submits it', async () => {
  await waitText('#banner', /Paste a bearer token/);
  let focused = '';
  for (let i = 0; i < 10 && focused !== 'token'; i++) {
    await page.keyboard.press('Tab');
    focused = await page.evaluate(() => document.activeElement?.id);
  }
  assert.equal(focused, 'token', 'Tab never reached the token field');
  // The focused field is visibly marked.
  const outline = await page.$eval('#token', (el) => getComputedStyle(el).outlineStyle);
  assert.notEqual(outline, 'none');
  await page.keyboard.type(tokens.support);
  await page.keyboard.press('Enter');
  await waitText('#who', /local-support \(support\)/);
  assert.equal(await page.evaluate(() => sessionStorage.getItem('segments.token')), tokens.support);
  assert.equal(await page.evaluate(() => localStorage.length), 0, 'nothing goes to localStorage');
  assert.equal((await page.cookies()).length, 0, 'no cookies');
  assert.equal(await page.$eval('#token', (el) => el.value), '', 'the field is emptied');
});

await check('segments: every segment with its size now, percentage, options and description', async () => {
  await page.waitForFunction(() => document.querySelectorAll('main tbody tr').length === 4 &&
    ![...document.querySelectorAll('main tbody td .num')].some((n) => n.textContent === '…'));
  assert.deepEqual(await rows(null), [
    ['AVITO_CHAT_BOTS', '1', '100 %', 'exclude AVITO_TRIAL', ''],
    ['AVITO_DISCOUNT_30', '1', '—', '—', '30% discount'],
    ['AVITO_TRIAL', '8', '100 %', 'auto TTL 30 d', 'Trial of paid services'],
    ['AVITO_VOICE_MESSAGES', '6', '—', '—', 'Voice messages in chat'],
  ]);
  await shot('segments');
  await page.type('#filter', 'disc');
  assert.deepEqual((await rows(null)).map((r) => r[0]), ['AVITO_DISCOUNT_30']);
  await page.$eval('#filter', (el) => { el.value = 'NOTHING'; el.dispatchEvent(new Event('input')); });
  await waitText('main .status', /No segment's slug contains “NOTHING”/);
});

await check('a segment: the size chart, the entries and exits by reason', async () => {
  await go('#/segments');
  await (await page.waitForSelector('xpath///main//a[text()="AVITO_VOICE_MESSAGES"]')).click();
  await waitText('main > p.status', /6 members now · manual · created/);
  await page.waitForSelector('figure.chart[data-points] canvas');
  // 30 days, daily: the size 30 days ago, then one point per day to today.
  const points = Number(await page.$eval('figure.chart', (f) => f.dataset.points));
  assert.ok(points >= 31 && points <= 32, `points: ${points}`);
  assert.equal(await page.$eval('figure.chart', (f) => f.dataset.last), '6');
  // The line is drawn: many pixels of its colour on the canvas.
  const drawn = await page.$eval('figure.chart canvas', (c) => {
    const { data } = c.getContext('2d').getImageData(0, 0, c.width, c.height);
    let n = 0;
    for (let i = 0; i < data.length; i += 4) {
      if (Math.abs(data[i] - 29) < 30 && Math.abs(data[i + 1] - 78) < 30 && Math.abs(data[i + 2] - 216) < 30 && data[i + 3] > 200) n++;
    }
    return n;
  });
  assert.ok(drawn > 100, `only ${drawn} pixels of the line`);
  const table = await rows('Size over time');
  assert.deepEqual(table[0], ['Total', '', '8', '2'], 'added 6 + 2 by hand, removed 2 by hand');
  assert.equal(table.length, 4, 'three days had changes: 20 and 10 days ago, today');
  assert.deepEqual(table.map((r) => r[1]), ['', '6', '7', '6']);
  assert.deepEqual(await headers('Size over time'), ['Step (UTC)', 'Members at its end', '+ manual', '− manual']);
  await shot('segment');
});

await check('a segment: other ranges (1 year daily, 7 days hourly)', async () => {
  await page.click('xpath///button[text()="1 year, daily"]');
  await page.waitForFunction(() => Number(document.querySelector('figure.chart')?.dataset.points) >= 366);
  await page.click('xpath///button[text()="7 days, hourly"]');
  await page.waitForFunction(() => {
    const n = Number(document.querySelector('figure.chart')?.dataset.points);
    return n >= 169 && n <= 170;
  });
  assert.equal(await page.$eval('xpath///button[text()="7 days, hourly"]', (b) => b.getAttribute('aria-pressed')), 'true');
});

await check('a segment: members at a moment 15 days ago, a page at a time, and the count then', async () => {
  const form = await page.waitForSelector(`${sectionOf('Members at a moment')}//form`);
  await form.$eval('input[name=at]', (el, v) => { el.value = v; }, moment(Date.now() - 15 * DAY));
  await form.$eval('input[name=pageSize]', (el) => { el.value = '4'; });
  await form.$eval('button[type=submit]', (b) => b.click());
  await waitText('section .status', /^6 members at .*; 1–4 shown\.$/);
  let members = await rows('Members at a moment');
  assert.deepEqual(members.map((r) => r[0]), ['1001', '1002', '1003', '1004']);
  assert.deepEqual(members[0].slice(2), ['permanent', 'manual', 'local-analyst']);
  await page.click('xpath///section[h2[text()="Members at a moment"]]//button[text()="Next page"]');
  await waitText('section .status', /^6 members at .*; 5–6 shown\.$/);
  members = await rows('Members at a moment');
  assert.deepEqual(members.map((r) => r[0]), ['1005', '1006']);
});

await check('a segment: a link to a month\'s report that downloads the CSV', async () => {
  const form = await page.waitForSelector(`${sectionOf('Monthly report')}//form`);
  await form.$eval('button[type=submit]', (b) => b.click());
  const href = await page.waitForSelector('xpath///section[h2[text()="Monthly report"]]//a[@download]')
    .then((a) => a.evaluate((el) => el.href));
  assert.match(href, /\/segments\/history-report\?/);
  const csv = await fetch(href).then(async (r) => { assert.equal(r.status, 200); return r.text(); });
  assert.equal(csv.split('\n')[0], 'user_id;segment;operation;datetime');
});

await check('a user: segments now with why, history with reasons and actors (keyboard: Enter submits)', async () => {
  await page.click('nav a[data-page=user]');
  await page.waitForSelector('input[name=userID]');
  await page.focus('input[name=userID]');
  await page.keyboard.type('1001');
  await page.keyboard.press('Enter');
  await waitText('h1', /^User 1001$/);
  await waitText('section .status', /^In 2 segments now\.$/);
  const now = await rows('Segments now, and why');
  assert.deepEqual(now.map((r) => [r[0], r[1].split(' ')[0], r[3], r[4]]), [
    ['AVITO_TRIAL', 'auto_percent', 'system', now[0][4]],
    ['AVITO_VOICE_MESSAGES', 'manual', 'local-analyst', 'permanent'],
  ]);
  assert.match(now[0][4], /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/, 'the automatic membership ends (30 days)');
  await waitText('section .status', /^4 events, newest first\.$/);
  const history = await rows('History');
  assert.deepEqual(history.map((r) => r.slice(1)), [
    ['removed from', 'AVITO_DISCOUNT_30', 'ttl', 'system'],
    ['added to', 'AVITO_DISCOUNT_30', 'manual', 'local-analyst'],
    ['added to', history[2][2], history[2][3], history[2][4]],
    ['added to', history[3][2], history[3][3], history[3][4]],
  ]);
  assert.deepEqual(history.slice(2).map((r) => r[2]).sort(), ['AVITO_TRIAL', 'AVITO_VOICE_MESSAGES']);
  for (const r of history) assert.match(r[0], /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
});

await check('a user: why not in a segment the user lacks', async () => {
  const form = await page.waitForSelector(`${sectionOf('Why (not) in a segment?')}//form`);
  await (await form.$('input[name=slug]')).type('AVITO_CHAT_BOTS');
  await page.keyboard.press('Enter');
  const text = await waitText('dl.explanation', /Member nowno/);
  assert.match(text, /filtered/);
  assert.match(text, /Unmet filtersexclude:AVITO_TRIAL/);
  assert.match(text, /Bucket\d+ of 0–9999; members are below 10000 \(100 %\)/);
  await shot('user');
});

await check('a user: segments at a moment 7 days ago', async () => {
  const form = await page.waitForSelector(`${sectionOf('Segments at a moment')}//form`);
  await form.$eval('input[name=at]', (el, v) => { el.value = v; }, moment(Date.now() - 7 * DAY));
  await form.$eval('button[type=submit]', (b) => b.click());
  await waitText('section .status', /^In 3 segments at /);
  const at = await rows('Segments at a moment');
  assert.deepEqual(at.map((r) => [r[0], r[3], r[4]]), [
    ['AVITO_DISCOUNT_30', 'manual', 'local-analyst'],
    ['AVITO_TRIAL', 'auto_percent', 'system'],
    ['AVITO_VOICE_MESSAGES', 'manual', 'local-analyst'],
  ]);
  assert.notEqual(at[0][2], 'permanent', 'the TTL membership had a deadline');
});

await check('the monthly report page: a download link for this month', async () => {
  await page.click('nav a[data-page=report]');
  await page.waitForSelector('main form.report');
  await page.type('main input[name=userID]', '1001');
  await page.click('main form.report button[type=submit]');
  const link = await page.waitForSelector('main a[download]');
  const { href, name } = await link.evaluate((a) => ({ href: a.href, name: a.getAttribute('download') }));
  const d = new Date();
  assert.equal(name, `segments-history-${d.getUTCFullYear()}-${String(d.getUTCMonth() + 1).padStart(2, '0')}-1001.csv`);
  const csv = await fetch(href).then((r) => r.text());
  assert.match(csv, /^user_id;segment;operation;datetime\n/);
  await shot('report');
});

await check('a segment that does not exist: not found', async () => {
  await go('#/segment/AVITO_NEVER_CREATED');
  await waitText('main > p.status', /No live segment has this slug/);
  await waitText('section .status.error', /^Not found: .*AVITO_NEVER_CREATED/);
});

await check('a token without the role (service): 403, said as such', async () => {
  await setToken(tokens.service);
  await go('#/segments');
  await waitText('#who', /local-service \(service\)/);
  await waitText('main .status.error', /^Your token's role cannot list segments: .*support/);
});

await check('a bad token: 401, a banner asks for a new one', async () => {
  await setToken('not-a-token');
  await waitText('#banner', /^Your token was refused \(.*\)\. Paste a new token above\./);
  await page.click('#banner button');
  assert.equal(await page.evaluate(() => document.activeElement?.id), 'token');
  await shot('bad-token');
});

await check('an expired token: 401, the banner says so and asks for a new one', async () => {
  // The server accepts a token up to 30 s (its clock skew) after it expires.
  const exp = JSON.parse(Buffer.from(tokens.expired.split('.')[1], 'base64url')).exp;
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, (exp + 31) * 1000 - Date.now())));
  await setToken(tokens.expired);
  await waitText('#who', /^local-expiring \(support\), expired /);
  await waitText('#banner', /^Your token was refused \(invalid token: expired\)\. Paste a new token above\./);
});

await check('the gateway unreachable: said as such', async () => {
  await setToken(tokens.support);
  await page.setRequestInterception(true);
  const abort = (r) => (new URL(r.url()).pathname.startsWith('/segments/') ? r.abort() : r.continue());
  page.on('request', abort);
  await go('#/user/1001');
  await waitText('#banner', /The gateway is unreachable/);
  page.off('request', abort);
  await page.setRequestInterception(false);
});

await check('no request left the gateway, no page errors', async () => {
  const left = problems.filter((p) => !/net::ERR_FAILED/.test(p)); // the interception above
  assert.deepEqual(left, []);
});

await browser.close();
console.log(failures ? `${failures} checks failed` : 'all checks passed');
process.exit(failures ? 1 : 0);
