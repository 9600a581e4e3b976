// One user: segments now and why, why not in another, segments at a
// moment, every entry and exit, the user's monthly report.
import { get } from './api.js';
import {
  fail, field, form, fromInput, h, momentField, reportForm, row, section, segmentLink, status, table, when,
} from './ui.js';

export function userPage(main, id) {
  main.append(h('h1', { tabindex: -1 }, id ? `User ${id}` : 'User'),
    form({ class: 'inline' }, (f) => {
      const value = f.userID.value.trim();
      if (value) location.hash = `#/user/${encodeURIComponent(value)}`;
    },
    field('User id', { name: 'userID', value: id || '', required: true, spellcheck: 'false', autocomplete: 'off' }),
    h('button', { type: 'submit' }, 'Show user')));
  if (!id) {
    main.append(h('p', { class: 'status' }, 'Give a user id: a UUID or a decimal integer.'));
    return;
  }
  main.append(nowSection(id), lacksSection(id), historySection(id), atSection(id),
    section('Monthly report of this user', reportForm({ userID: id })));
}

// The cause's code, then the server's sentence saying it with its figures.
const why = (e) => h('span', { class: 'why' }, h('span', { class: 'tag' }, e.why), ' ', e.summary || '');

function nowSection(id) {
  const st = status('Loading…');
  const holder = h('div');
  (async () => {
    try {
      const ex = (await get('/segments/explain-for-user', { userID: id })).explanations || [];
      st.textContent = ex.length ? `In ${ex.length} segment${ex.length === 1 ? '' : 's'} now.` : 'In no segment now.';
      if (ex.length) {
        holder.replaceChildren(table('Segments now', ['Segment', 'Why', 'Since (UTC)', 'By', 'Until (UTC)'],
          ex.map((e) => [segmentLink(e.segment), why(e), when(e.event?.at), e.event?.actor,
            when(e.expiresAt) || 'permanent'])));
      }
    } catch (err) {
      if (err.status !== 501) {
        fail(st, err, 'explain segments');
        return;
      }
      try { // a server without explanations: the segments alone
        const segments = (await get('/segments/get-for-user', { userID: id })).segments || [];
        st.textContent = `In ${segments.length} segments now (this server cannot say why).`;
        holder.replaceChildren(h('ul', {}, segments.map((s) => h('li', {}, segmentLink(s)))));
      } catch (err2) {
        fail(st, err2, 'read segments');
      }
    }
  })();
  return section('Segments now, and why', st, holder);
}

function lacksSection(id) {
  const st = status();
  const holder = h('div');
  return section('Why (not) in a segment?',
    form({ class: 'inline' }, async (f) => {
      const slug = f.slug.value.trim();
      if (!slug) return;
      st.className = 'status';
      st.textContent = 'Loading…';
      holder.replaceChildren();
      try {
        const [e] = (await get('/segments/explain-for-user', { userID: id, segments: slug })).explanations || [];
        if (!e) {
          st.textContent = 'No answer for that segment.';
          return;
        }
        st.textContent = '';
        const item = (term, value) => (value ? [h('dt', {}, term), h('dd', {}, value)] : []);
        holder.replaceChildren(h('dl', { class: 'explanation' },
          item('Segment', segmentLink(e.segment)),
          item('Member now', e.member ? 'yes' : 'no'),
          item('Why', why(e)),
          item('Bucket', e.bucket !== undefined &&
            `${e.bucket} of 0–9999; members are below ${e.threshold ?? 0} (${e.percentToFill ?? 0} %)`),
          item('Unmet filters', e.unmetFilters?.join(', ')),
          item('Event', e.event && `${e.event.operation} at ${when(e.event.at)}, ${e.event.reason}, by ${e.event.actor}`),
          item('Until (UTC)', when(e.expiresAt))));
      } catch (err) {
        fail(st, err, 'explain segments');
      }
    },
    field('Segment slug', { name: 'slug', required: true, spellcheck: 'false', autocomplete: 'off' }),
    h('button', { type: 'submit' }, 'Explain')),
    st, holder);
}

function historySection(id) {
  const st = status('Loading…');
  const body = h('tbody');
  const events = h('table', { hidden: true }, h('caption', { class: 'visually-hidden' }, 'History'),
    h('thead', {}, h('tr', {}, ['When (UTC)', 'Change', 'Segment', 'Reason', 'By'].map((t) => h('th', { scope: 'col' }, t)))),
    body);
  const more = h('button', { type: 'button', hidden: true, onclick: () => load() }, 'Load older events');
  let pageToken = '';
  let total = 0;
  async function load() {
    more.hidden = true;
    try {
      const page = await get('/segments/get-user-history', { userID: id, pageSize: 1000, pageToken });
      for (const e of page.events || []) {
        body.append(row([when(e.at), e.operation === 'add' ? 'added to' : 'removed from', segmentLink(e.segment),
          e.reason, e.actor]));
        total += 1;
      }
      pageToken = page.nextPageToken || '';
      events.hidden = total === 0;
      st.textContent = total ? `${total} events, newest first${pageToken ? '; older ones remain' : ''}.`
        : 'No history for this user.';
    } catch (err) {
      fail(st, err, 'read history');
    }
    more.hidden = !pageToken;
  }
  load();
  return section('History', st, events, more);
}

function atSection(id) {
  const st = status();
  const holder = h('div');
  return section('Segments at a moment',
    form({ class: 'inline' }, async (f) => {
      const at = fromInput(f.at.value);
      if (!at) {
        st.textContent = 'Give the moment as YYYY-MM-DDTHH:MM:SSZ (UTC).';
        return;
      }
      st.className = 'status';
      st.textContent = 'Loading…';
      holder.replaceChildren();
      try {
        const r = await get('/segments/get-for-user-at', { userID: id, at });
        const ms = r.memberships || [];
        st.textContent = ms.length ? `In ${ms.length} segment${ms.length === 1 ? '' : 's'} at ${at}.`
          : `In no segment at ${at}.`;
        if (ms.length) {
          holder.replaceChildren(table('Segments at the moment', ['Segment', 'Since (UTC)', 'Until (UTC)', 'Reason', 'By'],
            ms.map((m) => [segmentLink(m.segment), when(m.addedAt), when(m.expiresAt) || 'permanent', m.reason,
              m.actor])));
        }
      } catch (err) {
        fail(st, err, 'read segments at a moment');
      }
    },
    momentField(),
    h('button', { type: 'submit' }, 'Show segments')),
    st, holder);
}
