// AdmissionReview decode/encode, the webhook registration document and the
// identities file: the pure pieces around the mutation.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { parse as parseYaml, stringify } from 'yaml';
import { parseServerConfig } from '../../src/config/load.js';
import { formatIdentitiesFile, toIdentitiesFile } from '../../src/webhook/identities.js';
import { buildWebhookConfiguration, withCaBundle } from '../../src/webhook/registration.js';
import { decodeReview, encodeAnswer, notForUs, podOf } from '../../src/api/admission.js';
import { webhookCluster } from '../../src/server/setup/webhook.js';
import { SqliteAssociationStore } from '../../src/associations/stores/sqlite.js';
import { silentLogger } from '../../src/lib/logger.js';
import { createDecider, createReviewer } from '../../src/webhook/review.js';
import { newAssociationId, associationArn } from '../../src/associations/service.js';
import { RESOLUTION_CASES } from '../fixtures/associations/resolution.js';

const review = (request: unknown, envelope: Record<string, unknown> = { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' }) =>
  Buffer.from(JSON.stringify({ ...envelope, request }));

test('a well-formed review is decoded and its envelope echoed', () => {
  const decoded = decodeReview(review({ uid: 'u-1', namespace: 'ns', operation: 'CREATE', kind: { kind: 'Pod' }, object: { spec: { containers: [] } } }));
  assert.ok(decoded.ok);
  assert.deepEqual(decoded.envelope, { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', uid: 'u-1' });
  assert.equal(notForUs(decoded.request), undefined);
  assert.ok(podOf(decoded.request));
  // v1beta1 reviews get a v1beta1 answer: the envelope is echoed, not rewritten.
  const beta = decodeReview(review({ uid: 'u-2' }, { apiVersion: 'admission.k8s.io/v1beta1', kind: 'AdmissionReview' }));
  assert.equal(beta.envelope.apiVersion, 'admission.k8s.io/v1beta1');
});

test('malformed reviews are reported, never thrown', () => {
  const cases: [Buffer, RegExp][] = [
    [Buffer.from('{not json'), /not JSON/],
    [Buffer.from('[1,2]'), /not an AdmissionReview/],
    [Buffer.from('null'), /not an AdmissionReview/],
    [review(undefined), /no request/],
    [review({ namespace: 'x' }), /no uid/],
    [Buffer.from(''), /not JSON/],
  ];
  for (const [body, problem] of cases) {
    const decoded = decodeReview(body);
    assert.equal(decoded.ok, false);
    if (!decoded.ok) assert.match(decoded.problem, problem);
    assert.equal(decoded.envelope.apiVersion, 'admission.k8s.io/v1');
    assert.equal(decoded.envelope.kind, 'AdmissionReview');
  }
});

test('only pod CREATEs are for us', () => {
  assert.match(notForUs({ uid: 'x', operation: 'UPDATE', kind: { kind: 'Pod' } }) ?? '', /UPDATE/);
  assert.match(notForUs({ uid: 'x', operation: 'CREATE', kind: { kind: 'Deployment' } }) ?? '', /Deployment/);
  assert.match(notForUs({ uid: 'x', operation: 'CREATE', kind: { kind: 'Pod' }, subResource: 'binding' }) ?? '', /binding/);
  assert.equal(podOf({ uid: 'x', object: { metadata: {} } }), undefined);
  assert.equal(podOf({ uid: 'x', object: 'pod' }), undefined);
});

test('answers always allow; the patch is base64 JSON with patchType JSONPatch', () => {
  const envelope = { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', uid: 'abc' };
  assert.deepEqual(encodeAnswer(envelope), { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: 'abc', allowed: true } });
  const patch = [{ op: 'add' as const, path: '/metadata/labels', value: { a: 'b' } }];
  const answer = encodeAnswer(envelope, patch);
  assert.equal(answer.response.patchType, 'JSONPatch');
  assert.deepEqual(JSON.parse(Buffer.from(answer.response.patch!, 'base64').toString()), patch);
  assert.deepEqual(encodeAnswer(envelope, [], ['careful']).response, { uid: 'abc', allowed: true, warnings: ['careful'] });
});

test('the webhook configuration keeps pods safe', () => {
  const doc = buildWebhookConfiguration({
    name: 'pod-identity-webhook',
    webhookName: 'pod-identity.webhook.pod-identity.io',
    target: { service: { namespace: 'pod-identity', name: 'server', port: 443, path: '/mutate' } },
    caBundlePem: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----',
    timeoutSeconds: 7,
  });
  // Round-trip through YAML as kubectl would read it.
  const parsed = parseYaml(stringify(doc)) as { apiVersion: string; kind: string; webhooks: Record<string, unknown>[] };
  assert.equal(parsed.apiVersion, 'admissionregistration.k8s.io/v1');
  assert.equal(parsed.kind, 'MutatingWebhookConfiguration');
  const [hook] = parsed.webhooks;
  assert.equal(hook!.failurePolicy, 'Ignore');
  assert.equal(hook!.sideEffects, 'None');
  assert.equal(hook!.reinvocationPolicy, 'IfNeeded');
  assert.equal(hook!.timeoutSeconds, 7);
  assert.deepEqual(hook!.admissionReviewVersions, ['v1']);
  assert.deepEqual(hook!.objectSelector, { matchExpressions: [{ key: 'eks.amazonaws.com/skip-pod-identity-webhook', operator: 'DoesNotExist' }] });
  assert.deepEqual(hook!.rules, [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['pods'], scope: 'Namespaced' }]);
  const clientConfig = hook!.clientConfig as { service: unknown; caBundle: string };
  assert.deepEqual(clientConfig.service, { namespace: 'pod-identity', name: 'server', port: 443, path: '/mutate' });
  assert.match(Buffer.from(clientConfig.caBundle, 'base64').toString(), /^-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n$/);

  const byUrl = buildWebhookConfiguration({ name: 'n', webhookName: 'a.b.c', target: { url: 'https://10.0.0.1:9443/mutate' }, caBundlePem: 'x', timeoutSeconds: 10 });
  assert.deepEqual(Object.keys((byUrl.webhooks as { clientConfig: object }[])[0]!.clientConfig).sort(), ['caBundle', 'url']);
});

test('withCaBundle sets every webhook’s caBundle to the CA, keeps the rest, and answers undefined when nothing changes', () => {
  const pem = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
  const configuration = {
    metadata: { name: 'pi', resourceVersion: '7' },
    webhooks: [
      { name: 'a', clientConfig: { service: { namespace: 'ns', name: 's' } } },
      { name: 'b', clientConfig: { url: 'https://x/mutate', caBundle: 'b2xk' } },
    ],
  };
  const updated = withCaBundle(configuration, pem)!;
  assert.equal(updated.metadata.resourceVersion, '7', 'the update carries the version read');
  assert.deepEqual(
    updated.webhooks.map((w) => [w.name, Buffer.from(w.clientConfig.caBundle!, 'base64').toString()]),
    [
      ['a', pem],
      ['b', pem],
    ],
  );
  assert.deepEqual(updated.webhooks[0]!.clientConfig.service, { namespace: 'ns', name: 's' });
  assert.equal(configuration.webhooks[1]!.clientConfig.caBundle, 'b2xk', 'the object read is not changed');
  assert.equal(withCaBundle(updated, pem), undefined);
});

test('identities file: AWS webhook format, one entry per subject, sorted', () => {
  const file = toIdentitiesFile([
    { namespace: 'b', serviceAccount: 'x' },
    { namespace: 'a', serviceAccount: 'z' },
    { namespace: 'a', serviceAccount: 'y' },
    { namespace: 'b', serviceAccount: 'x' },
  ]);
  assert.deepEqual(file, {
    identities: [
      { namespace: 'a', serviceAccount: 'y' },
      { namespace: 'a', serviceAccount: 'z' },
      { namespace: 'b', serviceAccount: 'x' },
    ],
  });
  const text = formatIdentitiesFile(file);
  assert.ok(text.endsWith('\n'));
  assert.deepEqual(JSON.parse(text), file);
  assert.deepEqual(JSON.parse(formatIdentitiesFile(toIdentitiesFile([]))), { identities: [] });
  // AWS's webhook matches names literally: pattern associations are ours alone
  assert.deepEqual(toIdentitiesFile([{ namespace: 'ci', serviceAccount: 'build-*' }, { namespace: '*', serviceAccount: 'x' }, { namespace: 'ci', serviceAccount: 'deploy' }]), {
    identities: [{ namespace: 'ci', serviceAccount: 'deploy' }],
  });
});

test('the webhook serves webhook.clusterName, else the only configured cluster', () => {
  const one = parseServerConfig({ clusters: [{ name: 'demo', jwksFile: 'x' }] });
  assert.equal(webhookCluster(one)?.name, 'demo');
  const two = parseServerConfig({ clusters: [{ name: 'a', jwksFile: 'x' }, { name: 'b', jwksFile: 'x', ipv6: true }] });
  assert.equal(webhookCluster(two), undefined);
  const chosen = parseServerConfig({ clusters: [{ name: 'a', jwksFile: 'x' }, { name: 'b', jwksFile: 'x', ipv6: true }], webhook: { clusterName: 'b' } });
  assert.equal(webhookCluster(chosen)?.ipv6, true);
  assert.throws(() => parseServerConfig({ clusters: [{ name: 'a', jwksFile: 'x' }], webhook: { clusterName: 'zzz' } }), /webhook\.clusterName: "zzz" is not one of the configured clusters/);
  assert.deepEqual(parseServerConfig({}).webhook.certHosts, []);
});

test('golden review fixtures: the answer to a whole review body', async () => {
  const dir = join(import.meta.dirname, '..', 'fixtures', 'webhook');
  const fixtures = readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .map((file) => ({ file, ...(parseYaml(readFileSync(join(dir, file), 'utf8')) as { review?: string; expectedResponse?: unknown }) }))
    .filter((f) => f.review !== undefined);
  assert.ok(fixtures.length >= 1);
  const store = new SqliteAssociationStore(':memory:');
  try {
    const reviewer = createReviewer({ store, clusterName: 'demo', ipv6: false, logger: silentLogger() });
    for (const { file, review: body, expectedResponse } of fixtures) {
      const { answer } = await reviewer(Buffer.from(body!));
      assert.deepEqual(answer.response, expectedResponse, file);
    }
  } finally {
    await store.close();
  }
});


describe('the webhook resolves wildcard associations by the shared table', () => {
  for (const c of RESOLUTION_CASES) {
    test(c.name, async () => {
      const store = new SqliteAssociationStore(':memory:');
      const ids: string[] = [];
      for (const { namespace, serviceAccount } of c.associations) {
        const associationId = newAssociationId();
        ids.push(associationId);
        await store.create({
          clusterName: 'demo',
          namespace,
          serviceAccount,
          roleArn: 'arn:aws:iam::111122223333:role/app',
          associationId,
          associationArn: associationArn('us-east-1', '000000000000', 'demo', associationId),
          tags: {},
          createdAt: 0,
          modifiedAt: 0,
          disableSessionTags: false,
        });
      }
      const decide = createDecider({ store, clusterName: 'demo', ipv6: false, logger: silentLogger() });
      const pod = { metadata: { name: 'p', namespace: c.pod.namespace }, spec: { serviceAccountName: c.pod.serviceAccount, containers: [{ name: 'app', image: 'app' }] } };
      const decision = await decide(pod, c.pod.namespace);
      assert.equal(decision.outcome, c.chosen === null ? 'skipped' : 'mutated');
      assert.equal(decision.association?.associationId, c.chosen === null ? undefined : ids[c.chosen]);
      await store.close();
    });
  }
});
