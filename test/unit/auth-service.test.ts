// EksAuthService end to end without sockets: real store (SQLite in memory),
// real JWKS verification with test keys, the local issuer, the audit log.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { AssociationService } from '../../src/associations/service.js';
import { SqliteAssociationStore } from '../../src/associations/stores/sqlite.js';
import { AuditLog } from '../../src/lib/audit.js';
import type { ChangeContext } from '../../src/associations/audit.js';
import type { DecisionRecord } from '../../src/auth/service.js';
import { createClusterAuth } from '../../src/auth/cluster.js';
import { LocalIssuer } from '../../src/auth/issuers/local.js';
import { AssociationResolver } from '../../src/auth/resolver.js';
import { EksAuthService } from '../../src/auth/service.js';
import { WireError } from '../../src/lib/errors.js';
import { silentLogger } from '../../src/lib/logger.js';
import { parseServerConfig } from '../../src/config/load.js';
import { jwksOf, podClaims, TEST_ISSUER, testSigner, type TestSigner } from '../helpers/sa-tokens.js';
import { RESOLUTION_CASES } from '../fixtures/associations/resolution.js';

const ADMIN_CHANGE: ChangeContext = { actor: { kind: 'access-key', accessKeyId: 'AKIAADMINTEST' } };

describe('EksAuthService', () => {
  let dir: string;
  let store: SqliteAssociationStore;
  let associations: AssociationService;
  let signer: TestSigner;
  let service: EksAuthService;
  let resolver: AssociationResolver;
  let audit: AuditLog;
  const logLines: string[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'eks-auth-service-'));
    signer = await testSigner('RS256');
    writeFileSync(join(dir, 'jwks.json'), JSON.stringify(jwksOf(signer)));
    const config = parseServerConfig({
      clusters: [
        { name: 'demo', issuer: TEST_ISSUER, jwksFile: join(dir, 'jwks.json') },
        { name: 'strict', issuer: TEST_ISSUER, jwksFile: join(dir, 'jwks.json'), requireNodeBinding: true },
      ],
    });
    store = new SqliteAssociationStore(':memory:');
    associations = new AssociationService({ store, region: 'us-east-1', accountId: '000000000000', clusters: () => ['demo', 'strict'] });
    await associations.create('demo', { namespace: 'ns', serviceAccount: 'reader', roleArn: 'arn:aws:iam::111122223333:role/reader' }, ADMIN_CHANGE);
    await associations.create('strict', { namespace: 'ns', serviceAccount: 'reader', roleArn: 'arn:aws:iam::111122223333:role/reader' }, ADMIN_CHANGE);
    const logger = pino({ level: 'info' }, new Writable({ write: (chunk, _enc, done) => (logLines.push(String(chunk)), done()) }));
    const clusters = config.clusters.map((c) => createClusterAuth(c, { region: 'us-east-1', accountId: '000000000000', logger: silentLogger() }));
    resolver = new AssociationResolver({ store });
    audit = new AuditLog(logger, join(dir, 'audit.jsonl'));
    service = new EksAuthService({
      clusters,
      resolver,
      issuer: new LocalIssuer({ key: Buffer.alloc(32, 1), durationSeconds: 3600 }),
      audit,
      throttle: { perServiceAccount: { rate: 0.001, burst: 5 } },
    });
  });

  after(async () => {
    resolver.close();
    await audit.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const caller = { accessKeyId: 'AKIANODE' };
  const code = (c: string) => (e: unknown) => e instanceof WireError && e.code === c;

  it('answers every member of the response for a valid token', async () => {
    const token = await signer.sign(podClaims({ namespace: 'ns', serviceAccount: 'reader', podName: 'reader-abc', podUid: 'uid-1', nodeName: 'node-1' }));
    const out = await service.assumeRole({ clusterName: 'demo', token, eksNodeName: 'node-1', caller, requestId: 'r1' });
    assert.deepEqual(out.subject, { namespace: 'ns', serviceAccount: 'reader' });
    assert.equal(out.audience, 'pods.eks.amazonaws.com');
    assert.match(out.podIdentityAssociation.associationId, /^a-[a-z0-9]{17}$/);
    assert.match(out.podIdentityAssociation.associationArn, /^arn:aws:eks:us-east-1:000000000000:podidentityassociation\/demo\/a-/);
    assert.match(out.assumedRoleUser.arn, /^arn:aws:sts::111122223333:assumed-role\/reader\/eks-demo-reader-abc-[0-9a-f-]+$/);
    assert.match(out.assumedRoleUser.assumeRoleId, /^AROA[A-Z2-7]{17}:eks-demo-reader-abc-/);
    assert.equal(typeof out.credentials.expiration, 'number');
    assert.ok(Math.abs(out.credentials.expiration - (Date.now() / 1000 + 3600)) < 5);
  });

  it('refuses unknown clusters, scoped keys, missing associations, node mismatch and unbound nodes', async () => {
    const token = await signer.sign(podClaims({ namespace: 'ns', serviceAccount: 'reader', nodeName: 'node-1' }));
    await assert.rejects(service.assumeRole({ clusterName: 'nope', token, caller, requestId: 'r' }), code('ResourceNotFoundException'));
    await assert.rejects(service.assumeRole({ clusterName: 'demo', token, caller: { accessKeyId: 'k', clusters: ['other'] }, requestId: 'r' }), code('AccessDeniedException'));
    await assert.rejects(service.assumeRole({ clusterName: 'demo', token, eksNodeName: 'node-2', caller, requestId: 'r' }), code('AccessDeniedException'));
    await assert.rejects(service.assumeRole({ clusterName: 'strict', token, caller, requestId: 'r' }), code('InvalidRequestException'));
    const other = await signer.sign(podClaims({ namespace: 'ns', serviceAccount: 'writer' }));
    await assert.rejects(service.assumeRole({ clusterName: 'demo', token: other, caller, requestId: 'r' }), (e: WireError) => e.code === 'ResourceNotFoundException' && /writer/.test(e.message) && /ns/.test(e.message));
  });

  it('sees a deleted association at once (store change feed)', async () => {
    const created = await associations.create('demo', { namespace: 'ns', serviceAccount: 'temp', roleArn: 'arn:aws:iam::111122223333:role/temp' }, ADMIN_CHANGE);
    const token = await signer.sign(podClaims({ namespace: 'ns', serviceAccount: 'temp' }));
    await service.assumeRole({ clusterName: 'demo', token, caller, requestId: 'r' });
    await associations.delete('demo', created.associationId, ADMIN_CHANGE);
    await assert.rejects(service.assumeRole({ clusterName: 'demo', token, caller, requestId: 'r' }), code('ResourceNotFoundException'));
  });

  it('throttles per service account', async () => {
    await associations.create('demo', { namespace: 'ns', serviceAccount: 'busy', roleArn: 'arn:aws:iam::111122223333:role/busy' }, ADMIN_CHANGE);
    const token = await signer.sign(podClaims({ namespace: 'ns', serviceAccount: 'busy' }));
    for (let i = 0; i < 5; i++) await service.assumeRole({ clusterName: 'demo', token, caller, requestId: 'r' });
    await assert.rejects(service.assumeRole({ clusterName: 'demo', token, caller, requestId: 'r' }), code('ThrottlingException'));
  });

  it('throttles per cluster before verifying anything', async () => {
    const throttled = new EksAuthService({
      clusters: [createClusterAuth(parseServerConfig({ clusters: [{ name: 'demo', jwksFile: join(dir, 'jwks.json') }] }).clusters[0]!, { region: 'us-east-1', accountId: '000000000000', logger: silentLogger() })],
      resolver,
      issuer: new LocalIssuer({ key: Buffer.alloc(32, 1), durationSeconds: 3600 }),
      audit,
      throttle: { perCluster: { rate: 0.001, burst: 2 } },
    });
    const token = await signer.sign(podClaims({ namespace: 'ns', serviceAccount: 'reader' }));
    await throttled.assumeRole({ clusterName: 'demo', token, caller, requestId: 'r' });
    await assert.rejects(throttled.assumeRole({ clusterName: 'demo', token: 'not-even-a-jwt', caller, requestId: 'r' }), code('InvalidTokenException'));
    await assert.rejects(throttled.assumeRole({ clusterName: 'demo', token: 'not-even-a-jwt', caller, requestId: 'r' }), code('ThrottlingException'));
  });

  it('audits every decision, to the log and the JSONL file, without tokens or secrets', async () => {
    const token = await signer.sign(podClaims({ namespace: 'ns', serviceAccount: 'reader', podName: 'audited-pod', podUid: 'uid-audit', nodeName: 'node-9' }));
    const out = await service.assumeRole({ clusterName: 'demo', token, caller, requestId: 'audit-ok' });
    await assert.rejects(service.assumeRole({ clusterName: 'demo', token: `${token.slice(0, -4)}AAAA`, caller, requestId: 'audit-bad' }));
    await new Promise((r) => setTimeout(r, 50));
    const fromLog = logLines.map((l) => JSON.parse(l) as { audit?: DecisionRecord }).flatMap((l) => (l.audit ? [l.audit] : []));
    const fromFile = readFileSync(join(dir, 'audit.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as DecisionRecord);
    assert.deepEqual(fromFile, fromLog);
    const ok = fromFile.find((r) => r.requestId === 'audit-ok')!;
    assert.equal(ok.outcome, 'allowed');
    assert.equal(ok.cluster, 'demo');
    assert.equal(ok.namespace, 'ns');
    assert.equal(ok.serviceAccount, 'reader');
    assert.equal(ok.podName, 'audited-pod');
    assert.equal(ok.podUid, 'uid-audit');
    assert.equal(ok.node, 'node-9');
    assert.equal(ok.associationId, out.podIdentityAssociation.associationId);
    assert.equal(ok.roleArn, 'arn:aws:iam::111122223333:role/reader');
    assert.equal(typeof ok.latencyMs, 'number');
    const bad = fromFile.find((r) => r.requestId === 'audit-bad')!;
    assert.equal(bad.outcome, 'denied');
    assert.equal(bad.errorType, 'InvalidTokenException');
    const everything = logLines.join('') + readFileSync(join(dir, 'audit.jsonl'), 'utf8');
    for (const secret of [token, token.split('.')[2]!, out.credentials.secretAccessKey, out.credentials.sessionToken]) assert.ok(!everything.includes(secret));
  });
});

describe('EKS Auth resolves wildcard associations by the shared table', () => {
  let dir: string;
  let signer: TestSigner;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'eks-auth-wildcards-'));
    signer = await testSigner('RS256');
    writeFileSync(join(dir, 'jwks.json'), JSON.stringify(jwksOf(signer)));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** a fresh store with these associations, and EKS Auth over it (local issuer, audit records kept) */
  async function eksAuthWith(list: { namespace: string; serviceAccount: string }[]) {
    const store = new SqliteAssociationStore(':memory:');
    const associations = new AssociationService({ store, region: 'us-east-1', accountId: '000000000000', clusters: () => ['demo'] });
    const made = [];
    for (const a of list) made.push(await associations.create('demo', { ...a, roleArn: 'arn:aws:iam::111122223333:role/app' }, ADMIN_CHANGE));
    const config = parseServerConfig({ clusters: [{ name: 'demo', issuer: TEST_ISSUER, jwksFile: join(dir, 'jwks.json') }] });
    const clusters = config.clusters.map((c) => createClusterAuth(c, { region: 'us-east-1', accountId: '000000000000', logger: silentLogger() }));
    const resolver = new AssociationResolver({ store });
    const records: DecisionRecord[] = [];
    const audit = { record: (record: DecisionRecord) => records.push(record) } as unknown as AuditLog;
    const service = new EksAuthService({ clusters, resolver, issuer: new LocalIssuer({ key: Buffer.alloc(32, 1), durationSeconds: 3600 }), audit });
    return { store, associations, made, service, records, close: async () => (resolver.close(), await store.close()) };
  }

  for (const c of RESOLUTION_CASES) {
    it(c.name, async () => {
      const { made, service, records, close } = await eksAuthWith(c.associations);
      const token = await signer.sign(podClaims(c.pod));
      const answer = service.assumeRole({ clusterName: 'demo', token, caller: { accessKeyId: 'AKIANODE' }, requestId: 'r' });
      if (c.chosen === null) {
        await assert.rejects(answer, (e: WireError) => e.code === 'ResourceNotFoundException');
        assert.equal(records[0]!.reason, 'no_association');
      } else {
        const chosen = made[c.chosen]!;
        assert.equal((await answer).podIdentityAssociation.associationId, chosen.associationId);
        // the audit record says which association matched, pattern and all
        assert.deepEqual([records[0]!.associationId, records[0]!.associationNamespace, records[0]!.associationServiceAccount], [chosen.associationId, chosen.namespace, chosen.serviceAccount]);
      }
      await close();
    });
  }

  it('a pattern created, or an exact association deleted, changes a cached answer at once', async () => {
    const { associations, service, close } = await eksAuthWith([{ namespace: 'ci', serviceAccount: '*' }]);
    const token = await signer.sign(podClaims({ namespace: 'ci', serviceAccount: 'build-1' }));
    const ask = async () => (await service.assumeRole({ clusterName: 'demo', token, caller: { accessKeyId: 'AKIANODE' }, requestId: 'r' })).podIdentityAssociation.associationId;
    const wide = await ask();
    const builds = await associations.create('demo', { namespace: 'ci', serviceAccount: 'build-*', roleArn: 'arn:aws:iam::111122223333:role/app' }, ADMIN_CHANGE);
    assert.equal(await ask(), builds.associationId);
    const exact = await associations.create('demo', { namespace: 'ci', serviceAccount: 'build-1', roleArn: 'arn:aws:iam::111122223333:role/app' }, ADMIN_CHANGE);
    assert.equal(await ask(), exact.associationId);
    await associations.delete('demo', exact.associationId, ADMIN_CHANGE);
    await associations.delete('demo', builds.associationId, ADMIN_CHANGE);
    assert.equal(await ask(), wide);
    await close();
  });
});
