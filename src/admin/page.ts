/**
 * The operator page's script (`GET /admin`, bundled into `ADMIN_JS` by scripts/build-web.ts). It
 * asks for `ADMIN_TOKEN`, keeps it in sessionStorage (gone with the tab, never in a URL), and polls
 * `admin/figures` (next to the page, so under a mount too) with it as a bearer token every
 * {@link POLL_MS}. What the server sends is written as text, never as HTML: room names are chosen
 * by users.
 */
import type { AdminFigures } from './figures.ts';

const POLL_MS = 1500;
const TOKEN_KEY = 'aleatoria-admin-token';
/** Matches per minute are counted over the readings of the last minute. */
const RATE_WINDOW_MS = 60_000;
const SVG = 'http://www.w3.org/2000/svg';

const element = <T extends HTMLElement = HTMLElement>(id: string) =>
  document.getElementById(id) as T;
const login = element<HTMLFormElement>('login');
const tokenInput = element<HTMLInputElement>('token');
const loginError = element('login-error');
const dashboard = element('dashboard');
const status = element('status');
const chart = document.getElementById('ttm-chart') as unknown as SVGSVGElement;

/** Readings of `aleatoria_matches_total` over the last minute. */
let readings: { at: number; matches: number }[] = [];
let timer: ReturnType<typeof setTimeout> | undefined;

function showLogin(error: string) {
  clearTimeout(timer);
  sessionStorage.removeItem(TOKEN_KEY);
  readings = [];
  dashboard.hidden = true;
  login.hidden = false;
  loginError.textContent = error;
  tokenInput.focus();
}

async function poll() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token === null) return showLogin('');
  let response: Response;
  try {
    // Relative to the page (`…/admin`), so it works wherever the server is mounted.
    response = await fetch('admin/figures', {
      headers: { authorization: `Bearer ${token}` },
      cache: 'no-store',
    });
  } catch {
    status.textContent = 'Server unreachable: trying again…';
    timer = setTimeout(poll, POLL_MS);
    return;
  }
  if (response.status === 401) return showLogin('That token was refused.');
  if (response.ok) render((await response.json()) as AdminFigures);
  else status.textContent = `The server answered ${response.status}: trying again…`;
  timer = setTimeout(poll, POLL_MS);
}

const count = (n: number) => n.toLocaleString('en');

function bytes(n: number) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 ** 2).toFixed(1)} MiB`;
}

function render(figures: AdminFigures) {
  login.hidden = true;
  dashboard.hidden = false;
  loginError.textContent = '';
  status.textContent = `Updated ${new Date(figures.at).toLocaleTimeString('en-GB')}`;
  element('connections').textContent = count(figures.connections);
  element('rooms').textContent = count(figures.rooms);
  element('pool').textContent = count(figures.pool);
  element('pairs').textContent = count(figures.pairs);
  element('matches-per-minute').textContent = matchesPerMinute(figures);
  const history = figures.history;
  element('history').textContent = history ? `${count(history.messages)} msgs` : 'not in memory';
  element('history').title = history
    ? `${count(history.conversations)} conversations, ${bytes(history.bytes)}`
    : 'History is off, or kept in a shared store';
  drawTimeToMatch(figures.timeToMatch);
  fillRows(
    element('top-rooms'),
    figures.topRooms.map(({ room, members }) => [room, count(members)]),
    'No room has members.',
    2,
  );
  element('nodes-section').hidden = figures.nodes.length === 0;
  fillRows(
    element('nodes'),
    figures.nodes.map((node) => [
      node.id,
      count(node.connections),
      count(node.pairs),
      count(node.matches),
      node.ageMs === null ? '—' : `${(node.ageMs / 1000).toFixed(1)} s ago`,
    ]),
    '',
    5,
  );
}

/** Over the readings of the last minute; a counter that went back (a restart) starts them again. */
function matchesPerMinute({ at, matches }: AdminFigures): string {
  if (readings.length > 0 && matches < readings[readings.length - 1]!.matches) readings = [];
  readings.push({ at, matches });
  while (readings.length > 2 && at - readings[1]!.at >= RATE_WINDOW_MS) readings.shift();
  const first = readings[0]!;
  if (at <= first.at) return '…';
  return ((matches - first.matches) * (60_000 / (at - first.at))).toFixed(1);
}

/** One row of cells per entry (the first a heading); `empty` in one row when there are none. */
function fillRows(body: HTMLElement, rows: string[][], empty: string, columns: number) {
  const out = rows.map((cells) => {
    const row = document.createElement('tr');
    for (const [i, text] of cells.entries()) {
      const cell = document.createElement(i === 0 ? 'th' : 'td');
      if (i === 0) cell.scope = 'row';
      else cell.className = 'number';
      cell.textContent = text;
      row.append(cell);
    }
    return row;
  });
  if (out.length === 0 && empty !== '') {
    const row = document.createElement('tr');
    const cell = document.createElement('td');
    cell.colSpan = columns;
    cell.className = 'empty';
    cell.textContent = empty;
    row.append(cell);
    out.push(row);
  }
  body.replaceChildren(...out);
}

function svg(name: string, attributes: Record<string, string | number>, text?: string) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

/** The histogram as bars, one per bucket (Prometheus's counts are cumulative: each minus the last). */
function drawTimeToMatch({ buckets, count: total, sum }: AdminFigures['timeToMatch']) {
  const [width, top, bottom] = [400, 14, 130];
  const counts = buckets.map((bucket, i) => bucket.count - (i > 0 ? buckets[i - 1]!.count : 0));
  const highest = Math.max(1, ...counts);
  const slot = width / buckets.length;
  const nodes: SVGElement[] = [
    svg('line', {
      x1: 0,
      x2: width,
      y1: bottom,
      y2: bottom,
      stroke: 'currentColor',
      'stroke-opacity': 0.3,
    }),
  ];
  for (const [i, n] of counts.entries()) {
    const height = ((bottom - top) * n) / highest;
    const x = i * slot;
    const le = buckets[i]!.le;
    const label = le === null ? `>${buckets[i - 1]?.le ?? 0}s` : `≤${le}s`;
    nodes.push(
      svg('rect', { class: 'bar', x: x + 4, y: bottom - height, width: slot - 8, height }),
      svg('text', { x: x + slot / 2, y: bottom - height - 3 }, n > 0 ? count(n) : ''),
      svg('text', { x: x + slot / 2, y: bottom + 12 }, label),
    );
  }
  chart.replaceChildren(...nodes);
  element('ttm-summary').textContent =
    total === 0
      ? 'No match made yet.'
      : `${count(total)} ${total === 1 ? 'match' : 'matches'}, ${(sum / total).toFixed(2)} s waited on average.`;
}

login.addEventListener('submit', (event) => {
  event.preventDefault();
  const token = tokenInput.value.trim();
  if (token === '') return;
  sessionStorage.setItem(TOKEN_KEY, token);
  tokenInput.value = '';
  loginError.textContent = '';
  clearTimeout(timer);
  void poll();
});
element('forget').addEventListener('click', () => showLogin(''));

void poll();
