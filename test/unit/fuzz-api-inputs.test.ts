// Property-based tests (fast-check, fixed seed) of the parsers of what
// callers send the association API (bodies and query strings of create,
// update, list, tag and untag, and pagination tokens) and the admission
// webhook (AdmissionReview bodies). None may throw anything but the
// operation's 400 WireError, and what they accept must satisfy EKS's rules,
// checked here against the rules as EKS states them (tags: 1-50, key 1-128,
// value 0-256, letters, digits, spaces and _ . : / = + - @, no aws: prefix).
// A review always gets `allowed: true`, and its patch applies to the pod.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import jsonpatch from 'fast-json-patch';
import { createInput, listInput, parseJsonBody, tagResourceInput, untagResourceInput, updateInput, validate } from '../../src/api/eks.js';
import { decodePageToken, encodePageToken } from '../../src/associations/service.js';
import { SqliteAssociationStore } from '../../src/associations/stores/sqlite.js';
import { silentLogger } from '../../src/lib/logger.js';
import { createReviewer } from '../../src/webhook/review.js';
import { fuzzRuns, thrownCode } from '../helpers/fuzz.js';

/** EKS's tag rules, written from its documentation rather than from our schema. */
function eksAcceptsTags(tags: Record<string, string>): boolean {
  const allowed = (text: string) => [...text].every((c) => /[\p{L}\p{Z}\p{N}]/u.test(c) || '_.:/=+-@'.includes(c));
  const entries = Object.entries(tags);
  return (
    entries.length >= 1 &&
    entries.length <= 50 &&
    entries.every(([k, v]) => k.length >= 1 && k.length <= 128 && v.length <= 256 && allowed(k) && allowed(v) && !k.toLowerCase().startsWith('aws:'))
  );
}

const tagText = fc.oneof(
  fc.string({ unit: fc.constantFrom(...'abcXYZ09 _.:/=+-@é中'), maxLength: 20 }),
  fc.string({ unit: 'binary', maxLength: 20 }),
  fc.constantFrom('', 'aws:x', 'AWS:y', 'a\u0000b', 'a\nb', '\ud800', 'x'.repeat(129), 'v'.repeat(257), '\u00a0', '٣'),
);
const tags = fc.dictionary(tagText, tagText, { maxKeys: 55 });
const roleArn = fc.oneof(fc.constant('arn:aws:iam::111122223333:role/app'), fc.string());
const dnsish = fc.oneof(fc.constantFrom('default', 'app', 'a.b-c'), fc.string({ maxLength: 70 }));
/** Bodies near the real ones: each member valid, odd or of another type, plus members nobody defined. */
const createLike = fc.record(
  {
    namespace: fc.oneof(dnsish, fc.anything()),
    serviceAccount: fc.oneof(dnsish, fc.anything()),
    roleArn: fc.oneof(roleArn, fc.anything()),
    clientRequestToken: fc.oneof(fc.uuid(), fc.string({ unit: 'binary', maxLength: 70 })),
    tags: fc.oneof(tags, fc.anything()),
    disableSessionTags: fc.oneof(fc.boolean(), fc.anything()),
    targetRoleArn: roleArn,
    policy: fc.oneof(fc.constant('{"Version":"2012-10-17","Statement":[]}'), fc.string()),
    extra: fc.anything(),
  },
  { requiredKeys: [] },
);

const VALID_CREATE = { namespace: 'default', serviceAccount: 'app', roleArn: 'arn:aws:iam::111122223333:role/app' };
/** A valid create body with a few members replaced by odd values (or added), or removed. */
const CREATE_MEMBERS = ['namespace', 'serviceAccount', 'roleArn', 'clientRequestToken', 'tags', 'disableSessionTags', 'targetRoleArn', 'policy', 'extra'];
const createBodies = fc.tuple(createLike, fc.subarray(CREATE_MEMBERS, { maxLength: 3 }), fc.subarray(Object.keys(VALID_CREATE), { maxLength: 1 })).map(([changes, changed, removed]) => {
  const body: Record<string, unknown> = { ...VALID_CREATE };
  for (const key of changed) if (key in changes) body[key] = (changes as Record<string, unknown>)[key];
  for (const key of removed) delete body[key];
  return body;
});

describe('fuzz: association API inputs', () => {
  it('JSON bodies: parsed, or InvalidRequestException', () => {
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)), fc.jsonValue().map((v) => Buffer.from(JSON.stringify(v)))), (body) => {
        try {
          parseJsonBody(body);
        } catch (error) {
          assert.equal(thrownCode(error), 'InvalidRequestException');
        }
      }),
      fuzzRuns(2000),
    );
  });

  it('create and update bodies: valid input by EKS rules, or InvalidParameterException', () => {
    let accepted = 0;
    fc.assert(
      fc.property(fc.oneof(createBodies, fc.anything()), (body) => {
        for (const schema of [createInput, updateInput]) {
          let input;
          try {
            input = validate(schema, body);
          } catch (error) {
            assert.equal(thrownCode(error), 'InvalidParameterException');
            continue;
          }
          const value = input as { namespace?: string; serviceAccount?: string; tags?: Record<string, string>; roleArn?: string };
          if (schema === createInput) {
            accepted++;
            assert.match(value.namespace!, /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
            assert.ok(value.namespace!.length <= 63);
            assert.match(value.serviceAccount!, /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/);
          }
          if (value.tags !== undefined) assert.ok(eksAcceptsTags(value.tags), `accepted tags EKS refuses: ${JSON.stringify(value.tags)}`);
          if (value.roleArn !== undefined) assert.match(value.roleArn, /^arn:aws[a-z-]*:iam::\d{12}:role\//);
        }
      }),
      fuzzRuns(3000),
    );
    assert.ok(accepted > 20, `some creates were valid (${accepted})`);
  });

  it('TagResource bodies: exactly the tags EKS accepts, else BadRequestException; no NUL, line break or lone surrogate gets in', () => {
    let accepted = 0;
    fc.assert(
      fc.property(tags, (candidate) => {
        let valid = true;
        try {
          validate(tagResourceInput, { tags: candidate }, 'BadRequestException');
        } catch (error) {
          assert.equal(thrownCode(error), 'BadRequestException');
          valid = false;
        }
        assert.equal(valid, eksAcceptsTags(candidate), JSON.stringify(candidate));
        if (valid) {
          accepted++;
          for (const text of Object.entries(candidate).flat()) assert.doesNotMatch(text, /[\0\r\n]|\p{Cs}/u);
        }
      }),
      fuzzRuns(3000),
    );
    assert.ok(accepted > 50, `some tag sets were valid (${accepted})`);
  });

  it('query strings of List and UntagResource, and nextToken: valid input, or the operation’s 400', () => {
    const query = fc.oneof(
      fc.string({ unit: 'binary', maxLength: 120 }),
      fc.webQueryParameters(),
      fc.tuple(fc.constantFrom('maxResults', 'namespace', 'serviceAccount', 'nextToken', 'tagKeys'), fc.string({ maxLength: 30 })).map(([k, v]) => `${k}=${encodeURIComponent(v)}`),
    );
    fc.assert(
      fc.property(fc.array(query, { maxLength: 4 }).map((parts) => new URLSearchParams(parts.join('&'))), (params) => {
        try {
          const list = validate(listInput, Object.fromEntries(params));
          assert.ok(Number.isInteger(list.maxResults) && list.maxResults >= 1 && list.maxResults <= 100);
          if (list.nextToken !== undefined) {
            try {
              decodePageToken(list.nextToken, { namespace: list.namespace, serviceAccount: list.serviceAccount });
            } catch (error) {
              assert.equal(thrownCode(error), 'InvalidParameterException');
            }
          }
        } catch (error) {
          assert.equal(thrownCode(error), 'InvalidParameterException');
        }
        try {
          const { tagKeys } = validate(untagResourceInput, { tagKeys: params.getAll('tagKeys') }, 'BadRequestException');
          assert.ok(tagKeys.length >= 1 && tagKeys.length <= 50 && tagKeys.every((k) => k.length >= 1 && k.length <= 128));
        } catch (error) {
          assert.equal(thrownCode(error), 'BadRequestException');
        }
      }),
      fuzzRuns(2000),
    );
  });

  it('nextToken: only a token we made for the same filters decodes', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: 'binary', maxLength: 80 }), fc.jsonValue().map((v) => Buffer.from(JSON.stringify(v)).toString('base64url'))), (text) => {
        try {
          const token = decodePageToken(text, {});
          assert.match(token.a, /^a-[a-z0-9]{17}$/);
        } catch (error) {
          assert.equal(thrownCode(error), 'InvalidParameterException');
        }
      }),
      fuzzRuns(2000),
    );
    assert.equal(decodePageToken(encodePageToken({ a: 'a-0123456789abcdefg' }), {}).a, 'a-0123456789abcdefg');
  });
});

describe('fuzz: AdmissionReview bodies', () => {
  it('every body gets allowed: true with its uid echoed, and a patch that applies to the pod', async () => {
    const store = new SqliteAssociationStore(':memory:');
    await store.create({
      clusterName: 'demo',
      namespace: 'default',
      serviceAccount: 'app',
      roleArn: 'arn:aws:iam::111122223333:role/app',
      associationId: 'a-0123456789abcdefg',
      associationArn: 'arn:aws:eks:us-east-1:000000000000:podidentityassociation/demo/a-0123456789abcdefg',
      tags: {},
      createdAt: 0,
      modifiedAt: 0,
      disableSessionTags: false,
    });
    const review = createReviewer({ store, clusterName: 'demo', ipv6: false, region: 'us-east-1', logger: silentLogger() });
    const container = fc.record(
      { name: fc.oneof(fc.string(), fc.anything()), env: fc.oneof(fc.array(fc.record({ name: fc.constantFrom('AWS_REGION', 'AWS_CONTAINER_CREDENTIALS_FULL_URI', 'X'), value: fc.string() })), fc.anything()), volumeMounts: fc.anything() },
      { requiredKeys: ['name'] },
    );
    const pod = fc.record(
      {
        metadata: fc.oneof({ arbitrary: fc.record({ name: fc.string(), namespace: fc.constant('default'), annotations: fc.oneof(fc.dictionary(fc.constantFrom('eks.amazonaws.com/token-expiration', 'eks.amazonaws.com/skip-containers', 'x'), fc.string()), fc.anything()), labels: fc.anything() }, { requiredKeys: [] }), weight: 4 }, fc.anything()),
        spec: fc.oneof(
          {
            arbitrary: fc.record(
            {
              serviceAccountName: fc.oneof({ arbitrary: fc.constant('app'), weight: 4 }, fc.anything()),
              containers: fc.oneof({ arbitrary: fc.array(container, { maxLength: 3 }), weight: 4 }, fc.anything()),
              initContainers: fc.oneof(fc.array(container, { maxLength: 2 }), fc.anything()),
              volumes: fc.oneof(fc.array(fc.record({ name: fc.string() }), { maxLength: 2 }), fc.anything()),
              nodeSelector: fc.anything(),
            },
            { requiredKeys: ['serviceAccountName'] },
            ),
            weight: 4,
          },
          fc.anything(),
        ),
      },
      { requiredKeys: ['spec'] },
    );
    const body = fc.oneof(
      fc.uint8Array({ maxLength: 100 }).map((b) => Buffer.from(b)),
      fc.anything().map((v) => Buffer.from(JSON.stringify(v) ?? 'null')),
      {
        arbitrary: fc
          .record(
            {
              uid: fc.oneof({ arbitrary: fc.uuid(), weight: 4 }, fc.anything()),
              namespace: fc.constant('default'),
              operation: fc.constantFrom('CREATE', 'CREATE', 'UPDATE', undefined),
              kind: fc.oneof({ arbitrary: fc.constant({ kind: 'Pod' }), weight: 4 }, fc.anything()),
              object: fc.oneof({ arbitrary: pod, weight: 4 }, fc.anything()),
            },
            { requiredKeys: ['uid', 'object'] },
          )
          .map((request) => Buffer.from(JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request }))),
        weight: 6,
      },
    );
    let patched = 0;
    await fc.assert(
      fc.asyncProperty(body, async (raw) => {
        const { answer } = await review(raw);
        assert.equal(answer.response.allowed, true);
        let sent: { request?: { uid?: unknown; object?: unknown } } | undefined;
        try {
          sent = JSON.parse(raw.toString('utf8')) as typeof sent;
        } catch {
          sent = undefined;
        }
        const uid = sent?.request?.uid;
        assert.equal(answer.response.uid, typeof uid === 'string' ? uid : '');
        if (answer.response.patch) {
          patched++;
          const operations = JSON.parse(Buffer.from(answer.response.patch, 'base64').toString('utf8'));
          // the API server applies it to the pod it sent: it must apply cleanly
          jsonpatch.applyPatch(structuredClone(sent!.request!.object), operations, true, false);
        }
      }),
      fuzzRuns(1500),
    );
    await store.close();
    assert.ok(patched > 20, `some pods were mutated (${patched})`);
  });
});
