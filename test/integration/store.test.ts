// One contract suite for every association store: the embedded SQLite store
// and the PostgreSQL store (against a real, throwaway PostgreSQL server).
// PostgreSQL-only behaviour — the change feed seen by other replicas, feed
// reconnection, concurrent migrations — follows the shared suite.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { associationArn, newAssociationId } from '../../src/associations/service.js';
import { SubjectTakenError, type AssociationStore, type StoreChange } from '../../src/associations/store.js';
import { PostgresAssociationStore, redactDatabaseUrl } from '../../src/associations/stores/postgres/store.js';
import { SqliteAssociationStore } from '../../src/associations/stores/sqlite.js';
import type { Association } from '../../src/api/eks.js';
import { postgresSkip, startPostgres, type PostgresPeer } from '../peers/postgres.js';
import { findAssociation } from '../../src/associations/resolve.js';
import { RESOLUTION_CASES } from '../fixtures/associations/resolution.js';

const ROLE = 'arn:aws:iam::111122223333:role/app';

function association(overrides: Partial<Association> & { clusterName?: string; namespace?: string; serviceAccount?: string } = {}): Association {
  const clusterName = overrides.clusterName ?? 'demo';
  const associationId = overrides.associationId ?? newAssociationId();
  const now = Date.now();
  return {
    clusterName,
    namespace: 'default',
    serviceAccount: `sa-${associationId.slice(2, 10)}`,
    roleArn: ROLE,
    associationId,
    associationArn: associationArn('us-east-1', '000000000000', clusterName, associationId),
    tags: {},
    createdAt: now,
    modifiedAt: now,
    disableSessionTags: false,
    ...overrides,
  };
}

/** Collects changes; `next()` waits for the next one (bounded). */
function changeRecorder(store: AssociationStore) {
  const changes: StoreChange[] = [];
  const waiters: (() => void)[] = [];
  const unsubscribe = store.onChange((change) => {
    changes.push(change);
    waiters.splice(0).forEach((w) => w());
  });
  return {
    changes,
    unsubscribe,
    async waitFor(predicate: (changes: StoreChange[]) => boolean, timeoutMs = 1000): Promise<number> {
      const started = Date.now();
      while (!predicate(changes)) {
        const left = timeoutMs - (Date.now() - started);
        if (left <= 0) assert.fail(`change not seen within ${timeoutMs} ms; got ${JSON.stringify(changes.map((c) => [c.kind, c.association.associationId]))}`);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, left);
          waiters.push(() => {
            clearTimeout(timer);
            resolve();
          });
        });
      }
      return Date.now() - started;
    },
  };
}

interface Backend {
  name: string;
  /** `skip` option: why this backend cannot run here, or false */
  skip(): string | false;
  setup(): Promise<void>;
  /** a fresh, empty store */
  open(): Promise<AssociationStore>;
  teardown(): Promise<void>;
}

const tmpDirs: string[] = [];
const sqlite: Backend = {
  name: 'SqliteAssociationStore',
  skip: () => false,
  async setup() {},
  async open() {
    const dir = mkdtempSync(join(tmpdir(), 'store-contract-'));
    tmpDirs.push(dir);
    return new SqliteAssociationStore(join(dir, 'associations.db'));
  },
  async teardown() {
    for (const dir of tmpDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  },
};

let peer: PostgresPeer | undefined;
const postgres: Backend = {
  name: 'PostgresAssociationStore',
  skip: postgresSkip,
  async setup() {
    peer = await startPostgres();
  },
  async open() {
    return PostgresAssociationStore.open(await peer!.createDatabase());
  },
  async teardown() {
    await peer?.stop();
  },
};

for (const backend of [sqlite, postgres]) {
  describe(`association store contract: ${backend.name}`, { skip: backend.skip() }, () => {
    const open: AssociationStore[] = [];
    const fresh = async () => {
      const store = await backend.open();
      open.push(store);
      return store;
    };
    before(() => backend.setup());
    after(async () => {
      for (const store of open) await store.close();
      await backend.teardown();
    });

    test('create answers the association and get reads it back field for field', async () => {
      const store = await fresh();
      const full = association({
        tags: { team: 'a', empty: '' },
        ownerArn: 'arn:aws:eks:us-east-1:000000000000:addon/demo/x/y',
        disableSessionTags: true,
        targetRoleArn: 'arn:aws:iam::444455556666:role/target',
        externalId: '0b1c6b2e-0000-4000-8000-000000000000',
        policy: '{"Version":"2012-10-17","Statement":[]}',
      });
      const bare = association();
      assert.deepEqual(await store.create(full), { created: true, association: full });
      assert.deepEqual(await store.create(bare), { created: true, association: bare });
      assert.deepEqual(await store.get('demo', full.associationId), full);
      const readBare = await store.get('demo', bare.associationId);
      assert.deepEqual(readBare, bare);
      for (const key of ['ownerArn', 'targetRoleArn', 'externalId', 'policy']) assert.ok(!(key in readBare!), `${key} absent, not undefined`);
      assert.equal(await store.get('demo', newAssociationId()), undefined);
      assert.equal(await store.get('other', full.associationId), undefined, 'ids are scoped to their cluster');
    });

    test('one association per (cluster, namespace, serviceAccount)', async () => {
      const store = await fresh();
      const first = association({ namespace: 'team-a', serviceAccount: 'app' });
      await store.create(first);
      await assert.rejects(store.create(association({ namespace: 'team-a', serviceAccount: 'app' })), (error: unknown) => {
        assert.ok(error instanceof SubjectTakenError);
        assert.deepEqual(
          { clusterName: error.existing.clusterName, namespace: error.existing.namespace, serviceAccount: error.existing.serviceAccount },
          { clusterName: 'demo', namespace: 'team-a', serviceAccount: 'app' },
        );
        return true;
      });
      await store.create(association({ namespace: 'team-a', serviceAccount: 'app2' }));
      await store.create(association({ namespace: 'team-b', serviceAccount: 'app' }));
      await store.create(association({ clusterName: 'other', namespace: 'team-a', serviceAccount: 'app' }));
      // Concurrent creates of one subject: exactly one wins.
      const racers = await Promise.allSettled(Array.from({ length: 8 }, () => store.create(association({ namespace: 'race', serviceAccount: 'app' }))));
      assert.equal(racers.filter((r) => r.status === 'fulfilled').length, 1);
      assert.ok(racers.every((r) => r.status === 'fulfilled' || r.reason instanceof SubjectTakenError));
      assert.equal((await store.list('demo', { limit: 100 })).length, 4);
    });

    test('request tokens make a create idempotent, within the same transaction', async () => {
      const store = await fresh();
      const first = association({ namespace: 'idem', serviceAccount: 'app' });
      const token = { token: 'token-1', fingerprint: 'fp-1' };
      assert.deepEqual(await store.create(first, token), { created: true, association: first });
      // A retry with the same token (new id, any fingerprint) answers the record, inserts nothing.
      assert.deepEqual(await store.create(association({ namespace: 'idem', serviceAccount: 'app' }), token), {
        created: false,
        record: { fingerprint: 'fp-1', associationId: first.associationId },
      });
      assert.deepEqual(await store.create(association({ namespace: 'idem', serviceAccount: 'other' }), { token: 'token-1', fingerprint: 'fp-2' }), {
        created: false,
        record: { fingerprint: 'fp-1', associationId: first.associationId },
      });
      // Tokens are per cluster.
      const elsewhere = association({ clusterName: 'other', namespace: 'idem', serviceAccount: 'app' });
      assert.equal((await store.create(elsewhere, token)).created, true);
      // A create that fails on the subject records no token: the token is free for a later attempt.
      await assert.rejects(store.create(association({ namespace: 'idem', serviceAccount: 'app' }), { token: 'token-2', fingerprint: 'fp-3' }), SubjectTakenError);
      await store.delete('demo', first.associationId);
      const second = association({ namespace: 'idem', serviceAccount: 'app' });
      assert.deepEqual(await store.create(second, { token: 'token-2', fingerprint: 'fp-3' }), { created: true, association: second });
      // Concurrent retries of one token: one create, the others see its record.
      const results = await Promise.all(
        Array.from({ length: 8 }, (_, i) => store.create(association({ namespace: 'idem-race', serviceAccount: `sa-${i}` }), { token: 'token-3', fingerprint: 'fp-4' })),
      );
      const created = results.filter((r) => r.created);
      assert.equal(created.length, 1);
      const winner = created[0]!.created ? created[0]!.association.associationId : '';
      for (const r of results) if (!r.created) assert.deepEqual(r.record, { fingerprint: 'fp-4', associationId: winner });
      assert.equal((await store.list('demo', { namespace: 'idem-race', limit: 100 })).length, 1);
    });

    test('findBySubject is exact on all three parts', async () => {
      const store = await fresh();
      const a = association({ namespace: 'ns1', serviceAccount: 'sa1' });
      await store.create(a);
      await store.create(association({ clusterName: 'other', namespace: 'ns1', serviceAccount: 'sa1', roleArn: 'arn:aws:iam::111122223333:role/other' }));
      assert.deepEqual(await store.findBySubject({ clusterName: 'demo', namespace: 'ns1', serviceAccount: 'sa1' }), a);
      assert.equal(await store.findBySubject({ clusterName: 'demo', namespace: 'ns1', serviceAccount: 'sa2' }), undefined);
      assert.equal(await store.findBySubject({ clusterName: 'demo', namespace: 'ns2', serviceAccount: 'sa1' }), undefined);
      assert.equal(await store.findBySubject({ clusterName: 'nope', namespace: 'ns1', serviceAccount: 'sa1' }), undefined);
      assert.equal((await store.findBySubject({ clusterName: 'other', namespace: 'ns1', serviceAccount: 'sa1' }))!.roleArn, 'arn:aws:iam::111122223333:role/other');
    });

    test('the extension fields (session tags, session name template, non-transitive tags) survive create, update and the change feed', async () => {
      const store = await fresh();
      const recorder = changeRecorder(store);
      const made = association({ namespace: 'ci', serviceAccount: 'build-*', sessionTags: { team: '{{pod.labels.team}}', cost: 'ci' }, sessionNameTemplate: 'ci-{pod}-{random}', transitiveSessionTags: false });
      await store.create(made);
      assert.deepEqual(await store.get('demo', made.associationId), made);
      const cleared = await store.update('demo', made.associationId, { sessionTags: undefined, sessionNameTemplate: undefined, transitiveSessionTags: true, modifiedAt: made.modifiedAt + 1 });
      for (const key of ['sessionTags', 'sessionNameTemplate', 'transitiveSessionTags']) assert.ok(!(key in cleared!), `${key} cleared to absent`);
      assert.deepEqual(await store.get('demo', made.associationId), cleared);
      await recorder.waitFor((changes) => changes.length >= 2);
      assert.deepEqual(recorder.changes[0]!.association, made);
      assert.deepEqual(recorder.changes[1]!.association, cleared);
      recorder.unsubscribe();
    });

    test('a pattern is stored literally: the same pattern twice is taken, and findBySubject does not expand it', async () => {
      const store = await fresh();
      await store.create(association({ namespace: 'ci', serviceAccount: 'build-*' }));
      await assert.rejects(store.create(association({ namespace: 'ci', serviceAccount: 'build-*' })), SubjectTakenError);
      assert.equal(await store.findBySubject({ clusterName: 'demo', namespace: 'ci', serviceAccount: 'build-1' }), undefined);
      assert.ok(await store.findBySubject({ clusterName: 'demo', namespace: 'ci', serviceAccount: 'build-*' }));
    });

    for (const c of RESOLUTION_CASES) {
      test(`findCandidates and the resolver: ${c.name}`, async () => {
        const store = await fresh();
        const made = c.associations.map((a) => association(a));
        for (const a of made) await store.create(a);
        // another cluster's associations never count
        await store.create(association({ clusterName: 'other', namespace: c.pod.namespace, serviceAccount: c.pod.serviceAccount }));
        const found = await findAssociation(store, { clusterName: 'demo', ...c.pod });
        assert.equal(found?.associationId, c.chosen === null ? undefined : made[c.chosen]!.associationId);
      });
    }

    test('list filters by namespace and service account, ordered by id, paged by cursor', async () => {
      const store = await fresh();
      const made: Association[] = [];
      for (let i = 0; i < 30; i++) {
        const a = association({ namespace: `ns-${i % 3}`, serviceAccount: `sa-${i % 5}-${i}` });
        made.push(a);
        await store.create(a);
      }
      await store.create(association({ clusterName: 'other', namespace: 'ns-0', serviceAccount: 'x' }));
      const byId = (x: Association, y: Association) => (x.associationId < y.associationId ? -1 : 1);
      const all = [...made].sort(byId);
      assert.deepEqual(await store.list('demo', { limit: 100 }), all);
      assert.deepEqual(await store.list('demo', { limit: 7 }), all.slice(0, 7));
      // Walk pages with the cursor.
      const walked: Association[] = [];
      let afterId: string | undefined;
      for (;;) {
        const page = await store.list('demo', { limit: 4, afterId });
        walked.push(...page);
        if (page.length < 4) break;
        afterId = page[page.length - 1]!.associationId;
      }
      assert.deepEqual(walked, all);
      assert.deepEqual(await store.list('demo', { namespace: 'ns-1', limit: 100 }), all.filter((a) => a.namespace === 'ns-1'));
      const one = made[7]!;
      assert.deepEqual(await store.list('demo', { serviceAccount: one.serviceAccount, limit: 100 }), [one]);
      assert.deepEqual(await store.list('demo', { namespace: one.namespace, serviceAccount: one.serviceAccount, limit: 100 }), [one]);
      assert.deepEqual(await store.list('demo', { namespace: 'ns-2', serviceAccount: one.serviceAccount, limit: 100 }), one.namespace === 'ns-2' ? [one] : []);
      const ns0 = all.filter((a) => a.namespace === 'ns-0');
      assert.deepEqual(await store.list('demo', { namespace: 'ns-0', afterId: ns0[2]!.associationId, limit: 3 }), ns0.slice(3, 6));
      assert.deepEqual(await store.list('nope', { limit: 100 }), []);
    });

    test('listAll covers every cluster in (clusterName, associationId) byte order', async () => {
      const store = await fresh();
      // Mixed case, "-" and "_" sort differently under locale collations; the contract is byte order.
      const clusters = ['a', 'A-b', 'a_b', 'a-b', 'Z', 'z9', 'b'];
      const made: Association[] = [];
      for (const clusterName of clusters) {
        for (let i = 0; i < 4; i++) {
          const a = association({ clusterName, namespace: 'ns', serviceAccount: `sa-${i}` });
          made.push(a);
          await store.create(a);
        }
      }
      const key = (a: Association) => [a.clusterName, a.associationId] as const;
      made.sort((x, y) => {
        const [xc, xi] = key(x);
        const [yc, yi] = key(y);
        return xc < yc ? -1 : xc > yc ? 1 : xi < yi ? -1 : 1;
      });
      assert.deepEqual(await store.listAll(), made);
      const walked: Association[] = [];
      let afterKey: { clusterName: string; associationId: string } | undefined;
      for (;;) {
        const page = await store.listAll(afterKey, 5);
        walked.push(...page);
        if (page.length < 5) break;
        const last = page[page.length - 1]!;
        afterKey = { clusterName: last.clusterName, associationId: last.associationId };
      }
      assert.deepEqual(walked, made);
    });

    test('update changes only the updatable fields; absent and cleared fields behave as documented', async () => {
      const store = await fresh();
      const a = association({ tags: { keep: 'me' } });
      await store.create(a);
      const later = a.modifiedAt + 1500;
      const updated = await store.update('demo', a.associationId, {
        modifiedAt: later,
        roleArn: 'arn:aws:iam::111122223333:role/new',
        targetRoleArn: 'arn:aws:iam::444455556666:role/target',
        externalId: 'ext-1',
        disableSessionTags: true,
        policy: '{"Version":"2012-10-17"}',
      });
      const expected: Association = {
        ...a,
        modifiedAt: later,
        roleArn: 'arn:aws:iam::111122223333:role/new',
        targetRoleArn: 'arn:aws:iam::444455556666:role/target',
        externalId: 'ext-1',
        disableSessionTags: true,
        policy: '{"Version":"2012-10-17"}',
      };
      assert.deepEqual(updated, expected);
      assert.deepEqual(await store.get('demo', a.associationId), expected);
      // Keys absent from the changes are kept; keys present as undefined are cleared.
      const cleared = await store.update('demo', a.associationId, { modifiedAt: later + 1, targetRoleArn: undefined, externalId: undefined });
      const { targetRoleArn: _t, externalId: _e, ...rest } = expected;
      assert.deepEqual(cleared, { ...rest, modifiedAt: later + 1 });
      assert.deepEqual(await store.get('demo', a.associationId), { ...rest, modifiedAt: later + 1 });
      const retagged = await store.update('demo', a.associationId, { modifiedAt: later + 2, tags: { team: 'b' } });
      assert.deepEqual(retagged?.tags, { team: 'b' });
      assert.deepEqual((await store.get('demo', a.associationId))?.tags, { team: 'b' });
      assert.equal(await store.update('demo', newAssociationId(), { modifiedAt: later }), undefined);
      assert.equal(await store.update('other', a.associationId, { modifiedAt: later }), undefined);
    });

    test('delete answers what it removed and frees the subject', async () => {
      const store = await fresh();
      const a = association({ namespace: 'ns', serviceAccount: 'sa', tags: { t: 'v' } });
      await store.create(a);
      assert.deepEqual(await store.delete('other', a.associationId), undefined);
      assert.deepEqual(await store.delete('demo', a.associationId), a);
      assert.equal(await store.get('demo', a.associationId), undefined);
      assert.equal(await store.findBySubject(a), undefined);
      assert.equal(await store.delete('demo', a.associationId), undefined);
      await store.create(association({ namespace: 'ns', serviceAccount: 'sa' }));
    });

    test('onChange reports every successful write, in order, and nothing else', async () => {
      const store = await fresh();
      const recorder = changeRecorder(store);
      const a = association({ namespace: 'ns', serviceAccount: 'sa' });
      await store.create(a);
      await assert.rejects(store.create(association({ namespace: 'ns', serviceAccount: 'sa' })), SubjectTakenError);
      await store.create(association({ namespace: 'ns', serviceAccount: 'sa2' }), { token: 't', fingerprint: 'f' });
      await store.create(association({ namespace: 'ns', serviceAccount: 'sa3' }), { token: 't', fingerprint: 'f' });
      const updated = await store.update('demo', a.associationId, { modifiedAt: a.modifiedAt + 1, roleArn: 'arn:aws:iam::111122223333:role/b' });
      await store.update('demo', newAssociationId(), { modifiedAt: 1 });
      const deleted = await store.delete('demo', a.associationId);
      await store.delete('demo', a.associationId);
      // Give a networked feed the time to deliver anything extra it might.
      await new Promise((r) => setTimeout(r, 200));
      assert.deepEqual(
        recorder.changes.map((c) => [c.kind, c.association.serviceAccount]),
        [
          ['upsert', 'sa'],
          ['upsert', 'sa2'],
          ['upsert', 'sa'],
          ['delete', 'sa'],
        ],
      );
      assert.deepEqual(recorder.changes[0]!.association, a);
      assert.deepEqual(recorder.changes[2]!.association, updated);
      assert.deepEqual(recorder.changes[3]!.association, deleted);
      recorder.unsubscribe();
      await store.create(association());
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(recorder.changes.length, 4, 'no events after unsubscribe');
    });

    test('countByCluster counts each cluster\'s associations, and follows creates and deletes', async () => {
      const store = await fresh();
      assert.deepEqual(await store.countByCluster(), {});
      const a = association({ namespace: 'ns', serviceAccount: 'a' });
      await store.create(a);
      await store.create(association({ namespace: 'ns', serviceAccount: 'b' }));
      await store.create(association({ clusterName: 'other', namespace: 'ns', serviceAccount: 'a' }));
      assert.deepEqual(await store.countByCluster(), { demo: 2, other: 1 });
      await store.delete('demo', a.associationId);
      assert.deepEqual(await store.countByCluster(), { demo: 1, other: 1 });
    });

    test('ping answers while open', async () => {
      const store = await fresh();
      await store.ping();
    });
  });
}

describe('PostgreSQL store across replicas', { skip: postgresSkip() }, () => {
  let pg: PostgresPeer;
  const open: PostgresAssociationStore[] = [];
  const replica = async (url: string, heartbeatMs?: number) => {
    const store = await PostgresAssociationStore.open(url, { heartbeatMs });
    open.push(store);
    return store;
  };
  before(async () => {
    pg = await startPostgres();
  });
  after(async () => {
    for (const store of open) await store.close().catch(() => {});
    await pg?.stop();
  });

  test('replicas starting together migrate once', async () => {
    const url = await pg.createDatabase();
    const stores = await Promise.all(Array.from({ length: 6 }, () => replica(url)));
    assert.equal(stores.length, 6);
    const name = new URL(url).pathname.slice(1);
    const versions = await pg.query<{ version: number }>('SELECT version FROM schema_migrations ORDER BY version', [], name);
    assert.deepEqual(versions, [{ version: 1 }, { version: 2 }]);
    // Reopening finds nothing to do.
    await replica(url);
  });

  test("a write in one replica reaches every other replica's onChange within a second", async () => {
    const url = await pg.createDatabase();
    const [a, b, c] = [await replica(url), await replica(url), await replica(url)];
    const seenB = changeRecorder(b);
    const seenC = changeRecorder(c);
    const made = association({ namespace: 'ns', serviceAccount: 'sa', tags: { big: 'x'.repeat(256) } });
    await a.create(made);
    const latency = await seenB.waitFor((ch) => ch.length === 1);
    await seenC.waitFor((ch) => ch.length === 1);
    assert.ok(latency < 1000, `seen in ${latency} ms`);
    assert.deepEqual(seenB.changes[0], { kind: 'upsert', association: made });
    const updated = await b.update('demo', made.associationId, { modifiedAt: made.modifiedAt + 5, roleArn: 'arn:aws:iam::111122223333:role/z' });
    await seenC.waitFor((ch) => ch.length === 2);
    assert.deepEqual(seenC.changes[1], { kind: 'upsert', association: updated });
    await c.delete('demo', made.associationId);
    await seenB.waitFor((ch) => ch.length === 3);
    assert.deepEqual(seenB.changes[2], { kind: 'delete', association: updated });
    // The writer hears its own write once, not twice (local delivery + notification).
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(seenC.changes.length, 3);
    assert.equal(seenB.changes.length, 3);
  });

  test('changes made outside the server (psql) reach the feed too', async () => {
    const url = await pg.createDatabase();
    const store = await replica(url);
    const seen = changeRecorder(store);
    const made = association();
    await store.create(made);
    await seen.waitFor((ch) => ch.length === 1);
    await pg.query("UPDATE associations SET role_arn = 'arn:aws:iam::111122223333:role/by-hand' WHERE association_id = $1", [made.associationId], new URL(url).pathname.slice(1));
    await seen.waitFor((ch) => ch.length === 2);
    assert.equal(seen.changes[1]!.association.roleArn, 'arn:aws:iam::111122223333:role/by-hand');
  });

  test('the feed reconnects after its connection is killed and replays what it missed', async () => {
    const url = await pg.createDatabase();
    const database = new URL(url).pathname.slice(1);
    const listener = await replica(url, 500);
    const writer = await replica(url);
    const seen = changeRecorder(listener);
    const before = association({ serviceAccount: 'before' });
    await writer.create(before);
    await seen.waitFor((ch) => ch.length === 1);

    // Kill the listener's LISTEN connection, then write while it is away.
    const killed = await pg.query<{ killed: boolean }>(
      "SELECT pg_terminate_backend(pid) AS killed FROM pg_stat_activity WHERE datname = $1 AND application_name = 'pod-identity-changes'",
      [database],
    );
    assert.ok(killed.length >= 1, 'found the LISTEN connections');
    const during = association({ serviceAccount: 'during' });
    await writer.create(during);
    await seen.waitFor((ch) => ch.some((c) => c.association.serviceAccount === 'during'), 10_000);
    const afterwards = association({ serviceAccount: 'after' });
    await writer.create(afterwards);
    await seen.waitFor((ch) => ch.some((c) => c.association.serviceAccount === 'after'), 2000);
    assert.deepEqual(
      seen.changes.map((c) => c.association.serviceAccount),
      ['before', 'during', 'after'],
      'each change once, in order',
    );
    await listener.ping();
  });

  test('database URLs are redacted for logs', () => {
    assert.equal(redactDatabaseUrl('postgres://user:s3cret@db:5432/x'), 'postgres://user:***@db:5432/x');
    assert.equal(redactDatabaseUrl('postgresql://db/x'), 'postgresql://db/x');
  });
});
