import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { LocalIssuer, loadOrCreateLocalIssuerKey, localRoleId } from '../../src/auth/issuers/local.js';
import type { Association } from '../../src/api/eks.js';
import { WireError } from '../../src/lib/errors.js';

const association: Association = {
  clusterName: 'demo',
  namespace: 'ns',
  serviceAccount: 'sa',
  roleArn: 'arn:aws:iam::111122223333:role/app/reader',
  associationId: 'a-abcdefghijklmnopq',
  associationArn: 'arn:aws:eks:us-east-1:000000000000:podidentityassociation/demo/a-abcdefghijklmnopq',
  tags: {},
  createdAt: 0,
  modifiedAt: 0,
  disableSessionTags: false,
};

describe('local issuer', () => {
  const key = Buffer.alloc(32, 7);

  it('mints role-session credentials it can later identify', async () => {
    let clock = 1_700_000_000_000;
    const issuer = new LocalIssuer({ key, durationSeconds: 3600, now: () => clock });
    const issued = await issuer.issue({ association, sessionName: 'eks-demo-pod-1' });
    assert.match(issued.accessKeyId, /^ASIA[A-Z2-7]{16}$/);
    assert.equal(issued.expiration.getTime(), clock + 3_600_000);
    assert.equal(issued.assumedRoleUser.arn, 'arn:aws:sts::111122223333:assumed-role/reader/eks-demo-pod-1');
    assert.equal(issued.assumedRoleUser.assumeRoleId, `${localRoleId(association.roleArn)}:eks-demo-pod-1`);
    assert.doesNotMatch(issued.sessionToken, /[\r\n]/);

    const session = issuer.identify(issued.accessKeyId, issued.sessionToken);
    assert.equal(session.arn, issued.assumedRoleUser.arn);
    assert.equal(session.accountId, '111122223333');
    assert.equal(session.secretAccessKey, issued.secretAccessKey);
    assert.equal(issued.secretAccessKey.length, 40);

    // Another replica with the same key agrees; another key does not.
    assert.equal(new LocalIssuer({ key, durationSeconds: 900, now: () => clock }).identify(issued.accessKeyId, issued.sessionToken).arn, session.arn);
    assert.throws(() => new LocalIssuer({ key: Buffer.alloc(32, 8), durationSeconds: 900 }).identify(issued.accessKeyId, issued.sessionToken), (e: WireError) => e.code === 'UnrecognizedClientException');

    clock += 3_600_000;
    assert.throws(() => issuer.identify(issued.accessKeyId, issued.sessionToken), (e: WireError) => e.code === 'ExpiredTokenException' && e.status === 403);
  });

  it('refuses forged, foreign and missing session tokens', async () => {
    const issuer = new LocalIssuer({ key, durationSeconds: 3600 });
    const a = await issuer.issue({ association, sessionName: 's1' });
    const b = await issuer.issue({ association, sessionName: 's2' });
    const unrecognized = (e: WireError) => e.code === 'UnrecognizedClientException';
    assert.throws(() => issuer.identify(a.accessKeyId, b.sessionToken), unrecognized);
    assert.throws(() => issuer.identify(a.accessKeyId, undefined), unrecognized);
    assert.throws(() => issuer.identify(a.accessKeyId, 'FQoGZXIvYXdzEJr'), unrecognized);
    const [prefix, body, mac] = a.sessionToken.split('.');
    const forged = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(body!, 'base64url').toString()), e: 9_999_999_999 })).toString('base64url');
    assert.throws(() => issuer.identify(a.accessKeyId, `${prefix}.${forged}.${mac}`), unrecognized);
  });

  it('caps chained (targetRoleArn) sessions at one hour and names the target role', async () => {
    const issuer = new LocalIssuer({ key, durationSeconds: 43_200 });
    const issued = await issuer.issue({ association: { ...association, targetRoleArn: 'arn:aws:iam::444455556666:role/target' }, sessionName: 's' });
    assert.ok(issued.expiration.getTime() - Date.now() <= 3_600_000 + 1000);
    assert.equal(issued.assumedRoleUser.arn, 'arn:aws:sts::444455556666:assumed-role/target/s');
  });

  it('creates its key file once (0600) and reads it back', () => {
    const dir = mkdtempSync(join(tmpdir(), 'local-issuer-'));
    try {
      const path = join(dir, 'sub', 'local-issuer.key');
      const first = loadOrCreateLocalIssuerKey(path);
      assert.equal(first.length, 32);
      assert.equal(statSync(path).mode & 0o777, 0o600);
      assert.deepEqual(loadOrCreateLocalIssuerKey(path), first);
      assert.match(readFileSync(path, 'utf8'), /^[0-9a-f]{64}\n$/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
