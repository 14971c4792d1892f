// The console's static assets, served from the package itself (no CDN, no
// fetch at run time): the stylesheet below and the script tsc compiles from
// client/console.ts into dist/console/client/console.js.
import { readFileSync } from 'node:fs';

export const STYLESHEET = `
:root { color-scheme: light; --fg: #1b1f24; --muted: #57606a; --line: #d0d7de; --accent: #0b5cad; --ok: #1a7f37; --bad: #cf222e; --bg-soft: #f6f8fa; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); }
a { color: var(--accent); }
:focus-visible { outline: 3px solid #f0a800; outline-offset: 2px; }
.skip { position: absolute; left: -999px; top: 0; background: #fff; padding: .5em 1em; }
.skip:focus { left: 1em; z-index: 10; }
.visually-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
header { display: flex; flex-wrap: wrap; align-items: center; gap: 1.5em; padding: .6em 1.5em; background: #24292f; color: #fff; }
header a { color: #fff; text-decoration: none; padding: .25em .5em; border-radius: 4px; }
header a[aria-current="page"] { background: #57606a; }
header ul { display: flex; gap: .5em; list-style: none; margin: 0; padding: 0; }
.brand { font-weight: 700; }
.sign-out { margin-left: auto; display: flex; gap: .5em; align-items: center; }
main { padding: 1em 1.5em 3em; max-width: 1400px; }
h1 { font-size: 1.5em; margin: .3em 0 .6em; }
h2 { font-size: 1.15em; margin: 1.6em 0 .5em; }
table { border-collapse: collapse; width: 100%; font-size: .92em; }
caption { text-align: left; color: var(--muted); padding: .3em 0; }
th, td { text-align: left; padding: .35em .6em; border-bottom: 1px solid var(--line); vertical-align: top; }
thead th { background: var(--bg-soft); }
td.num { text-align: right; }
code { font-size: .9em; overflow-wrap: anywhere; }
form.stack { display: grid; grid-template-columns: minmax(10em, max-content) minmax(16em, 40em); gap: .5em 1em; align-items: center; }
form.stack button, form.stack .check { grid-column: 2; justify-self: start; }
form.filters, form.inline { display: flex; flex-wrap: wrap; gap: .5em; align-items: center; margin: .5em 0 1em; }
input, select, textarea, button { font: inherit; padding: .3em .5em; border: 1px solid #8c959f; border-radius: 4px; }
textarea { font-family: ui-monospace, monospace; }
button { background: var(--accent); color: #fff; border-color: var(--accent); cursor: pointer; }
button.danger { background: var(--bad); border-color: var(--bad); }
header button { background: transparent; border-color: #8c959f; }
.notice { padding: .6em 1em; border-radius: 4px; margin: .5em 0 1em; }
.notice.error { background: #ffebe9; border: 1px solid var(--bad); }
.notice.done { background: #dafbe1; border: 1px solid var(--ok); }
.outcome { font-weight: 600; }
.outcome.allowed { color: var(--ok); }
.outcome.denied, .outcome.failed { color: var(--bad); }
tr.new { animation: flash 2s ease-out; }
@keyframes flash { from { background: #fff8c5; } to { background: transparent; } }
@media (prefers-reduced-motion: reduce) { tr.new { animation: none; } }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .3em 1.2em; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; }
ul.tags { list-style: none; margin: 0; padding: 0; }
figure { margin: 0; max-width: 640px; }
.chart { width: 100%; height: auto; }
.chart .issued, .key.issued { fill: var(--ok); background: var(--ok); }
.chart .refused, .key.refused { fill: var(--bad); background: var(--bad); }
.chart .axis { stroke: var(--muted); }
.chart .grid { stroke: var(--line); stroke-dasharray: 4 3; }
.chart text { font-size: 11px; fill: var(--muted); }
.legend { color: var(--muted); font-size: .9em; }
.key { display: inline-block; width: .8em; height: .8em; border-radius: 2px; }
`;

let script: string | undefined;

/** The compiled client script; read once, from beside this module in dist/ (absent when run from the sources). */
export function clientScript(): string | undefined {
  if (script === undefined) {
    try {
      script = readFileSync(new URL('./client/console.js', import.meta.url), 'utf8');
    } catch {
      return undefined;
    }
  }
  return script;
}
