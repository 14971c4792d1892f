// The Helm chart (deploy/helm/pod-identity) as operators install it: rendered
// by the real `helm` binary, every object accepted by a real kube-apiserver's
// server-side dry run (admission, defaulting, strict field validation), the
// guard rails of the chart failing with their messages, the configuration it
// writes accepted by the server's own schema, the agent's arguments known to
// the agent's CLI, and the server's RBAC granting what the server calls.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Command } from 'commander';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import { registerAgentCommand } from '../../src/cli/agent.js';
import { createRegistry } from '../../src/lib/metrics.js';
import { connectKube } from '../../src/kube/connect.js';
import { certificateSecretSync } from '../../src/webhook/certificate-secret.js';
import { loadServerConfig, parseServerConfig } from '../../src/config/load.js';
import { createNamespace, runKubeTool } from '../peers/kube-api.js';
import { helmMissingReason, kubeBinary, kubeMissingReason, startKubeControlPlane, type KubeControlPlane } from '../peers/kube.js';
import { requirePeer } from '../peers/require.js';
import { createCertificateAuthority } from '../peers/tls.js';

const skip = requirePeer('kube-apiserver', kubeMissingReason) || requirePeer('helm', helmMissingReason);

const CHART = resolve('deploy/helm/pod-identity');
const RELEASE = 'pi';
const NAMESPACE = 'pod-identity';
const FULLNAME = 'pi-pod-identity';
/** what `helm install` cannot do without */
const REQUIRED = ['server.nodeKey.accessKeyId=AKIANODEHELMTEST', 'server.nodeKey.secretAccessKey=node-secret-for-helm-test'];

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  [key: string]: unknown;
}
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Loose = any;

function objectsOf(yaml: string): K8sObject[] {
  return parseAllDocuments(yaml)
    .map((doc) => doc.toJS() as K8sObject | null)
    .filter((o): o is K8sObject => o !== null);
}

function find(objects: K8sObject[], kind: string, name?: string): Loose {
  return objects.find((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
}

/** `--long` flags of a commander command. */
function longFlags(command: Command): Set<string> {
  return new Set(command.options.map((o) => o.long).filter((f): f is string => f !== undefined));
}

interface SchemaNode {
  properties?: Record<string, SchemaNode>;
  $ref?: string;
}

/**
 * Every key of values.yaml an operator sets, dotted (`server.persistence.size`):
 * a mapping is descended into when the schema lists its properties, and is
 * one value when it is free-form (resources, nodeSelector, affinity, …).
 */
function valueKeys(values: Record<string, unknown>, schema: SchemaNode, prefix = ''): string[] {
  return Object.entries(values).flatMap(([key, value]) => {
    const node = schema.properties?.[key];
    const path = prefix + key;
    const nested = value !== null && typeof value === 'object' && !Array.isArray(value) && node?.properties !== undefined && node.$ref === undefined;
    return nested ? [path, ...valueKeys(value as Record<string, unknown>, node, `${path}.`)] : [path];
  });
}

describe('the chart README', () => {
  test('lists every key of values.yaml, and no key that is not there', () => {
    const values = parseYaml(readFileSync(join(CHART, 'values.yaml'), 'utf8')) as Record<string, unknown>;
    const schema = JSON.parse(readFileSync(join(CHART, 'values.schema.json'), 'utf8')) as SchemaNode;
    const readme = readFileSync(join(CHART, 'README.md'), 'utf8');
    const table = readme.slice(readme.indexOf('## Values'));
    const listed = new Set([...table.matchAll(/^\| `([^`]+)` \|/gm)].map((m) => m[1]!));
    const keys = valueKeys(values, schema);
    assert.ok(keys.length > 40, `${keys.length} keys found`);
    // a nested key listed stands for its parent mapping
    const missing = keys.filter((k) => !listed.has(k) && ![...listed].some((l) => l.startsWith(`${k}.`)));
    assert.deepEqual(missing, [], 'values.yaml keys missing from the README');
    const known = new Set(keys);
    assert.deepEqual([...listed].filter((k) => !known.has(k)), [], 'README rows naming no key of values.yaml');
  });
});

describe('the Grafana dashboard monitoring/dashboard.json', () => {
  interface Panel {
    type: string;
    title: string;
    targets?: { expr: string }[];
  }

  test('parses, and every metric it queries is in the README’s metric table or one of prom-client’s default metrics', async () => {
    const dashboard = JSON.parse(readFileSync(join(CHART, 'monitoring/dashboard.json'), 'utf8')) as { uid: string; panels: Panel[]; templating: { list: { name: string; query: unknown }[] } };
    assert.equal(dashboard.uid, 'pod-identity');
    const exprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));
    assert.ok(exprs.length >= 25, `${exprs.length} queries`);
    // the metric table of the project's README: name → type
    const readme = readFileSync('README.md', 'utf8');
    const table = new Map([...readme.matchAll(/^\| `([a-z_]+)` \| (counter|gauge|histogram) \|/gm)].map((m) => [m[1]!, m[2]!]));
    assert.ok(table.size > 20, `${table.size} metrics in the README`);
    // what prom-client's default metrics are called, from a registry as the processes make it
    const defaults = new Set((await createRegistry('agent').getMetricsAsJSON()).map((m) => m.name));
    const queried = new Set(
      [...exprs, ...dashboard.templating.list.map((v) => JSON.stringify(v.query))].flatMap((e) => e.match(/\b(pod_identity|process|nodejs)_[a-z0-9_]+/g) ?? []),
    );
    for (const name of queried) {
      const histogram = name.replace(/_(bucket|sum|count)$/, '');
      const known = table.has(name) || (table.get(histogram) === 'histogram' && histogram !== name) || defaults.has(name);
      assert.ok(known, `${name} is queried by the dashboard but is not a metric the README lists or prom-client exports`);
    }
    // every server and agent metric family has a panel: nothing measured goes unseen
    for (const name of table.keys()) assert.ok([...queried].some((q) => q === name || q.startsWith(`${name}_`)), `${name} has no panel`);
  });
});

describe('Helm chart deploy/helm/pod-identity', { skip, timeout: 300_000 }, () => {
  let kube: KubeControlPlane;
  let dir: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'helm-chart-test-'));
    kube = await startKubeControlPlane();
    await createNamespace(kube, NAMESPACE);
  });

  after(async () => {
    await kube?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const template = async (sets: string[], extra: string[] = []) =>
    (await runKubeTool('helm', kube, ['template', RELEASE, CHART, '--namespace', NAMESPACE, ...extra, ...sets.flatMap((s) => ['--set', s])])).stdout;

  /** helm template that must fail: answers its error text */
  const templateFails = async (sets: string[]) => {
    try {
      await template(sets);
    } catch (error) {
      return (error as Error).message;
    }
    assert.fail(`helm template ${sets.join(' ')} rendered, but should have failed`);
  };

  /** kubectl apply --dry-run=server with strict field validation; answers stdout, refuses warnings */
  const dryRun = async (yaml: string) => {
    const { stdout, stderr } = await runKubeTool('kubectl', kube, ['apply', '--dry-run=server', '--validate=strict', '-f', '-'], { input: yaml });
    assert.doesNotMatch(stderr, /warning/i, `the API server warned about the chart:\n${stderr}`);
    return stdout;
  };

  const assertAllAccepted = (yaml: string, stdout: string) => {
    const lines = stdout.trim().split('\n');
    assert.equal(lines.length, objectsOf(yaml).length, stdout);
    for (const line of lines) assert.match(line, /\(server dry run\)$/, line);
  };

  test('helm lint --strict passes', async () => {
    const { stdout } = await runKubeTool('helm', kube, ['lint', CHART, '--strict', ...REQUIRED.flatMap((s) => ['--set', s])]);
    assert.match(stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
  });

  test('default render, CRD included, is accepted by the server-side dry run', async (t) => {
    const started = Date.now();
    const yaml = await template(REQUIRED, ['--include-crds']);
    const objects = objectsOf(yaml);
    const kinds = objects.map((o) => o.kind).sort();
    for (const kind of [
      'ClusterRole',
      'ClusterRoleBinding',
      'CustomResourceDefinition',
      'DaemonSet',
      'Deployment',
      'MutatingWebhookConfiguration',
      'PersistentVolumeClaim',
      'Role',
      'RoleBinding',
      'Secret',
      'Service',
      'ServiceAccount',
    ]) {
      assert.ok(kinds.includes(kind), `${kind} rendered (${kinds.join(', ')})`);
    }
    // one replica: no budget, which would block every node drain
    assert.equal(find(objects, 'PodDisruptionBudget'), undefined);
    assertAllAccepted(yaml, await dryRun(yaml));
    t.diagnostic(`${objects.length} objects rendered and dry-run applied in ${Date.now() - started} ms`);
  });

  test('the configuration the chart writes is valid for `pod-identity server`, with syncCrds on by default', async () => {
    const configOf = async (sets: string[]) => {
      const secret = find(objectsOf(await template(sets)), 'Secret', `${FULLNAME}-config`);
      return parseServerConfig(objectsOf(secret.stringData['config.yaml'] as string)[0]);
    };
    const config = await configOf(REQUIRED);
    assert.equal(config.clusters.length, 1);
    const [cluster] = config.clusters;
    assert.equal(cluster!.kubeconfig, 'in-cluster');
    assert.equal(cluster!.syncCrds, true);
    assert.equal(cluster!.requireNodeBinding, true);
    assert.equal(cluster!.issuer, undefined, 'no issuer check unless the operator names the cluster’s issuer');
    assert.deepEqual(config.nodes, [{ accessKeyId: 'AKIANODEHELMTEST', secretAccessKey: 'node-secret-for-helm-test', clusters: ['my-cluster'] }]);
    assert.equal(config.issuer.type, 'aws-sts');
    assert.equal(config.webhook.certFile, undefined, 'the server makes and keeps its certificate');
    assert.deepEqual(config.webhook.certificateSecret, { namespace: NAMESPACE, secretName: `${FULLNAME}-webhook-tls`, caConfigMap: `${FULLNAME}-ca`, webhookConfiguration: FULLNAME });

    const tuned = await configOf([
      ...REQUIRED,
      'server.syncCrds=false',
      'server.serviceAccountIssuer=https://kubernetes.default.svc.cluster.local',
      'clusterName=prod-1',
      'server.admins[0].accessKeyId=AKIAADMINHELM',
      'server.admins[0].secretAccessKey=admin-secret',
      'server.issuer.stsEndpoint=https://sts.eu-west-1.amazonaws.com',
      'server.databaseUrl=postgres://pod-identity:pw@db:5432/pod_identity',
    ]);
    assert.equal(tuned.clusters[0]!.syncCrds, false);
    assert.equal(tuned.clusters[0]!.name, 'prod-1');
    assert.equal(tuned.clusters[0]!.issuer, 'https://kubernetes.default.svc.cluster.local');
    assert.deepEqual(tuned.admins, [{ accessKeyId: 'AKIAADMINHELM', secretAccessKey: 'admin-secret' }]);
    assert.equal(tuned.issuer.stsEndpoint, 'https://sts.eu-west-1.amazonaws.com');
    assert.equal(tuned.databaseUrl, 'postgres://pod-identity:pw@db:5432/pod_identity');

    // an account id given by --set is a number; one in a values file, a float: both are written as the 12 digits
    assert.equal((await configOf([...REQUIRED, 'accountId=123456789012'])).accountId, '123456789012');
    const valuesFile = join(dir, 'account.yaml');
    writeFileSync(valuesFile, 'accountId: 123456789012\n');
    const fromFile = find(objectsOf(await template(REQUIRED, ['-f', valuesFile])), 'Secret', `${FULLNAME}-config`);
    assert.equal(parseServerConfig(objectsOf(fromFile.stringData['config.yaml'] as string)[0]).accountId, '123456789012');
    assert.equal((await configOf([...REQUIRED, 'accountId=012345678901'])).accountId, '012345678901', 'a leading zero stays (helm keeps it a string)');
  });

  test('the agent DaemonSet passes only flags the agent knows; the server runs from the config Secret, non-root', async () => {
    const objects = objectsOf(await template(REQUIRED));
    const program = new Command();
    registerAgentCommand(program);
    const agentFlags = longFlags(program.commands.find((c) => c.name() === 'agent')!);
    const daemonSet = find(objects, 'DaemonSet', `${FULLNAME}-agent`);
    const [agent] = daemonSet.spec.template.spec.containers as { args: string[] }[];
    assert.equal(agent!.args[0], 'agent');
    for (const arg of agent!.args.slice(1)) {
      const flag = arg.split('=')[0]!;
      assert.ok(agentFlags.has(flag), `the agent has no ${flag} flag`);
    }
    assert.ok(agent!.args.includes('--cluster-name=my-cluster'));
    const [init] = daemonSet.spec.template.spec.initContainers as { args: string[]; securityContext: Loose }[];
    assert.deepEqual(init!.args, ['initialize']);
    assert.deepEqual(init!.securityContext.capabilities, { drop: ['ALL'], add: ['NET_ADMIN'] });
    assert.equal(daemonSet.spec.template.spec.hostNetwork, true);
    assert.equal(daemonSet.spec.template.spec.priorityClassName, 'system-node-critical');

    const deployment = find(objects, 'Deployment', `${FULLNAME}-server`);
    const [server] = deployment.spec.template.spec.containers as { args: string[]; securityContext: Loose }[];
    assert.deepEqual(server!.args, ['server', '--config', '/etc/pod-identity/config/config.yaml']);
    assert.equal(server!.securityContext.readOnlyRootFilesystem, true);
    // the CRD reconciler's leader election: the Lease in the pod's namespace, held as the pod
    const env = (server as unknown as { env: { name: string; valueFrom?: { fieldRef?: { fieldPath?: string } } }[] }).env;
    assert.deepEqual(
      env.map((e) => [e.name, e.valueFrom?.fieldRef?.fieldPath]),
      [
        ['POD_NAMESPACE', 'metadata.namespace'],
        ['POD_NAME', 'metadata.name'],
      ],
    );
    assert.equal(deployment.spec.template.spec.securityContext.runAsNonRoot, true);
    assert.equal(deployment.spec.strategy.type, 'Recreate', 'one SQLite writer at a time');
  });

  test('agent → server is HTTPS by default: the API serves the certificate the server keeps, the agent verifies it with the CA ConfigMap; off, it says so', async () => {
    const objects = objectsOf(await template(REQUIRED));
    const config = parseServerConfig(objectsOf(find(objects, 'Secret', `${FULLNAME}-config`).stringData['config.yaml'] as string)[0]);
    // the files the server copies from its Secret into the data directory
    assert.deepEqual(config.tls, { certFile: '/var/lib/pod-identity/webhook-tls/tls.crt', keyFile: '/var/lib/pod-identity/webhook-tls/tls.key', certHosts: [] });
    assert.equal(config.dataDir, '/var/lib/pod-identity');
    // the certificate names the Service the agents and the API server call
    assert.deepEqual(config.webhook.certHosts, [`${FULLNAME}-server.${NAMESPACE}.svc`, `${FULLNAME}-server`, `${FULLNAME}-server.${NAMESPACE}`]);
    const daemonSet = find(objects, 'DaemonSet', `${FULLNAME}-agent`);
    const spec = daemonSet.spec.template.spec;
    const [agent] = spec.containers as { args: string[]; volumeMounts: Loose[] }[];
    assert.ok(agent!.args.includes(`--endpoint=https://${FULLNAME}-server.${NAMESPACE}.svc:8080`), agent!.args.join(' '));
    assert.ok(agent!.args.includes('--ca-bundle=/etc/pod-identity/ca/ca.crt'));
    assert.ok(!agent!.args.includes('--allow-insecure-http-endpoint'));
    assert.deepEqual(agent!.volumeMounts, [{ name: 'server-ca', mountPath: '/etc/pod-identity/ca', readOnly: true }]);
    // the key named: the pod waits until the server has published the CA
    assert.deepEqual(spec.volumes, [{ name: 'server-ca', configMap: { name: `${FULLNAME}-ca`, items: [{ key: 'ca.crt', path: 'ca.crt' }] } }], 'the CA only, never the serving key');
    // rendered empty: the server fills them
    assert.equal(find(objects, 'Secret', `${FULLNAME}-webhook-tls`).data, undefined);
    assert.equal(find(objects, 'ConfigMap', `${FULLNAME}-ca`).data, undefined);
    assert.equal(find(objects, 'MutatingWebhookConfiguration').webhooks[0].clientConfig.caBundle, undefined);
    const deployment = find(objects, 'Deployment', `${FULLNAME}-server`);
    assert.ok(!(deployment.spec.template.spec.volumes as Loose[]).some((v) => v.name === 'webhook-tls'), 'the server reads its Secret through the API');

    const plain = objectsOf(await template([...REQUIRED, 'server.tls.enabled=false']));
    const plainConfig = parseServerConfig(objectsOf(find(plain, 'Secret', `${FULLNAME}-config`).stringData['config.yaml'] as string)[0]);
    assert.equal(plainConfig.tls, undefined);
    const [plainAgent] = find(plain, 'DaemonSet', `${FULLNAME}-agent`).spec.template.spec.containers as { args: string[] }[];
    assert.ok(plainAgent!.args.includes(`--endpoint=http://${FULLNAME}-server.${NAMESPACE}.svc:8080`));
    assert.ok(plainAgent!.args.includes('--allow-insecure-http-endpoint'), 'plain http only with the explicit flag');
  });

  test('two renders of the same values are identical (no certificate made by helm), in each certificate mode', async () => {
    for (const sets of [REQUIRED, [...REQUIRED, 'certManager.enabled=true'], [...REQUIRED, 'server.replicas=2', 'server.databaseUrl=postgres://pi:pw@db/pi']]) {
      const [one, two] = [await template(sets, ['--include-crds']), await template(sets, ['--include-crds'])];
      assert.ok(one.length > 1000);
      assert.equal(one, two, `helm template ${sets.join(' ')} twice`);
    }
  });

  test('certManager.enabled: a Certificate from a self-signed CA (or the operator’s issuer), the cainjector annotation, the agents trusting the Secret’s ca.crt', async () => {
    const yaml = await template([...REQUIRED, 'certManager.enabled=true']);
    const objects = objectsOf(yaml);
    const certificate = find(objects, 'Certificate', `${FULLNAME}-webhook`);
    assert.equal(certificate.spec.secretName, `${FULLNAME}-webhook-tls`);
    assert.deepEqual(certificate.spec.dnsNames, [`${FULLNAME}-server.${NAMESPACE}.svc`, `${FULLNAME}-server`, `${FULLNAME}-server.${NAMESPACE}`, 'localhost']);
    assert.deepEqual(certificate.spec.ipAddresses, ['127.0.0.1', '::1'], 'a port-forward reaches the console and the API on loopback');
    assert.deepEqual(certificate.spec.issuerRef, { kind: 'Issuer', name: `${FULLNAME}-webhook-ca` });
    assert.equal(find(objects, 'Certificate', `${FULLNAME}-webhook-ca`).spec.isCA, true);
    assert.ok(find(objects, 'Issuer', `${FULLNAME}-selfsigned`).spec.selfSigned);
    const hook = find(objects, 'MutatingWebhookConfiguration');
    assert.equal(hook.metadata.annotations['cert-manager.io/inject-ca-from'], `${NAMESPACE}/${FULLNAME}-webhook`);
    assert.equal(hook.webhooks[0].clientConfig.caBundle, undefined);
    assert.equal(find(objects, 'Secret', `${FULLNAME}-webhook-tls`), undefined, 'cert-manager makes the Secret');
    assert.equal(find(objects, 'ConfigMap', `${FULLNAME}-ca`), undefined);
    const spec = find(objects, 'DaemonSet', `${FULLNAME}-agent`).spec.template.spec;
    assert.deepEqual(spec.volumes, [{ name: 'server-ca', secret: { secretName: `${FULLNAME}-webhook-tls`, items: [{ key: 'ca.crt', path: 'ca.crt' }] } }]);
    const config = parseServerConfig(objectsOf(find(objects, 'Secret', `${FULLNAME}-config`).stringData['config.yaml'] as string)[0]);
    assert.equal(config.webhook.certFile, '/etc/pod-identity/webhook-tls/tls.crt', 'the mounted Secret, reloaded when cert-manager renews it');
    assert.equal(config.webhook.certificateSecret, undefined);
    const role = find(objects, 'Role', `${FULLNAME}-server`);
    assert.ok(!(role.rules as Loose[]).some((r) => r.resources.includes('secrets')), 'no Secret access when cert-manager keeps the certificate');
    const noNamespacedRules = objectsOf(await template([...REQUIRED, 'certManager.enabled=true', 'server.syncCrds=false']));
    assert.equal(find(noNamespacedRules, 'Role'), undefined, 'no Role without a namespaced verb to grant');
    assert.equal(find(noNamespacedRules, 'RoleBinding'), undefined);
    // without cert-manager's CRDs here, the rest is what the API server can check
    const rest = objectsOf(yaml).filter((o) => !o.apiVersion.startsWith('cert-manager.io/'));
    const restYaml = rest.map((o) => JSON.stringify(o)).join('\n---\n');
    assertAllAccepted(restYaml, await dryRun(restYaml));

    const own = objectsOf(await template([...REQUIRED, 'certManager.enabled=true', 'certManager.issuerRef.kind=ClusterIssuer', 'certManager.issuerRef.name=corp-ca']));
    assert.deepEqual(find(own, 'Certificate', `${FULLNAME}-webhook`).spec.issuerRef, { kind: 'ClusterIssuer', name: 'corp-ca' });
    assert.equal(find(own, 'Issuer'), undefined);
    assert.match(await templateFails([...REQUIRED, 'certManager.enabled=true', 'webhook.certificate.mode=secret', 'webhook.certificate.caBundle=x']), /choose one way to get the certificate/);
  });

  test('values.schema.json: a bad value or an unknown key fails `helm template` naming the key', async () => {
    // a string where a port goes
    assert.match(await templateFails([...REQUIRED, 'agent.port=eighty']), /\/agent\/port'?: got string, want integer/);
    // a misspelt key (replicas) is refused, not ignored
    assert.match(await templateFails([...REQUIRED, 'server.replica=3']), /\/server'?: additional properties 'replica' not allowed/);
    assert.match(await templateFails([...REQUIRED, 'server.logLevel=loud']), /\/server\/logLevel/);
    assert.match(await templateFails([...REQUIRED, 'accountId=12345']), /\/accountId/);
    assert.match(await templateFails([...REQUIRED, 'unknownTopLevel=1']), /additional properties 'unknownTopLevel' not allowed/);
  });

  test('NOTES.txt: after install, the next steps name this release’s objects and warn about risky choices', async () => {
    const install = async (sets: string[]) =>
      (await runKubeTool('helm', kube, ['install', RELEASE, CHART, '--namespace', NAMESPACE, '--dry-run=server', ...sets.flatMap((s) => ['--set', s])])).stdout;
    const notes = (out: string) => out.slice(out.indexOf('NOTES:'));
    const plain = notes(await install(REQUIRED));
    assert.match(plain, new RegExp(`rollout status deployment/${FULLNAME}-server`));
    assert.match(plain, new RegExp(`port-forward svc/${FULLNAME}-server 8080`));
    assert.match(plain, /--endpoint-url https:\/\/127\.0\.0\.1:8080 --region us-east-1 \\\n\s+--cluster-name my-cluster/);
    assert.match(plain, new RegExp(`get configmap ${FULLNAME}-ca`));
    assert.match(plain, /server\.admins is empty/);
    assert.doesNotMatch(plain, /WARNING/);
    const risky = notes(await install([...REQUIRED, 'server.tls.enabled=false', 'server.issuer.type=local', 'server.admins[0].accessKeyId=AKIAADMINNOTES', 'server.admins[0].secretAccessKey=s']));
    assert.match(risky, /WARNING: server\.tls\.enabled=false/);
    assert.match(risky, /WARNING: server\.issuer\.type=local/);
    assert.doesNotMatch(risky, /server\.admins is empty|AKIAADMINNOTES/);
    const fromSecret = notes(await install([...REQUIRED, 'server.existingSecret.name=pi-keys', 'server.existingSecret.adminsKey=admins']));
    assert.doesNotMatch(fromSecret, /server\.admins is empty/, 'admin keys from the operator’s Secret count');
  });

  test('required values are named when missing', async () => {
    assert.match(await templateFails([]), /server\.nodeKey\.accessKeyId is required/);
  });

  test('replicas > 1 without databaseUrl fails with the chart’s message; with PostgreSQL it renders a budget and is accepted', async () => {
    assert.match(await templateFails([...REQUIRED, 'server.replicas=2']), /server\.replicas > 1 needs server\.databaseUrl or server\.existingSecret\.databaseUrlKey \(PostgreSQL\); SQLite serves one replica/);

    const yaml = await template([...REQUIRED, 'server.replicas=3', 'server.databaseUrl=postgres://pod-identity:pw@db:5432/pod_identity']);
    const objects = objectsOf(yaml);
    const budget = find(objects, 'PodDisruptionBudget', `${FULLNAME}-server`);
    assert.equal(budget.spec.minAvailable, 1);
    assert.equal(find(objects, 'PersistentVolumeClaim'), undefined, 'PostgreSQL holds the data');
    const deployment = find(objects, 'Deployment', `${FULLNAME}-server`);
    assert.equal(deployment.spec.replicas, 3);
    assert.equal(deployment.spec.strategy, undefined, 'rolling updates with several replicas');
    assertAllAccepted(yaml, await dryRun(yaml));
  });

  test('webhook.certificate.mode=secret: an existing Secret and the CA given as PEM, accepted; without caBundle it fails', async () => {
    assert.match(await templateFails([...REQUIRED, 'webhook.certificate.mode=secret']), /webhook\.certificate\.caBundle is required when mode is secret/);
    assert.match(await templateFails([...REQUIRED, 'webhook.certificate.mode=manual']), /\/webhook\/certificate\/mode/);

    const ca = await createCertificateAuthority(dir, 'webhook-ca');
    const yaml = (
      await runKubeTool('helm', kube, [
        'template', RELEASE, CHART, '--namespace', NAMESPACE,
        ...REQUIRED.flatMap((s) => ['--set', s]),
        '--set', 'webhook.certificate.mode=secret',
        '--set', 'webhook.certificate.secretName=pod-identity-webhook-cert',
        '--set-file', `webhook.certificate.caBundle=${ca.certPath}`,
      ]) // prettier-ignore
    ).stdout;
    const objects = objectsOf(yaml);
    assert.equal(
      objects.find((o) => o.kind === 'Secret' && (o as Loose).type === 'kubernetes.io/tls'),
      undefined,
      'the chart makes no certificate in secret mode',
    );
    const deployment = find(objects, 'Deployment', `${FULLNAME}-server`);
    const tlsVolume = (deployment.spec.template.spec.volumes as Loose[]).find((v) => v.name === 'webhook-tls');
    assert.equal(tlsVolume.secret.secretName, 'pod-identity-webhook-cert');
    const hook = find(objects, 'MutatingWebhookConfiguration').webhooks[0];
    assert.equal(Buffer.from(hook.clientConfig.caBundle as string, 'base64').toString().trim(), ca.certPem.trim());
    assertAllAccepted(yaml, await dryRun(yaml));

    // the same CA given as base64 (as in a caBundle field) is used as is
    const base64 = Buffer.from(ca.certPem).toString('base64');
    const again = objectsOf(await template([...REQUIRED, 'webhook.certificate.mode=secret', `webhook.certificate.caBundle=${base64}`]));
    assert.equal(find(again, 'MutatingWebhookConfiguration').webhooks[0].clientConfig.caBundle, base64);
  });

  test('existingSecret: admin keys, the node key and the database URL come from the operator’s Secrets by secretKeyRef, never from values', async () => {
    const sets = [
      'server.existingSecret.name=pi-keys',
      'server.existingSecret.adminsKey=admins',
      'server.existingSecret.databaseUrlKey=databaseUrl',
      'server.nodeKey.existingSecret=pi-node-key',
      'server.replicas=2',
    ];
    const yaml = await template(sets);
    const objects = objectsOf(yaml);
    assert.equal(find(objects, 'Secret', `${FULLNAME}-node-credentials`), undefined, 'no node key Secret of the chart');
    assert.equal(find(objects, 'PersistentVolumeClaim'), undefined, 'PostgreSQL from the Secret holds the data');
    const configYaml = find(objects, 'Secret', `${FULLNAME}-config`).stringData['config.yaml'] as string;
    assert.doesNotMatch(configYaml, /admins|nodes|databaseUrl/);

    const [agent] = find(objects, 'DaemonSet', `${FULLNAME}-agent`).spec.template.spec.containers as Loose[];
    assert.deepEqual(agent.envFrom, [{ secretRef: { name: 'pi-node-key' } }]);
    const [server] = find(objects, 'Deployment', `${FULLNAME}-server`).spec.template.spec.containers as Loose[];
    const env = server.env as { name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string } } }[];
    assert.deepEqual(
      env.filter((e) => e.valueFrom?.secretKeyRef).map((e) => [e.name, e.valueFrom!.secretKeyRef!.name, e.valueFrom!.secretKeyRef!.key]),
      [
        ['POD_IDENTITY_ADMINS', 'pi-keys', 'admins'],
        ['POD_IDENTITY_DATABASE_URL', 'pi-keys', 'databaseUrl'],
        ['NODE_KEY_ACCESS_KEY_ID', 'pi-node-key', 'AWS_ACCESS_KEY_ID'],
        ['NODE_KEY_SECRET_ACCESS_KEY', 'pi-node-key', 'AWS_SECRET_ACCESS_KEY'],
      ],
    );
    assertAllAccepted(yaml, await dryRun(yaml));

    // What the server process then reads: the Secrets' values in those variables, $(VAR) expanded as the kubelet does
    const secrets: Record<string, Record<string, string>> = {
      'pi-keys': { admins: '[{accessKeyId: AKIAADMINSECRET, secretAccessKey: admin/secret+1}]', databaseUrl: 'postgres://pi:pw@db:5432/pi' },
      'pi-node-key': { AWS_ACCESS_KEY_ID: 'AKIANODESECRET', AWS_SECRET_ACCESS_KEY: 'node/secret+2=' },
    };
    const processEnv: Record<string, string> = {};
    for (const e of env) {
      const ref = e.valueFrom?.secretKeyRef;
      if (ref) processEnv[e.name] = secrets[ref.name]![ref.key]!;
      else if (e.value !== undefined) processEnv[e.name] = e.value.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (whole, name: string) => processEnv[name] ?? whole);
    }
    const file = join(dir, 'existing-secret-config.yaml');
    writeFileSync(file, configYaml);
    const config = loadServerConfig({ file, env: processEnv });
    assert.deepEqual(config.admins, [{ accessKeyId: 'AKIAADMINSECRET', secretAccessKey: 'admin/secret+1' }]);
    assert.deepEqual(config.nodes, [{ accessKeyId: 'AKIANODESECRET', secretAccessKey: 'node/secret+2=', clusters: ['my-cluster'] }]);
    assert.equal(config.databaseUrl, 'postgres://pi:pw@db:5432/pi');

    // one way each, and a key needs its Secret
    assert.match(await templateFails(['server.existingSecret.adminsKey=admins', 'server.nodeKey.existingSecret=pi-node-key']), /server\.existingSecret\.name is required/);
    assert.match(await templateFails([...REQUIRED, 'server.nodeKey.existingSecret=pi-node-key']), /give the node key one way/);
    assert.match(
      await templateFails(['server.nodeKey.existingSecret=pi-node-key', 'server.existingSecret.name=pi-keys', 'server.existingSecret.adminsKey=admins', 'server.admins[0].accessKeyId=A', 'server.admins[0].secretAccessKey=B']),
      /give the admin keys one way/,
    );
  });

  test('scheduling and process knobs of both workloads land where Kubernetes reads them, and are accepted', async () => {
    const yaml = await template([
      ...REQUIRED,
      ...['server', 'agent'].flatMap((w) => [
        `${w}.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].key=pool`,
        `${w}.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].operator=Exists`,
        `${w}.tolerations[0].key=dedicated`,
        `${w}.tolerations[0].operator=Exists`,
        `${w}.nodeSelector.pool=${w}s`,
        `${w}.podAnnotations.team=identity`,
        `${w}.podLabels.cost-center=${w}`,
        `${w}.priorityClassName=${w}-priority`,
        `${w}.extraArgs[0]=--log-level=debug`,
        `${w}.resources.requests.cpu=300m`,
      ]),
      'agent.logLevel=warn',
      'agent.updateStrategy.type=OnDelete',
      'server.logLevel=debug',
      'server.topologySpreadConstraints[0].maxSkew=1',
      'server.topologySpreadConstraints[0].topologyKey=topology.kubernetes.io/zone',
      'server.topologySpreadConstraints[0].whenUnsatisfiable=ScheduleAnyway',
      'server.databaseUrl=postgres://pi:pw@db/pi',
      'server.updateStrategy.type=RollingUpdate',
      'server.updateStrategy.rollingUpdate.maxSurge=0',
      'monitoring.grafanaDashboard.enabled=true',
    ]);
    const objects = objectsOf(yaml);
    const deployment = find(objects, 'Deployment', `${FULLNAME}-server`);
    const daemonSet = find(objects, 'DaemonSet', `${FULLNAME}-agent`);
    for (const [name, workload] of [['server', deployment], ['agent', daemonSet]] as const) {
      const pod = workload.spec.template;
      assert.equal(pod.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].key, 'pool', name);
      assert.deepEqual(pod.spec.tolerations, [{ key: 'dedicated', operator: 'Exists' }], name);
      assert.equal(pod.spec.nodeSelector.pool, `${name}s`);
      assert.equal(pod.metadata.annotations.team, 'identity');
      assert.equal(pod.metadata.labels['cost-center'], name);
      assert.equal(pod.metadata.labels['app.kubernetes.io/component'], name, 'the selector labels stay');
      assert.equal(pod.spec.priorityClassName, `${name}-priority`);
      const [container] = pod.spec.containers as Loose[];
      assert.equal(container.args.at(-1), '--log-level=debug', `${name} extraArgs last`);
      assert.equal(container.resources.requests.cpu, '300m');
    }
    const [agent] = daemonSet.spec.template.spec.containers as Loose[];
    assert.ok(agent.args.includes('--log-level=warn'));
    assert.deepEqual(daemonSet.spec.updateStrategy, { type: 'OnDelete' });
    assert.deepEqual(deployment.spec.strategy, { type: 'RollingUpdate', rollingUpdate: { maxSurge: 0 } });
    assert.deepEqual(deployment.spec.template.spec.topologySpreadConstraints, [
      { maxSkew: 1, topologyKey: 'topology.kubernetes.io/zone', whenUnsatisfiable: 'ScheduleAnyway', labelSelector: { matchLabels: { 'app.kubernetes.io/instance': RELEASE, 'app.kubernetes.io/component': 'server' } } },
    ]);
    const [server] = deployment.spec.template.spec.containers as Loose[];
    assert.deepEqual(server.startupProbe, { httpGet: { path: '/healthz', port: 'metrics' }, periodSeconds: 2, failureThreshold: 60 });
    assert.match(find(objects, 'Secret', `${FULLNAME}-config`).stringData['config.yaml'] as string, /^logLevel: debug$/m);
    // the agents' metrics behind a headless Service
    const metrics = find(objects, 'Service', `${FULLNAME}-agent-metrics`);
    assert.equal(metrics.spec.clusterIP, 'None');
    assert.deepEqual(metrics.spec.ports, [{ name: 'metrics', port: 2705, targetPort: 'metrics' }]);
    assert.deepEqual(metrics.spec.selector, daemonSet.spec.selector.matchLabels);
    // the dashboard, as Grafana's sidecar finds it
    const dashboard = find(objects, 'ConfigMap', `${FULLNAME}-dashboard`);
    assert.equal(dashboard.metadata.labels.grafana_dashboard, '1');
    assert.deepEqual(JSON.parse(dashboard.data['pod-identity.json'] as string), JSON.parse(readFileSync(join(CHART, 'monitoring/dashboard.json'), 'utf8')));
    assertAllAccepted(yaml, await dryRun(yaml));

    assert.match(await templateFails([...REQUIRED, 'server.updateStrategy.type=RollingUpdate']), /server\.updateStrategy RollingUpdate needs PostgreSQL/);
    assert.match(await templateFails([...REQUIRED, 'agent.updateStrategy.type=Recreate']), /\/agent\/updateStrategy\/type/);
  });

  test('monitoring.serviceMonitor.enabled: one ServiceMonitor over the server’s Service and the agents’ metrics Service', async () => {
    const objects = objectsOf(await template([...REQUIRED, 'monitoring.serviceMonitor.enabled=true', 'monitoring.serviceMonitor.labels.release=prometheus']));
    const monitor = find(objects, 'ServiceMonitor', FULLNAME);
    assert.equal(monitor.metadata.labels.release, 'prometheus');
    assert.deepEqual(monitor.spec.endpoints, [{ port: 'metrics', path: '/metrics', interval: '30s', scrapeTimeout: '10s' }]);
    // what the selector picks: the two Services whose port is named metrics
    const selected = objects.filter(
      (o) =>
        o.kind === 'Service' &&
        (o as Loose).metadata.labels['app.kubernetes.io/instance'] === RELEASE &&
        (monitor.spec.selector.matchExpressions[0].values as string[]).includes((o as Loose).metadata.labels['app.kubernetes.io/component']),
    );
    assert.deepEqual(selected.map((o) => o.metadata.name).sort(), [`${FULLNAME}-agent-metrics`, `${FULLNAME}-server`]);
    for (const service of selected) assert.ok(((service as Loose).spec.ports as Loose[]).some((p) => p.name === 'metrics'), service.metadata.name);
    assert.equal(find(objectsOf(await template(REQUIRED)), 'ServiceMonitor'), undefined, 'off by default');
  });

  test('agent.enabled=false renders no DaemonSet and is accepted', async () => {
    const yaml = await template([...REQUIRED, 'agent.enabled=false']);
    assert.equal(find(objectsOf(yaml), 'DaemonSet'), undefined);
    assertAllAccepted(yaml, await dryRun(yaml));
  });

  test('what the server writes into its certificate Secret, CA ConfigMap and caBundle survives `helm upgrade` and a GitOps apply of the same chart', async () => {
    const [release, namespace, fullname] = ['gitops', 'gitops', 'gitops-pod-identity'];
    await createNamespace(kube, namespace);
    const sets = (extra: string[]) => [...REQUIRED, ...extra].flatMap((s) => ['--set', s]);
    await runKubeTool('helm', kube, ['install', release, CHART, '--namespace', namespace, '--skip-crds', ...sets([])]);
    // the server's own check, as at its first start (src/webhook/certificate-secret.ts)
    const connection = connectKube(kube.kubeconfigPath);
    const dataDir = mkdtempSync(join(dir, 'server-data-'));
    const hosts = [`${fullname}-server.${namespace}.svc`];
    try {
      await certificateSecretSync(connection, { namespace, secretName: `${fullname}-webhook-tls`, caConfigMap: `${fullname}-ca`, webhookConfiguration: fullname }, dataDir, hosts)(Date.now());
    } finally {
      await connection.close();
    }
    const state = async () => {
      const get = async (...args: string[]) => JSON.parse((await runKubeTool('kubectl', kube, ['get', ...args, '-o', 'json'])).stdout) as Loose;
      const [secret, map, hook] = [await get('secret', `${fullname}-webhook-tls`, '-n', namespace), await get('configmap', `${fullname}-ca`, '-n', namespace), await get('mutatingwebhookconfiguration', fullname)];
      return { secret: secret.data as Record<string, string>, ca: map.data?.['ca.crt'] as string, caBundle: hook.webhooks[0].clientConfig.caBundle as string, timeout: hook.webhooks[0].timeoutSeconds as number };
    };
    const written = await state();
    assert.deepEqual(Object.keys(written.secret).sort(), ['ca.crt', 'ca.key', 'tls.crt', 'tls.key']);
    assert.equal(Buffer.from(written.caBundle, 'base64').toString(), written.ca);

    // an upgrade that changes the webhook configuration itself
    await runKubeTool('helm', kube, ['upgrade', release, CHART, '--namespace', namespace, ...sets(['webhook.timeoutSeconds=7'])]);
    assert.deepEqual(await state(), { ...written, timeout: 7 }, 'helm upgrade kept the certificate, the CA and the caBundle');
    // a GitOps tool applying the rendered chart (server-side apply, taking the fields it renders)
    const rendered = (await runKubeTool('helm', kube, ['template', release, CHART, '--namespace', namespace, ...sets(['webhook.timeoutSeconds=5'])])).stdout;
    await runKubeTool('kubectl', kube, ['apply', '--server-side', '--force-conflicts', '--field-manager=gitops', '-f', '-'], { input: rendered });
    assert.deepEqual(await state(), { ...written, timeout: 5 }, 'an apply of the same chart kept them too');
    await runKubeTool('helm', kube, ['uninstall', release, '--namespace', namespace]);
  });

  /** `kubectl auth can-i … --as` the server's service account; exits 1 on "no", so the answer is read, not the exit code */
  const canI = (...args: string[]) =>
    new Promise<string>((resolveAnswer) => {
      const serviceAccount = `system:serviceaccount:${NAMESPACE}:${FULLNAME}-server`;
      execFile(kubeBinary('kubectl'), ['--kubeconfig', kube.kubeconfigPath, 'auth', 'can-i', ...args, '--as', serviceAccount], { timeout: 30_000 }, (_error, stdout) => resolveAnswer(stdout.trim()));
    });
  const assertCan = async (allowed: string[][], refused: string[][]) => {
    for (const args of allowed) assert.equal(await canI(...args), 'yes', `can-i ${args.join(' ')}`);
    for (const args of refused) assert.equal(await canI(...args), 'no', `can-i ${args.join(' ')}`);
  };

  test('installed for real, the server’s service account may do exactly what the server does', async () => {
    const yaml = await template(REQUIRED, ['--include-crds']);
    await runKubeTool('kubectl', kube, ['apply', '--server-side', '-f', '-'], { input: yaml });
    // the CRD must be served before its resources can be asked about
    await runKubeTool('kubectl', kube, ['wait', '--for=condition=Established', '--timeout=30s', 'crd/podidentityassociations.podidentity.dev']);
    await assertCan(
      [
        ['create', 'tokenreviews.authentication.k8s.io'], // TokenReview mode (src/auth/verifier.ts)
        ['get', 'serviceaccounts', '--all-namespaces'], // the webhook's token-expiration and STS annotations (src/webhook/service-accounts.ts)
        ['list', 'podidentityassociations.podidentity.dev', '--all-namespaces'], // syncCrds: the informer (src/kube/crd/reconciler.ts)
        ['watch', 'podidentityassociations.podidentity.dev', '--all-namespaces'],
        ['patch', 'podidentityassociations.podidentity.dev', '--subresource=status', '--all-namespaces'],
        ['get', 'leases.coordination.k8s.io', '-n', NAMESPACE], // the reconciler's leader election (src/kube/leader-election.ts)
        ['create', 'leases.coordination.k8s.io', '-n', NAMESPACE],
        ['update', 'leases.coordination.k8s.io', '-n', NAMESPACE],
        // the certificate the server keeps, by name only (src/webhook/certificate-secret.ts)
        ['get', `secret/${FULLNAME}-webhook-tls`, '-n', NAMESPACE],
        ['update', `secret/${FULLNAME}-webhook-tls`, '-n', NAMESPACE],
        ['get', `configmap/${FULLNAME}-ca`, '-n', NAMESPACE],
        ['update', `configmap/${FULLNAME}-ca`, '-n', NAMESPACE],
        ['get', `mutatingwebhookconfigurations.admissionregistration.k8s.io/${FULLNAME}`],
        ['update', `mutatingwebhookconfigurations.admissionregistration.k8s.io/${FULLNAME}`],
      ],
      [
        // other Secrets, ConfigMaps and webhook configurations stay out of reach
        ['get', `secret/${FULLNAME}-config`, '-n', NAMESPACE],
        ['list', 'secrets', '-n', NAMESPACE],
        ['update', 'configmap/kube-root-ca.crt', '-n', NAMESPACE],
        ['update', `secret/${FULLNAME}-webhook-tls`, '-n', 'default'],
        ['update', 'mutatingwebhookconfigurations.admissionregistration.k8s.io/someone-else'],
        ['delete', `mutatingwebhookconfigurations.admissionregistration.k8s.io/${FULLNAME}`],
        ['create', 'mutatingwebhookconfigurations.admissionregistration.k8s.io'],
        // dropped: nothing lists or watches pods or service accounts, nothing reads or replaces a status
        ['list', 'pods', '--all-namespaces'],
        ['watch', 'pods', '--all-namespaces'],
        ['list', 'serviceaccounts', '--all-namespaces'],
        ['watch', 'serviceaccounts', '--all-namespaces'],
        ['get', 'podidentityassociations.podidentity.dev', '--subresource=status', '--all-namespaces'],
        ['update', 'podidentityassociations.podidentity.dev', '--subresource=status', '--all-namespaces'],
        // TokenReview mode looks up no pod (the API server's keys are every service account's to read, by Kubernetes' default binding)
        ['get', 'pods', '--all-namespaces'],
        // and nothing else
        ['create', 'pods', '--all-namespaces'],
        ['get', 'secrets', '--all-namespaces'],
        ['create', 'serviceaccounts/token', '--all-namespaces'],
        ['delete', 'podidentityassociations.podidentity.dev', '--all-namespaces'],
        ['delete', 'leases.coordination.k8s.io', '-n', NAMESPACE],
        ['update', 'leases.coordination.k8s.io', '-n', 'kube-system'],
      ],
    );

    // tokenReview=false: the API server's keys and a pod lookup per token instead of TokenReview
    await runKubeTool('kubectl', kube, ['apply', '--server-side', '-f', '-'], { input: await template([...REQUIRED, 'server.tokenReview=false']) });
    await assertCan(
      [
        ['get', '/openid/v1/jwks'], // src/auth/jwks-sources.ts
        ['get', 'pods', '--all-namespaces'], // src/auth/liveness.ts
      ],
      [
        ['create', 'tokenreviews.authentication.k8s.io'],
        ['list', 'pods', '--all-namespaces'],
      ],
    );
  });
});
