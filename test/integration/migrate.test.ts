// `pod-identity migrate` (the built CLI) copying 10,000 associations from the
// embedded SQLite store into PostgreSQL: equal afterwards, and equal again
// after a second run, which creates nothing.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { associationArn, newAssociationId } from '../../src/associations/service.js';
import type { AssociationStore } from '../../src/associations/store.js';
import { PostgresAssociationStore } from '../../src/associations/stores/postgres/store.js';
import { SqliteAssociationStore } from '../../src/associations/stores/sqlite.js';
import type { Association } from '../../src/api/eks.js';
import { CLI } from '../helpers/server-process.js';
import { postgresSkip, startPostgres, type PostgresPeer } from '../peers/postgres.js';

const COUNT = 10_000;

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.once('error', reject);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

async function everything(store: AssociationStore): Promise<Association[]> {
  const out: Association[] = [];
  let after: { clusterName: string; associationId: string } | undefined;
  for (;;) {
    const page = await store.listAll(after, 2000);
    out.push(...page);
    if (page.length < 2000) return out;
    const last = page[page.length - 1]!;
    after = { clusterName: last.clusterName, associationId: last.associationId };
  }
}

function made(i: number, clusterName: string): Association {
  const associationId = newAssociationId();
  const createdAt = 1_700_000_000_000 + i * 1000;
  return {
    clusterName,
    namespace: `ns-${i % 97}`,
    serviceAccount: `sa-${i}`,
    roleArn: `arn:aws:iam::111122223333:role/role-${i % 100}`,
    associationId,
    associationArn: associationArn('eu-west-1', '123456789012', clusterName, associationId),
    tags: i % 3 === 0 ? { team: `t${i % 7}`, cost: String(i) } : {},
    createdAt,
    modifiedAt: createdAt + (i % 5) * 1000,
    disableSessionTags: i % 4 === 0,
    ...(i % 10 === 0 && { targetRoleArn: 'arn:aws:iam::444455556666:role/target', externalId: `ext-${i}` }),
    ...(i % 4 === 0 && i % 8 === 0 && { policy: '{"Version":"2012-10-17","Statement":[]}' }),
    ...(i % 50 === 0 && { ownerArn: `arn:aws:eks:eu-west-1:123456789012:addon/${clusterName}/addon/${i}` }),
  };
}

describe('pod-identity migrate: SQLite → PostgreSQL', { skip: postgresSkip() }, () => {
  let pg: PostgresPeer;
  let dir: string;
  let sqlitePath: string;
  let databaseUrl: string;

  before(async () => {
    pg = await startPostgres();
    databaseUrl = await pg.createDatabase();
    // tmpfs when there is one: 10,000 durable SQLite transactions on a disk take half a minute.
    dir = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'migrate-test-'));
    sqlitePath = join(dir, 'associations.db');
    const source = new SqliteAssociationStore(sqlitePath);
    const clusters = ['prod', 'staging', 'Dev_1'];
    for (let i = 0; i < COUNT; i++) await source.create(made(i, clusters[i % 3]!));
    await source.close();
  });
  after(async () => {
    await pg?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('copies 10,000 associations; equal afterwards; a second run changes nothing', async (t) => {
    const started = Date.now();
    const first = await run(['migrate', '--from', `sqlite:${sqlitePath}`, '--to', databaseUrl]);
    const firstMs = Date.now() - started;
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, new RegExp(`migrated ${COUNT}/${COUNT} associations \\(created ${COUNT}, updated 0, unchanged 0, conflicts 0\\)`));
    assert.match(first.stderr, /migrate: copying associations from sqlite:/);
    assert.match(first.stderr, new RegExp(`migrate: ${COUNT}/${COUNT} associations`), 'progress ends with the total');
    assert.doesNotMatch(first.stdout + first.stderr, new RegExp(new URL(databaseUrl).password), 'the password is not printed');

    const source = new SqliteAssociationStore(sqlitePath);
    const target = await PostgresAssociationStore.open(databaseUrl, { listen: false });
    try {
      const expected = await everything(source);
      assert.equal(expected.length, COUNT);
      assert.deepEqual(await everything(target), expected);

      const again = await run(['migrate', '--from', `sqlite:${sqlitePath}`, '--to', databaseUrl]);
      assert.equal(again.code, 0, again.stderr);
      assert.match(again.stdout, new RegExp(`migrated ${COUNT}/${COUNT} associations \\(created 0, updated 0, unchanged ${COUNT}, conflicts 0\\)`));
      assert.deepEqual(await everything(target), expected);
      const name = new URL(databaseUrl).pathname.slice(1);
      const [row] = await pg.query<{ n: string }>('SELECT count(*)::text AS n FROM associations', [], name);
      assert.equal(row!.n, String(COUNT), 'no duplicates');
      t.diagnostic(`first run (${COUNT} associations, built CLI, including start-up): ${firstMs} ms`);
    } finally {
      await source.close();
      await target.close();
    }
  });

  test('a later run carries over source changes and reports conflicts without overwriting them', async () => {
    const source = new SqliteAssociationStore(sqlitePath);
    const target = await PostgresAssociationStore.open(databaseUrl, { listen: false });
    try {
      const [first] = await source.listAll(undefined, 1);
      await source.update(first!.clusterName, first!.associationId, { modifiedAt: first!.modifiedAt + 60_000, roleArn: 'arn:aws:iam::111122223333:role/changed' });
      const fresh = made(COUNT + 1, 'prod');
      await source.create(fresh);
      // Meanwhile someone made an association for the same service account directly in PostgreSQL.
      const clash = { ...made(COUNT + 2, 'prod'), namespace: 'clash', serviceAccount: 'app' };
      const theirs = { ...made(COUNT + 3, 'prod'), namespace: 'clash', serviceAccount: 'app' };
      await source.create(clash);
      await target.create(theirs);

      const result = await run(['migrate', '--from', `sqlite:${sqlitePath}`, '--to', databaseUrl, '--batch-size', '1000']);
      assert.equal(result.code, 1, 'conflicts make the exit status 1');
      assert.match(result.stdout, new RegExp(`migrated ${COUNT + 2}/${COUNT + 2} associations \\(created 1, updated 1, unchanged ${COUNT - 1}, conflicts 1\\)`));
      assert.match(result.stderr, new RegExp(`conflict: prod/clash/app: ${clash.associationId} not copied, the target has ${theirs.associationId}`));
      assert.equal((await target.get(first!.clusterName, first!.associationId))!.roleArn, 'arn:aws:iam::111122223333:role/changed');
      assert.deepEqual(await target.get('prod', fresh.associationId), fresh);
      assert.deepEqual(await target.findBySubject({ clusterName: 'prod', namespace: 'clash', serviceAccount: 'app' }), theirs);
    } finally {
      await source.close();
      await target.close();
    }
  });

  test('help text and refused arguments', async () => {
    const help = await run(['migrate', '--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /--from <store>/);
    assert.match(help.stdout, /--to <url>/);
    assert.match(help.stdout, /idempotent/);
    const missing = await run(['migrate', '--from', `sqlite:${join(dir, 'nope.db')}`, '--to', databaseUrl]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /no SQLite store at/);
    assert.equal(existsSync(join(dir, 'nope.db')), false, 'a missing source is not created');
    const wrongTarget = await run(['migrate', '--from', `sqlite:${sqlitePath}`, '--to', `sqlite:${sqlitePath}`]);
    assert.equal(wrongTarget.code, 1);
    assert.match(wrongTarget.stderr, /--to must be a PostgreSQL URL/);
  });
});
