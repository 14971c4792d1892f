// The benchmark report agrees with itself: the README's performance table and
// bench/RESULTS.md are what bench/results.json says (both are generated from
// it by `npm run bench`; an edit by hand, or a results file committed without
// them, fails here).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { README, readmeWithTable, RESULTS_JSON, RESULTS_MD, type ResultsFile } from '../../bench/readme-table.js';
import { markdown, SCENARIO_NAMES } from '../../bench/run.js';

const results = JSON.parse(readFileSync(RESULTS_JSON, 'utf8')) as ResultsFile;

test("the README's performance table is the one generated from bench/results.json", () => {
  const readme = readFileSync(README, 'utf8');
  assert.equal(readme, readmeWithTable(readme, results, SCENARIO_NAMES));
});

test('bench/RESULTS.md is the one generated from bench/results.json', () => {
  assert.equal(readFileSync(RESULTS_MD, 'utf8'), markdown(results));
});

test('every target in the table says whether it was met', () => {
  const readme = readFileSync(README, 'utf8');
  const rows = readme.split('\n').filter((line) => /^\| [a-z-]+ \| .* \| (yes|\*\*no\*\*) \| \d{4}-\d\d-\d\d \|$/.test(line));
  const targets = SCENARIO_NAMES.reduce((n, name) => n + (results[name]?.result.targets.length ?? 0), 0);
  assert.equal(rows.length, targets);
});
