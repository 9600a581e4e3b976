// DOM and formatting helpers shared by the pages. Text goes in as text,
// never as HTML.
import { ApiError, describe, get } from './api.js';

// h('a', {href: '#/x', class: 'y'}, 'text', child) builds an element.
// Attributes named on* become listeners; false and null ones are skipped.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  el.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return el;
}

// A section with a heading, for one part of a page.
export const section = (title, ...children) => h('section', {}, h('h2', {}, title), ...children);

// A table; rows are arrays of cells (text or nodes). caption is for
// assistive technology and the tests.
export function table(caption, headers, rows) {
  return h('table', {},
    h('caption', { class: 'visually-hidden' }, caption),
    h('thead', {}, h('tr', {}, headers.map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, rows.map(row)));
}

// A table row; an absent cell shows as a dash.
export const row = (cells) => h('tr', {}, cells.map((c) => h('td', {}, c ?? '—')));

// A status line (loading, empty, error) whose text can change.
export function status(text = '') {
  return h('p', { class: 'status', 'aria-live': 'polite' }, text);
}

// fail(statusEl, err, 'list segments') writes what went wrong; a refused or
// missing token and an unreachable gateway also raise the page's banner.
export function fail(el, err, action) {
  const text = describe(err, action);
  const pageWide = err instanceof ApiError && (err.status === 401 || err.status === 0);
  el.textContent = pageWide ? 'Not loaded: see the message at the top.' : text;
  el.className = 'status error';
  if (pageWide) banner(text, err.status === 401);
}

// banner(text, askToken) shows the page-wide message; banner('') hides it.
export function banner(text, askToken = false) {
  const el = document.getElementById('banner');
  el.hidden = !text;
  el.className = askToken ? 'token' : '';
  el.replaceChildren(text);
  if (askToken) {
    el.append(' ', h('button', { type: 'button', onclick: () => document.getElementById('token').focus() },
      'Enter a new token'));
  }
}

export const link = (href, text) => h('a', { href }, text);
export const segmentLink = (slug) => link(`#/segment/${encodeURIComponent(slug)}`, slug);
export const userLink = (id) => link(`#/user/${encodeURIComponent(id)}`, id);

// A protojson timestamp ("2026-12-05T03:51:18.123456Z", always UTC) as
// ISO 8601 to the second.
export const when = (ts) => (ts ? ts.replace(/\.\d+Z$/, 'Z') : null);
export const isoSeconds = (date) => date.toISOString().replace(/\.\d+Z$/, 'Z');

// A moment typed by a person, in UTC: 2026-12-05T03:51:18Z, the Z and the
// seconds optional, a space for the T, or a date alone (its midnight); as
// RFC 3339, or null.
export function fromInput(value) {
  const m = /^(\d{4}-\d\d-\d\d)(?:[T ](\d\d:\d\d)(:\d\d(?:\.\d+)?)?)?Z?$/i.exec(value.trim());
  if (!m) return null;
  const ts = `${m[1]}T${m[2] || '00:00'}${m[3] || ':00'}Z`;
  return Number.isNaN(Date.parse(ts)) ? null : ts;
}

// The field for such a moment, now at first.
export const momentField = () => field('Moment (UTC, ISO 8601)', { name: 'at', required: true, spellcheck: 'false',
  autocomplete: 'off', placeholder: 'YYYY-MM-DDTHH:MM:SSZ', size: 22, value: isoSeconds(new Date()) });

// int64 fields come as strings, and zero ones may be absent.
export const num = (v) => Number(v ?? 0);
export const count = (v) => num(v).toLocaleString('en-US');

// 2592000 -> "30 d"; the largest unit that divides it.
export function duration(seconds) {
  const s = num(seconds);
  for (const [unit, size] of [['d', 86400], ['h', 3600], ['min', 60]]) {
    if (s >= size && s % size === 0) return `${s / size} ${unit}`;
  }
  return `${s} s`;
}

// A form whose submit (button or Enter) runs onSubmit instead of
// navigating.
export function form(attrs, onSubmit, ...children) {
  return h('form', {
    ...attrs,
    onsubmit: (event) => {
      event.preventDefault();
      onSubmit(event.target);
    },
  }, ...children);
}

// A labelled input; the label holds the input (no ids to keep unique).
export const field = (label, attrs) => h('label', { class: 'field' }, h('span', {}, label), h('input', attrs));

// The month report form: year and month (UTC), then a download link from
// get-history-report-link. userID: a fixed user, or a field for one.
export function reportForm({ userID, askUser = false }) {
  const now = new Date();
  const months = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September',
    'October', 'November', 'December'];
  const out = status();
  return h('div', {},
    form({ class: 'inline report' }, async (f) => {
      const params = { year: f.year.value, month: f.month.value, userID: userID ?? f.userID?.value.trim() };
      out.className = 'status';
      out.textContent = 'Asking for a link…';
      try {
        const r = await get('/segments/get-history-report-link', params);
        const name = `segments-history-${params.year}-${String(params.month).padStart(2, '0')}` +
          `${params.userID ? `-${params.userID}` : ''}.csv`;
        out.replaceChildren(h('a', { href: r.reportLink, download: name, class: 'button' }, `Download ${name}`),
          ` (the link works until ${when(r.expirationTime)})`);
      } catch (err) {
        fail(out, err, 'get report links');
      }
    },
    field('Year', { name: 'year', type: 'number', min: 1970, max: 9999, required: true, value: now.getUTCFullYear() }),
    h('label', { class: 'field' }, h('span', {}, 'Month'),
      h('select', { name: 'month' }, months.map((m, i) =>
        h('option', { value: i + 1, selected: i === now.getUTCMonth() }, m)))),
    askUser ? field('User id (optional: empty for all users)', { name: 'userID', spellcheck: 'false' }) : null,
    h('button', { type: 'submit' }, 'Get report link')),
    out);
}
