// The pure parts of API workers: how many, each one's share of the
// throttles, and the change relay that keeps caches in every process current.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { relayChanges } from '../../src/associations/change-relay.js';
import { AssociationService } from '../../src/associations/service.js';
import type { StoreChange } from '../../src/associations/store.js';
import { SqliteAssociationStore } from '../../src/associations/stores/sqlite.js';
import type { ChangeContext } from '../../src/associations/audit.js';
import { parseServerConfig } from '../../src/config/load.js';
import { workerConfig, workerCount } from '../../src/server/workers.js';

test('workers: a number from 1 to 64 (flags give strings), or auto for one per core', () => {
  assert.equal(parseServerConfig({}).workers, 1);
  assert.equal(parseServerConfig({ workers: 4 }).workers, 4);
  assert.equal(parseServerConfig({ workers: '3' }).workers, 3);
  assert.equal(parseServerConfig({ workers: 'auto' }).workers, 'auto');
  for (const bad of [0, 65, 1.5, 'many']) assert.throws(() => parseServerConfig({ workers: bad }), /workers/);
  assert.equal(workerCount('auto', 6), 6);
  assert.equal(workerCount(3, 6), 3);
});

test('each worker enforces its share of every throttle', () => {
  const config = parseServerConfig({ throttle: { perCluster: { rate: 300, burst: 10 }, perServiceAccount: { rate: 5, burst: 3 } } });
  const share = workerConfig(config, 2);
  assert.deepEqual(share.throttle, { perCluster: { rate: 150, burst: 5 }, perServiceAccount: { rate: 2.5, burst: 2 } });
  assert.equal(workerConfig(config, 1), config);
  assert.deepEqual(workerConfig(parseServerConfig({}), 4).throttle, {});
});

const ADMIN_CHANGE: ChangeContext = { actor: { kind: 'access-key', accessKeyId: 'AKIAADMINTEST' } };

test('the change relay sends this process\'s changes out and hands changes from elsewhere to its listeners', async () => {
  const sent: StoreChange[] = [];
  const heard: StoreChange[] = [];
  const store = relayChanges(new SqliteAssociationStore(':memory:'), (change) => sent.push(change));
  const stop = store.onChange((change) => heard.push(change));
  const service = new AssociationService({ store, region: 'us-east-1', accountId: '000000000000', clusters: () => ['demo'] });
  const created = await service.create('demo', { namespace: 'ns', serviceAccount: 'app', roleArn: 'arn:aws:iam::111122223333:role/app' }, ADMIN_CHANGE);
  assert.deepEqual(
    sent.map((c) => [c.kind, c.association.serviceAccount]),
    [['upsert', 'app']],
  );
  assert.equal(heard.length, 1);

  const fromElsewhere: StoreChange = { kind: 'delete', association: { ...created, serviceAccount: 'other' } };
  store.receive(fromElsewhere);
  assert.deepEqual(heard.at(-1), fromElsewhere);
  assert.equal(sent.length, 1, 'a change from elsewhere is not sent back out');

  stop();
  store.receive(fromElsewhere);
  assert.equal(heard.length, 2, 'no listener after unsubscribing');
  await store.close();
});
