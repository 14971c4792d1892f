// The chart of issued and refused credentials per minute: inline SVG made on
// the server (no script, no library), with a title and a description that
// say the totals for screen readers.
import type { MinuteCount } from './feed.js';
import { html, type Html } from './html.js';

const WIDTH = 600;
const HEIGHT = 160;
const PAD_LEFT = 36;
const PAD_BOTTOM = 20;
const PAD_TOP = 8;

function hhmm(ms: number): string {
  return new Date(ms).toISOString().slice(11, 16);
}

/** Two bars a minute (issued, refused), on a scale rounded up to a tidy maximum. */
export function renderChart(minutes: readonly MinuteCount[]): Html {
  const peak = Math.max(1, ...minutes.map((m) => Math.max(m.issued, m.refused)));
  const magnitude = 10 ** Math.floor(Math.log10(peak));
  const top = [1, 2, 5, 10].map((f) => f * magnitude).find((v) => v >= peak)!;
  const plotW = WIDTH - PAD_LEFT;
  const plotH = HEIGHT - PAD_BOTTOM - PAD_TOP;
  const slot = plotW / Math.max(1, minutes.length);
  const bar = Math.max(1, slot / 2 - 1);
  const y = (v: number) => PAD_TOP + plotH - (v / top) * plotH;
  const issued = minutes.reduce((s, m) => s + m.issued, 0);
  const refused = minutes.reduce((s, m) => s + m.refused, 0);
  const first = minutes[0]?.minute ?? 0;
  const last = minutes.at(-1)?.minute ?? 0;
  const bars = minutes.map((m, i) => {
    const x = PAD_LEFT + i * slot;
    const label = `${hhmm(m.minute)} UTC: ${m.issued} issued, ${m.refused} refused`;
    return html`<g><title>${label}</title>${m.issued ? html`<rect class="issued" x="${x.toFixed(1)}" y="${y(m.issued).toFixed(1)}" width="${bar.toFixed(1)}" height="${(y(0) - y(m.issued)).toFixed(1)}"/>` : ''}${
      m.refused ? html`<rect class="refused" x="${(x + bar + 1).toFixed(1)}" y="${y(m.refused).toFixed(1)}" width="${bar.toFixed(1)}" height="${(y(0) - y(m.refused)).toFixed(1)}"/>` : ''
    }</g>`;
  });
  return html`<svg class="chart" viewBox="0 0 ${WIDTH} ${HEIGHT}" role="img" aria-labelledby="chart-title chart-desc" xmlns="http://www.w3.org/2000/svg">
<title id="chart-title">Credentials issued and refused per minute</title>
<desc id="chart-desc">From ${hhmm(first)} to ${hhmm(last)} UTC: ${issued} issued, ${refused} refused.</desc>
<line class="axis" x1="${PAD_LEFT}" y1="${y(0)}" x2="${WIDTH}" y2="${y(0)}"/>
<line class="grid" x1="${PAD_LEFT}" y1="${y(top)}" x2="${WIDTH}" y2="${y(top)}"/>
<text x="${PAD_LEFT - 4}" y="${y(top) + 4}" text-anchor="end">${top}</text>
<text x="${PAD_LEFT - 4}" y="${y(0)}" text-anchor="end">0</text>
<text x="${PAD_LEFT}" y="${HEIGHT - 4}">${hhmm(first)}</text>
<text x="${WIDTH}" y="${HEIGHT - 4}" text-anchor="end">${hhmm(last)} UTC</text>
${bars}
</svg>`;
}
