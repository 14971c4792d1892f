// The pure mutation (DESIGN §3.4): every patch is applied with a JSON Patch
// library (fast-json-patch) and the resulting pod is checked, so what is
// tested is what the API server stores.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import jsonpatch from 'fast-json-patch';
import { parse as parseYaml } from 'yaml';
import type { Association } from '../../src/api/eks.js';
import type { Container, Pod } from '../../src/api/admission.js';
import { mutatePod, tokenExpirationSeconds, type MutationOptions, type MutationResult } from '../../src/webhook/mutate.js';

const ASSOCIATION: Association = {
  clusterName: 'demo',
  namespace: 'shop',
  serviceAccount: 'checkout',
  roleArn: 'arn:aws:iam::111122223333:role/checkout',
  associationId: 'a-abcdefghijklmnopq',
  associationArn: 'arn:aws:eks:us-east-1:111122223333:podidentityassociation/demo/a-abcdefghijklmnopq',
  tags: {},
  createdAt: 0,
  modifiedAt: 0,
  disableSessionTags: false,
};

const URI_V4 = 'http://169.254.170.23/v1/credentials';
const URI_V6 = 'http://[fd00:ec2::23]/v1/credentials';
const TOKEN_FILE = '/var/run/secrets/pods.eks.amazonaws.com/serviceaccount/eks-pod-identity-token';
const WINDOWS_TOKEN_FILE = 'C:\\var\\run\\secrets\\pods.eks.amazonaws.com\\serviceaccount\\eks-pod-identity-token';
const MOUNT = { name: 'eks-pod-identity-token', readOnly: true, mountPath: '/var/run/secrets/pods.eks.amazonaws.com/serviceaccount' };

function volume(expirationSeconds: number) {
  return {
    name: 'eks-pod-identity-token',
    projected: { sources: [{ serviceAccountToken: { audience: 'pods.eks.amazonaws.com', expirationSeconds, path: 'eks-pod-identity-token' } }] },
  };
}

/** Applies the result's patch to a copy of the pod; the input is left untouched. */
function applied(pod: Pod, result: MutationResult): Pod {
  if (!result.mutated) return structuredClone(pod);
  // validate=true makes the library refuse paths that do not exist, as the API server does.
  return jsonpatch.applyPatch(structuredClone(pod), result.patch, true, false).newDocument;
}

/** The default lifetime's jitter picks its top (86400) unless a test asks for randomness. */
const NO_JITTER: MutationOptions = { randomInt: (_min, max) => max };

function mutate(pod: Pod, options: MutationOptions = {}, association: Association | undefined = ASSOCIATION): { result: MutationResult; pod: Pod } {
  options = { ...NO_JITTER, ...options };
  const before = structuredClone(pod);
  const result = mutatePod(pod, association, options);
  assert.deepEqual(pod, before, 'mutatePod must not change its input');
  const after = applied(pod, result);
  // Reinvocation (reinvocationPolicy IfNeeded) sees our own output: nothing more to do.
  if (result.mutated) assert.deepEqual(mutatePod(after, association, options), { mutated: false, reason: 'already-injected' });
  return { result, pod: after };
}

function envOf(container: Container | undefined): Record<string, unknown> {
  return Object.fromEntries((container?.env ?? []).map((e) => [e.name, e.value]));
}

function basePod(): Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'app', namespace: 'shop' },
    spec: { serviceAccountName: 'checkout', containers: [{ name: 'app', image: 'app' }] },
  };
}

test('golden fixtures: the stored pod is exactly the expected one', () => {
  const dir = join(import.meta.dirname, '..', 'fixtures', 'webhook');
  const fixtures = readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .map((file) => ({ file, ...(parseYaml(readFileSync(join(dir, file), 'utf8')) as { options?: MutationOptions & { random?: number }; association?: boolean; pod?: Pod; expected?: Pod }) }))
    .filter((f) => f.pod !== undefined);
  assert.ok(fixtures.length >= 10, `${fixtures.length} pod fixtures`);
  for (const { file, options = {}, association, pod, expected } of fixtures) {
    const { random, ...rest } = options;
    const { pod: out } = mutate(pod!, { ...rest, ...(random !== undefined && { randomInt: () => random }) }, association ? ASSOCIATION : undefined);
    assert.deepEqual(out, expected, file);
  }
});

test('plain pod: label, volume, both variables and the read-only mount', () => {
  const { result, pod } = mutate(basePod());
  assert.ok(result.mutated);
  assert.deepEqual(pod.metadata?.labels, { 'eks.amazonaws.com/pod-identity': 'enabled' });
  assert.deepEqual(pod.spec?.volumes, [volume(86400)]);
  const [app] = pod.spec!.containers!;
  assert.deepEqual(app!.env, [
    { name: 'AWS_CONTAINER_CREDENTIALS_FULL_URI', value: URI_V4 },
    { name: 'AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE', value: TOKEN_FILE },
  ]);
  assert.deepEqual(app!.volumeMounts, [MOUNT]);
});

test('a pod with no env, no volumes, no labels, no annotations at all', () => {
  const pod: Pod = { metadata: {}, spec: { serviceAccountName: 'default', containers: [{ name: 'a' }, { name: 'b', env: null, volumeMounts: null }] } };
  const { pod: out } = mutate(pod);
  assert.equal(out.metadata?.labels?.['eks.amazonaws.com/pod-identity'], 'enabled');
  assert.equal(out.spec?.volumes?.length, 1);
  for (const c of out.spec!.containers!) {
    assert.equal(envOf(c).AWS_CONTAINER_CREDENTIALS_FULL_URI, URI_V4);
    assert.deepEqual(c.volumeMounts, [MOUNT]);
  }
});

test('existing labels and env are kept; ours are appended', () => {
  const pod = basePod();
  pod.metadata!.labels = { app: 'shop', 'eks.amazonaws.com/pod-identity': 'disabled' };
  pod.spec!.containers![0]!.env = [{ name: 'A', value: '1' }, { name: 'B', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } }];
  const { pod: out } = mutate(pod);
  assert.deepEqual(out.metadata?.labels, { app: 'shop', 'eks.amazonaws.com/pod-identity': 'enabled' });
  assert.deepEqual(
    out.spec!.containers![0]!.env!.map((e) => e.name),
    ['A', 'B', 'AWS_CONTAINER_CREDENTIALS_FULL_URI', 'AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE'],
  );
  assert.deepEqual(out.spec!.containers![0]!.env![1], { name: 'B', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } });
});

test('either credential variable already set: that container gets neither, but still the mount', () => {
  for (const name of ['AWS_CONTAINER_CREDENTIALS_FULL_URI', 'AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE']) {
    const pod = basePod();
    pod.spec!.containers!.push({ name: 'own', image: 'x', env: [{ name, value: 'mine' }] });
    const { pod: out } = mutate(pod);
    const own = out.spec!.containers![1]!;
    assert.deepEqual(own.env, [{ name, value: 'mine' }], name);
    assert.deepEqual(own.volumeMounts, [MOUNT]);
    assert.equal(envOf(out.spec!.containers![0]).AWS_CONTAINER_CREDENTIALS_FULL_URI, URI_V4);
  }
});

test('same-named volume and mount are kept as they are', () => {
  const pod = basePod();
  pod.spec!.volumes = [{ name: 'eks-pod-identity-token', emptyDir: {} }];
  pod.spec!.containers![0]!.volumeMounts = [{ name: 'eks-pod-identity-token', mountPath: '/mine' }];
  const { pod: out } = mutate(pod);
  assert.deepEqual(out.spec!.volumes, [{ name: 'eks-pod-identity-token', emptyDir: {} }]);
  assert.deepEqual(out.spec!.containers![0]!.volumeMounts, [{ name: 'eks-pod-identity-token', mountPath: '/mine' }]);
  assert.equal(envOf(out.spec!.containers![0]).AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE, TOKEN_FILE);
});

test('our volume goes first in an existing list, as EKS puts it', () => {
  const pod = basePod();
  pod.spec!.volumes = [{ name: 'data', emptyDir: {} }];
  const { pod: out } = mutate(pod);
  assert.deepEqual(out.spec!.volumes!.map((v) => v.name), ['eks-pod-identity-token', 'data']);
});

test('initContainers and native sidecars are injected; the sidecar keeps restartPolicy', () => {
  const pod = basePod();
  pod.spec!.initContainers = [
    { name: 'init', image: 'x' },
    { name: 'sidecar', image: 'y', restartPolicy: 'Always', ports: [{ containerPort: 9000 }] },
  ];
  const { pod: out } = mutate(pod);
  const [init, sidecar] = out.spec!.initContainers!;
  assert.equal(envOf(init).AWS_CONTAINER_CREDENTIALS_FULL_URI, URI_V4);
  assert.equal(envOf(sidecar).AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE, TOKEN_FILE);
  assert.equal(sidecar!.restartPolicy, 'Always');
  assert.deepEqual(sidecar!.ports, [{ containerPort: 9000 }]);
  assert.deepEqual(sidecar!.volumeMounts, [MOUNT]);
});

test('ephemeral containers are never touched', () => {
  const pod = basePod();
  pod.spec!.ephemeralContainers = [{ name: 'debug', image: 'busybox' }];
  const { pod: out } = mutate(pod);
  assert.deepEqual(out.spec!.ephemeralContainers, [{ name: 'debug', image: 'busybox' }]);
});

test('skip-containers: listed containers (and initContainers) are left alone', () => {
  const pod = basePod();
  pod.metadata!.annotations = { 'eks.amazonaws.com/skip-containers': 'proxy,init-proxy , ' };
  pod.spec!.containers!.push({ name: 'proxy', image: 'envoy' });
  pod.spec!.initContainers = [{ name: 'init-proxy', image: 'envoy' }];
  const { pod: out } = mutate(pod);
  assert.deepEqual(out.spec!.containers![1], { name: 'proxy', image: 'envoy' });
  assert.deepEqual(out.spec!.initContainers![0], { name: 'init-proxy', image: 'envoy' });
  assert.equal(envOf(out.spec!.containers![0]).AWS_CONTAINER_CREDENTIALS_FULL_URI, URI_V4);
  // The pod still gets its volume and label: the other containers use them.
  assert.equal(out.metadata?.labels?.['eks.amazonaws.com/pod-identity'], 'enabled');
});

test('the skip label leaves the pod alone, whatever its value', () => {
  for (const value of ['true', 'false', '']) {
    const pod = basePod();
    pod.metadata!.labels = { 'eks.amazonaws.com/skip-pod-identity-webhook': value };
    assert.deepEqual(mutatePod(pod, ASSOCIATION), { mutated: false, reason: 'skip-label' });
  }
});

test('no association: no patch', () => {
  assert.deepEqual(mutatePod(basePod(), undefined), { mutated: false, reason: 'no-association' });
});

test('token expiration: pod annotation over service account annotation over 24 h, floor 600', () => {
  const withAnnotation = (value?: string): Pod => ({ ...basePod(), metadata: { annotations: value === undefined ? {} : { 'eks.amazonaws.com/token-expiration': value } } });
  const cases: [string | undefined, string | undefined, number][] = [
    [undefined, undefined, 86400],
    ['300', undefined, 600], // below the floor
    ['600', undefined, 600],
    ['7200', '3600', 7200], // the pod wins
    [undefined, '3600', 3600],
    [undefined, '60', 600],
    ['soon', '3600', 3600], // unparseable pod value: ignored
    ['1.5', undefined, 86400],
    ['-5', undefined, 600],
    [' 7200', undefined, 86400],
  ];
  for (const [podValue, saValue, expected] of cases) {
    assert.equal(tokenExpirationSeconds(withAnnotation(podValue), saValue), expected, `pod=${podValue} sa=${saValue}`);
  }
  const { pod } = mutate(withAnnotation('120'));
  assert.deepEqual(pod.spec!.volumes, [volume(600)]);
  const { pod: fromSa } = mutate(basePod(), { serviceAccountAnnotations: { 'eks.amazonaws.com/token-expiration': '43200' } });
  assert.deepEqual(fromSa.spec!.volumes, [volume(43200)]);
  // An unparseable pod annotation falls back to the ServiceAccount's, then to the configured default.
  assert.equal(tokenExpirationSeconds(withAnnotation('soon'), undefined, 3600), 3600);
  assert.equal(tokenExpirationSeconds(withAnnotation('soon'), 'later', 3600), 3600);
  assert.equal(tokenExpirationSeconds(withAnnotation(undefined), undefined, 100), 600);
});

test('jitter: the default lifetime becomes a uniform random integer in [79200, 86400]; any other lifetime is exact', () => {
  const jittered = (options: MutationOptions, pod = basePod()) => {
    const result = mutatePod(pod, ASSOCIATION, options);
    assert.ok(result.mutated);
    const volume = applied(pod, result).spec!.volumes![0] as unknown as { projected: { sources: { serviceAccountToken: { expirationSeconds: number } }[] } };
    return volume.projected.sources[0]!.serviceAccountToken.expirationSeconds;
  };
  const seen = Array.from({ length: 200 }, () => jittered({}));
  assert.ok(new Set(seen).size >= 50, `${new Set(seen).size} distinct values`);
  for (const value of seen) assert.ok(Number.isInteger(value) && value >= 79200 && value <= 86400, String(value));
  // Asked for 86400 by an annotation: jittered too, as AWS does (the value decides, not where it came from).
  const annotated = basePod();
  annotated.metadata!.annotations = { 'eks.amazonaws.com/token-expiration': '86400' };
  assert.ok(jittered({}, annotated) <= 86400 && jittered({}, annotated) >= 79200);
  for (let i = 0; i < 20; i++) {
    assert.equal(jittered({ defaultTokenExpirationSeconds: 3600 }), 3600);
    assert.equal(jittered({ serviceAccountAnnotations: { 'eks.amazonaws.com/token-expiration': '86399' } }), 86399);
  }
});

test('regional STS: the setting, unless the ServiceAccount annotation (Go ParseBool words) says otherwise; first in env', () => {
  const names = (options: MutationOptions) => (mutate(basePod(), { region: 'eu-west-1', ...options }).pod.spec!.containers![0]!.env ?? []).map((e) => `${e.name}=${e.value}`);
  const annotated = (value: string): MutationOptions => ({ serviceAccountAnnotations: { 'eks.amazonaws.com/sts-regional-endpoints': value } });
  assert.deepEqual(names({ stsRegionalEndpoints: true }).slice(0, 3), ['AWS_STS_REGIONAL_ENDPOINTS=regional', 'AWS_DEFAULT_REGION=eu-west-1', 'AWS_REGION=eu-west-1']);
  assert.equal(names({}).length, 4);
  for (const word of ['true', 'True', 'TRUE', 't', '1']) assert.equal(names(annotated(word))[0], 'AWS_STS_REGIONAL_ENDPOINTS=regional', word);
  for (const word of ['false', 'F', '0']) assert.ok(!names({ stsRegionalEndpoints: true, ...annotated(word) }).some((n) => n.startsWith('AWS_STS')), word);
  assert.equal(names({ stsRegionalEndpoints: true, ...annotated('yes') })[0], 'AWS_STS_REGIONAL_ENDPOINTS=regional', 'an unknown word leaves the setting');
});

test('a pod without serviceAccountName is left alone', () => {
  const pod = basePod();
  delete pod.spec!.serviceAccountName;
  assert.deepEqual(mutatePod(pod, ASSOCIATION), { mutated: false, reason: 'no-service-account' });
  pod.spec!.serviceAccount = 'checkout'; // the deprecated alias: the API server copies it into serviceAccountName first
  assert.deepEqual(mutatePod(pod, ASSOCIATION), { mutated: false, reason: 'no-service-account' });
});

test('Windows pods get the drive-qualified token path (kubernetes.io/os and beta.kubernetes.io/os)', () => {
  for (const key of ['kubernetes.io/os', 'beta.kubernetes.io/os']) {
    const pod = basePod();
    pod.spec!.nodeSelector = { [key]: 'windows' };
    const { pod: out } = mutate(pod);
    const c = out.spec!.containers![0]!;
    assert.equal(envOf(c).AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE, WINDOWS_TOKEN_FILE, key);
    assert.deepEqual(c.volumeMounts, [MOUNT]); // the mount path stays as Kubernetes writes it
  }
  const linux = basePod();
  linux.spec!.nodeSelector = { 'kubernetes.io/os': 'linux' };
  assert.equal(envOf(mutate(linux).pod.spec!.containers![0]).AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE, TOKEN_FILE);
});

test('IPv6 clusters get the fd00:ec2::23 URI', () => {
  const { pod } = mutate(basePod(), { ipv6: true });
  assert.equal(envOf(pod.spec!.containers![0]).AWS_CONTAINER_CREDENTIALS_FULL_URI, URI_V6);
});

test('region: both variables when configured, none when the container sets either', () => {
  const { pod } = mutate(basePod(), { region: 'eu-west-1' });
  assert.deepEqual(
    pod.spec!.containers![0]!.env!.map((e) => [e.name, e.value]),
    [
      ['AWS_DEFAULT_REGION', 'eu-west-1'],
      ['AWS_REGION', 'eu-west-1'],
      ['AWS_CONTAINER_CREDENTIALS_FULL_URI', URI_V4],
      ['AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE', TOKEN_FILE],
    ],
  );
  for (const name of ['AWS_REGION', 'AWS_DEFAULT_REGION']) {
    const own = basePod();
    own.spec!.containers![0]!.env = [{ name, value: 'ap-south-1' }];
    const env = envOf(mutate(own, { region: 'eu-west-1' }).pod.spec!.containers![0]);
    assert.deepEqual(Object.keys(env).sort(), [name, 'AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE', 'AWS_CONTAINER_CREDENTIALS_FULL_URI'].sort());
    assert.equal(env[name], 'ap-south-1');
  }
  assert.equal(envOf(mutate(basePod()).pod.spec!.containers![0]).AWS_REGION, undefined);
});

test('the label key is escaped as a JSON Pointer segment', () => {
  const pod = basePod();
  pod.metadata!.labels = { app: 'x' };
  const result = mutatePod(pod, ASSOCIATION);
  assert.ok(result.mutated);
  assert.deepEqual(result.patch[0], { op: 'add', path: '/metadata/labels/eks.amazonaws.com~1pod-identity', value: 'enabled' });
});

test('an object without a spec is not a pod', () => {
  assert.deepEqual(mutatePod({ metadata: {} }, ASSOCIATION), { mutated: false, reason: 'not-a-pod' });
});
