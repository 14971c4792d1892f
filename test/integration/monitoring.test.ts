// The chart's alerting rules (deploy/helm/pod-identity/monitoring/alerts.yaml)
// checked by the real promtool: the file, and the PrometheusRule the chart
// renders from it; promtool's rule unit tests (test/fixtures/monitoring/)
// make two alerts fire on the series that should fire them; and every metric
// the rules query is one the server or the agent exports.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, test } from 'node:test';
import { promisify } from 'node:util';
import { parse, parseAllDocuments, stringify } from 'yaml';
import { helmMissingReason, kubeBinary } from '../peers/kube.js';
import { promtoolMissingReason, promtoolPath } from '../peers/promtool.js';
import { requirePeer } from '../peers/require.js';

const run = promisify(execFile);
const CHART = resolve('deploy/helm/pod-identity');
const RULES = join(CHART, 'monitoring/alerts.yaml');
/** the values the chart cannot render without */
const REQUIRED = ['--set', 'server.nodeKey.accessKeyId=AKIANODEMONITORING', '--set', 'server.nodeKey.secretAccessKey=node-secret-for-monitoring-test'];

interface RuleFile {
  groups: { name: string; rules: { alert: string; expr: string }[] }[];
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sourceFiles(path) : path.endsWith('.ts') ? [path] : [];
  });
}

describe('the chart’s alerting rules', { skip: requirePeer('promtool', promtoolMissingReason) || requirePeer('helm', helmMissingReason) }, () => {
  test('promtool check rules passes on the shipped file, and on the PrometheusRule the chart renders from it', async () => {
    const checked = await run(promtoolPath()!, ['check', 'rules', RULES]);
    assert.match(checked.stdout, /SUCCESS: 6 rules found/);

    const { stdout } = await run(kubeBinary('helm'), ['template', 'pi', CHART, '--namespace', 'pod-identity', ...REQUIRED, '--set', 'monitoring.prometheusRule.enabled=true', '--set', 'monitoring.prometheusRule.labels.release=prometheus']);
    const rule = parseAllDocuments(stdout).map((d) => d.toJS() as { kind?: string; metadata?: { labels?: Record<string, string> }; spec?: RuleFile }).find((d) => d?.kind === 'PrometheusRule');
    assert.ok(rule?.spec, 'a PrometheusRule is rendered when enabled');
    assert.equal(rule.metadata?.labels?.release, 'prometheus');
    assert.deepEqual(rule.spec, parse(readFileSync(RULES, 'utf8')), 'the rendered rules are the file’s');
    const dir = mkdtempSync(join(tmpdir(), 'rules-'));
    try {
      writeFileSync(join(dir, 'rendered.yaml'), stringify(rule.spec));
      assert.match((await run(promtoolPath()!, ['check', 'rules', join(dir, 'rendered.yaml')])).stdout, /SUCCESS: 6 rules found/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const plain = await run(kubeBinary('helm'), ['template', 'pi', CHART, '--namespace', 'pod-identity', ...REQUIRED]);
    assert.doesNotMatch(plain.stdout, /kind: PrometheusRule/, 'off by default');
  });

  test('promtool test rules: the EKS Auth failure ratio and a replica not ready fire for the series they should, and only those', async () => {
    const { stdout } = await run(promtoolPath()!, ['test', 'rules', 'alerts.test.yaml'], { cwd: resolve('test/fixtures/monitoring') });
    assert.match(stdout, /SUCCESS/);
  });

  test('every metric the rules query is one the code exports', () => {
    const rules = parse(readFileSync(RULES, 'utf8')) as RuleFile;
    const queried = new Set(rules.groups.flatMap((g) => g.rules.flatMap((r) => r.expr.match(/\bpod_identity_[a-z_]+/g) ?? [])));
    assert.ok(queried.size === 6, [...queried].join(', '));
    const source = sourceFiles('src').map((f) => readFileSync(f, 'utf8')).join('\n');
    for (const name of queried) assert.ok(source.includes(`'${name}'`), `${name} is a metric name in src/`);
  });
});
