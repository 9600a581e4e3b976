// The segments list, and one segment: its size over time, its members at a
// moment, the monthly report.
import uPlot from './uplot/uPlot.esm.js';
import { all, describe, get } from './api.js';
import {
  count, duration, fail, field, form, fromInput, h, isoSeconds, momentField, num, reportForm, section,
  segmentLink, status, table, userLink, when,
} from './ui.js';

const SHOWN = 200; // rows of the list at most; the filter finds the others

export async function segmentsPage(main) {
  const search = h('input', { id: 'filter', type: 'search', spellcheck: 'false', placeholder: 'part of a slug' });
  const st = status('Loading segments…');
  const holder = h('div');
  main.append(h('h1', { tabindex: -1 }, 'Segments'),
    form({ class: 'inline', role: 'search' }, () => render(), h('label', { for: 'filter' }, 'Filter by slug'), search),
    st, holder);
  let list;
  try {
    list = await all('/segments/list', { pageSize: 1000 }, 'segments');
  } catch (err) {
    fail(st, err, 'list segments');
    return;
  }
  const sizes = new Map();
  const sizeOf = (slug) => {
    if (!sizes.has(slug)) sizes.set(slug, sizeNow(slug));
    return sizes.get(slug);
  };
  function render() {
    const q = search.value.trim().toLowerCase();
    const matching = list.items.filter((s) => s.slug.toLowerCase().includes(q));
    if (!matching.length) {
      st.textContent = list.items.length ? `No segment's slug contains “${search.value.trim()}”.` : 'No segments yet.';
      holder.replaceChildren();
      return;
    }
    st.textContent = `${matching.length} of ${list.items.length} segments` +
      (matching.length > SHOWN ? `; the first ${SHOWN} are shown, filter to find the others` : '') +
      (list.truncated ? ' (only the first pages were read)' : '') + '.';
    holder.replaceChildren(table('Segments', ['Slug', 'Members now', 'Auto %', 'Options', 'Description'],
      matching.slice(0, SHOWN).map((s) => {
        const size = h('span', { class: 'num' }, '…');
        sizeOf(s.slug).then((n) => { size.textContent = count(n); },
          (err) => { size.textContent = '?'; size.title = describe(err, 'count members'); });
        return [segmentLink(s.slug), size, s.percentToFill ? `${s.percentToFill} %` : '—', options(s),
          h('span', { class: 'text' }, s.description || '')];
      })));
  }
  search.addEventListener('input', render);
  render();
}

// Members now: count-members-at without `at`; from get-segment on a server
// without the time-travel calls.
async function sizeNow(slug) {
  try {
    return num((await get('/segments/count-members-at', { slug })).count);
  } catch (err) {
    if (err.status !== 501) throw err;
    return num((await get('/segments/get-segment', { slug })).memberCount);
  }
}

function options(s) {
  const parts = [];
  if (s.includeSegments?.length) parts.push(`include ${s.includeSegments.join(', ')}`);
  if (s.excludeSegments?.length) parts.push(`exclude ${s.excludeSegments.join(', ')}`);
  if (num(s.autoSecondsToBeInSegment)) parts.push(`auto TTL ${duration(s.autoSecondsToBeInSegment)}`);
  return parts.join('; ') || '—';
}

export function segmentPage(main, slug) {
  const about = status('Loading…');
  main.append(h('h1', { tabindex: -1 }, slug), about, sizeSection(slug), membersSection(slug),
    section('Monthly report', h('p', { class: 'hint' }, 'Every segment, every user: the CSV is not cut by segment.'),
      reportForm({})));
  get('/segments/get-segment', { slug }).then(({ segment: s, memberCount }) => {
    about.textContent = [`${count(memberCount)} members now`, s.percentToFill ? `auto ${s.percentToFill} %` : 'manual',
      options(s), `created ${when(s.createdAt)}`].filter((p) => p !== '—').join(' · ');
    if (s.description) about.after(h('p', { class: 'description' }, s.description));
  }, (err) => {
    if (err.status === 404) about.textContent = 'No live segment has this slug: it was deleted, or never created.';
    else fail(about, err, 'read segments');
  });
}

const RANGES = [
  { label: '24 hours, hourly', step: 'hour', hours: 24 },
  { label: '7 days, hourly', step: 'hour', hours: 24 * 7 },
  { label: '30 days, daily', step: 'day', hours: 24 * 30 },
  { label: '1 year, daily', step: 'day', hours: 24 * 365 },
];
const REASONS = [['manual', 'manual'], ['ttl', 'TTL'], ['autoPercent', 'automatic'],
  ['segmentDeleted', 'segment deleted'], ['userDeleted', 'user deleted']];

function sizeSection(slug) {
  const st = status();
  const figure = h('figure', { class: 'chart' });
  const changes = h('div');
  const buttons = RANGES.map((r) => h('button', { type: 'button', 'aria-pressed': 'false', onclick: () => show(r) },
    r.label));
  let plot = null;
  let loads = 0;
  new ResizeObserver(() => {
    if (plot && figure.clientWidth && figure.clientWidth !== plot.width) {
      plot.setSize({ width: figure.clientWidth, height: plot.height });
    }
  }).observe(figure);

  async function show(range) {
    const seq = ++loads;
    buttons.forEach((b, i) => b.setAttribute('aria-pressed', String(RANGES[i] === range)));
    st.className = 'status';
    st.textContent = 'Loading…';
    const now = Date.now();
    let r;
    try {
      r = await get('/segments/size-history',
        { slug, from: isoSeconds(new Date(now - range.hours * 3600e3)), step: range.step });
    } catch (err) {
      if (seq !== loads) return;
      plot?.destroy();
      plot = null;
      figure.replaceChildren();
      changes.replaceChildren();
      fail(st, err, 'read size history');
      return;
    }
    if (seq !== loads) return;
    const points = r.points || [];
    if (!points.length) {
      st.textContent = 'No data in this range.';
      return;
    }
    const stepSeconds = range.step === 'hour' ? 3600 : 86400;
    // Each point is the size at the end of its step (now, for the last one).
    const xs = [Date.parse(points[0].start) / 1000,
      ...points.map((p) => Math.min(Date.parse(p.start) / 1000 + stepSeconds, now / 1000))];
    const ys = [num(r.sizeAtStart), ...points.map((p) => num(p.size))];
    st.textContent = `${count(ys.at(-1))} members now, ${count(ys[0])} at ${isoSeconds(new Date(xs[0] * 1000))}.`;
    plot?.destroy();
    figure.replaceChildren(h('figcaption', {},
      `Members at the end of each ${range.step} (UTC); the table below has the entries and exits.`));
    plot = new uPlot({
      width: figure.clientWidth || 900,
      height: 260,
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), 'Etc/UTC'),
      scales: { y: { range: (u, min, max) => [0, Math.max(1, Math.ceil(max * 1.1))] } },
      series: [
        { label: 'Time (UTC)', value: (u, v) => (v === null ? '—' : isoSeconds(new Date(v * 1000))) },
        { label: 'Members', stroke: '#1d4ed8', fill: 'rgba(29, 78, 216, 0.12)', width: 2,
          value: (u, v) => (v === null ? '—' : count(v)) },
      ],
    }, [xs, ys], figure);
    figure.dataset.points = String(xs.length);
    figure.dataset.last = String(ys.at(-1));
    changes.replaceChildren(changesTable(points, range.step));
  }
  show(RANGES[2]);
  return section('Size over time', h('div', { class: 'inline', role: 'group', 'aria-label': 'Range' },
    h('span', {}, 'Last'), buttons), st, figure, h('h3', {}, 'Entries and exits by reason'), changes);
}

// Totals of the range, then each step that had an entry or exit, newest
// first; a column per direction and reason that occurred.
function changesTable(points, step) {
  const totals = { added: {}, removed: {} };
  for (const p of points) {
    for (const dir of ['added', 'removed']) {
      for (const [key] of REASONS) totals[dir][key] = (totals[dir][key] || 0) + num(p[dir]?.[key]);
    }
  }
  const columns = ['added', 'removed'].flatMap((dir) => REASONS.filter(([key]) => totals[dir][key])
    .map(([key, label]) => ({ dir, key, label: `${dir === 'added' ? '+' : '−'} ${label}` })));
  if (!columns.length) return h('p', { class: 'status' }, 'No entries or exits in this range.');
  const stepName = (p) => (step === 'day' ? when(p.start).slice(0, 10) : when(p.start));
  return table('Entries and exits by reason', ['Step (UTC)', 'Members at its end', ...columns.map((c) => c.label)], [
    ['Total', '', ...columns.map((c) => count(totals[c.dir][c.key]))],
    ...points.filter((p) => columns.some((c) => num(p[c.dir]?.[c.key]))).reverse()
      .map((p) => [stepName(p), count(p.size), ...columns.map((c) => count(p[c.dir]?.[c.key]))]),
  ]);
}

function membersSection(slug) {
  const st = status();
  const holder = h('div');
  const next = h('button', { type: 'button', hidden: true, onclick: () => load() }, 'Next page');
  let at = '';
  let pageToken = '';
  let pageSize = 50;
  let shown = 0;
  let total = 0;

  async function load() {
    next.hidden = true;
    st.className = 'status';
    st.textContent = 'Loading…';
    try {
      const [counted, page] = await Promise.all([
        shown ? null : get('/segments/count-members-at', { slug, at }),
        get('/segments/list-members-at', { slug, at, pageSize, pageToken }),
      ]);
      if (counted) total = num(counted.count);
      const members = page.members || [];
      st.textContent = `${count(total)} members at ${when(page.at) || at}` +
        (members.length ? `; ${shown + 1}–${shown + members.length} shown.` : '.');
      shown += members.length;
      pageToken = page.nextPageToken || '';
      next.hidden = !pageToken;
      holder.replaceChildren(members.length ? table('Members at the moment',
        ['User', 'Added (UTC)', 'Until (UTC)', 'Reason', 'Added by'],
        members.map((m) => [userLink(m.userID), when(m.addedAt), when(m.expiresAt) || 'permanent', m.reason,
          m.actor])) : '');
    } catch (err) {
      fail(st, err, 'read members at a moment');
    }
  }
  return section('Members at a moment',
    form({ class: 'inline' }, (f) => {
      at = fromInput(f.at.value);
      if (!at) {
        st.textContent = 'Give the moment as YYYY-MM-DDTHH:MM:SSZ (UTC).';
        return;
      }
      pageSize = Number(f.pageSize.value) || 50;
      pageToken = '';
      shown = 0;
      load();
    },
    momentField(),
    field('Page size', { name: 'pageSize', type: 'number', min: 1, max: 10000, value: 50 }),
    h('button', { type: 'submit' }, 'Show members')),
    st, holder, next);
}
