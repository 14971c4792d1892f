// The console's one script, compiled by tsc (client/tsconfig.json) and served
// from the package: the live feed (server-sent events from /events, resumed
// after the last decision the page shows), the chart's refresh, and a
// confirmation before a delete. The pages work without it.
import type { ConsoleDecision } from './decision.js';

const OUTCOME_LABEL = { allowed: 'issued', denied: 'refused', failed: 'failed' } as const;
const MAX_ROWS = 500;

function cell(row: HTMLTableRowElement, text: string | undefined, code = false): HTMLTableCellElement {
  const td = row.insertCell();
  const value = text === undefined || text === '' ? '—' : text;
  if (code && value !== '—') td.appendChild(document.createElement('code')).textContent = value;
  else td.textContent = value;
  return td;
}

function addRow(body: HTMLTableSectionElement, d: ConsoleDecision): void {
  const row = body.insertRow(0);
  row.dataset.seq = String(d.seq);
  row.dataset.outcome = d.outcome;
  row.className = 'new';
  const time = document.createElement('time');
  time.dateTime = d.time;
  time.textContent = `${d.time.replace('T', ' ').slice(0, 19)}Z`;
  row.insertCell().appendChild(time);
  cell(row, d.cluster);
  cell(row, d.namespace);
  cell(row, d.serviceAccount);
  cell(row, d.pod);
  cell(row, d.node);
  cell(row, d.roleArn, true);
  const outcome = row.insertCell().appendChild(document.createElement('span'));
  outcome.className = `outcome ${d.outcome}`;
  outcome.textContent = OUTCOME_LABEL[d.outcome];
  const reason = cell(row, d.reason, true);
  if (d.reason && d.errorType) reason.append(` (${d.errorType})`);
  cell(row, d.worker === undefined ? d.replica : `${d.replica} · worker ${d.worker}`);
  while (body.rows.length > MAX_ROWS) body.deleteRow(-1);
}

function liveFeed(table: HTMLTableElement): void {
  const status = document.getElementById('live-status');
  const body = table.tBodies[0]!;
  const url = new URL(table.dataset.events ?? '/events', location.href);
  url.searchParams.set('after', table.dataset.after ?? '0');
  const source = new EventSource(url);
  const say = (text: string, state: string) => {
    if (status) status.textContent = text;
    table.dataset.live = state;
  };
  say('Connecting to the live feed…', 'connecting');
  source.addEventListener('open', () => say('Live: new decisions appear at the top.', 'connected'));
  source.addEventListener('error', () => say(source.readyState === EventSource.CLOSED ? 'The live feed ended; reload the page (your session may have expired).' : 'Reconnecting to the live feed…', 'reconnecting'));
  source.addEventListener('decision', (event) => addRow(body, JSON.parse((event as MessageEvent<string>).data) as ConsoleDecision));
}

function refreshChart(figure: HTMLElement): void {
  const src = figure.dataset.src;
  if (!src) return;
  setInterval(() => {
    fetch(src, { credentials: 'same-origin' })
      .then((res) => (res.ok ? res.text() : Promise.reject(new Error(String(res.status)))))
      .then((markup) => {
        figure.innerHTML = markup;
      })
      .catch(() => undefined);
  }, 10_000);
}

for (const form of document.querySelectorAll<HTMLFormElement>('form[data-confirm]')) {
  form.addEventListener('submit', (event) => {
    if (!confirm(form.dataset.confirm ?? 'Are you sure?')) event.preventDefault();
  });
}
const feed = document.getElementById('feed');
if (feed instanceof HTMLTableElement) liveFeed(feed);
const chart = document.getElementById('chart');
if (chart) refreshChart(chart);
