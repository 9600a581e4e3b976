// The console's shell: the token bar and the pages by the URL's hash.
import { token } from './api.js';
import { banner, h, isoSeconds, reportForm } from './ui.js';
import { segmentPage, segmentsPage } from './segments.js';
import { userPage } from './user.js';

function reportPage(main) {
  main.append(h('h1', { tabindex: -1 }, 'Monthly report'),
    h('p', {}, 'Every entry into and exit from a segment during one month (UTC), as a CSV file ',
      h('code', {}, 'user_id;segment;operation;datetime'),
      ', for every user or one. The link is signed, needs no token and works for a few hours.'),
    reportForm({ askUser: true }));
}

const ROUTES = [
  [/^#\/segments\/?$/, 'segments', segmentsPage],
  [/^#\/segment\/([^/]+)$/, 'segments', segmentPage],
  [/^#\/user(?:\/([^/]*))?$/, 'user', userPage],
  [/^#\/report\/?$/, 'report', reportPage],
];

let routed = false;

function route() {
  const hash = location.hash || '#/segments';
  const found = ROUTES.find(([pattern]) => pattern.test(hash));
  if (!found) {
    location.replace('#/segments');
    return;
  }
  const [pattern, nav, page] = found;
  let args;
  try {
    args = pattern.exec(hash).slice(1).map((a) => (a ? decodeURIComponent(a) : a));
  } catch {
    args = [];
  }
  for (const a of document.querySelectorAll('nav a')) {
    if (a.dataset.page === nav) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  banner('');
  const main = document.getElementById('main');
  main.replaceChildren();
  page(main, ...args);
  const title = main.querySelector('h1');
  document.title = `${title?.textContent || 'segments'} · segments console`;
  // After a navigation (not on opening), keyboard and screen reader users
  // land on the new page's heading.
  if (routed) title?.focus();
  routed = true;
}

// The token's claims, read (not verified: the server does that) to show
// whose it is.
function claims(jwt) {
  try {
    const part = jwt.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(new TextDecoder().decode(Uint8Array.from(atob(part), (c) => c.charCodeAt(0))));
  } catch {
    return null;
  }
}

function showWho() {
  const who = document.getElementById('who');
  const jwt = token.get();
  if (!jwt) {
    who.textContent = 'No token yet.';
    return;
  }
  const c = claims(jwt);
  if (!c) {
    who.textContent = 'Token set (not a JWT).';
    return;
  }
  const roles = [].concat(c.roles ?? []).join(' ');
  const exp = typeof c.exp === 'number' ? new Date(c.exp * 1000) : null;
  who.textContent = `${c.sub ?? 'unknown subject'}${roles ? ` (${roles})` : ''}` +
    (exp ? `, ${exp < new Date() ? 'expired' : 'until'} ${isoSeconds(exp).slice(0, 10)}` : '');
  who.title = exp ? `expires ${isoSeconds(exp)}` : '';
}

document.getElementById('token-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const input = document.getElementById('token');
  const value = input.value.trim().replace(/^Bearer\s+/i, '');
  if (!value) return;
  token.set(value);
  input.value = '';
  showWho();
  route();
});
document.getElementById('forget').addEventListener('click', () => {
  token.clear();
  showWho();
  route();
});
window.addEventListener('hashchange', route);
showWho();
route();
