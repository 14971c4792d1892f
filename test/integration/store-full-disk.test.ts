// A full disk under the SQLite store (issue 25, item 5), for real: the data
// directory is a small tmpfs, filled up while the server runs. Writes must
// fail with ServerException "the association store cannot write: disk full",
// /readyz must go not ready, reads and credentials must keep working, and once
// space is freed the server must become ready and accept writes by itself.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CreatePodIdentityAssociationCommand, DescribePodIdentityAssociationCommand, EKSClient } from '@aws-sdk/client-eks';
import { signRequest } from '../../src/lib/sigv4.js';
import { rejectsWith } from '../helpers/aws-errors.js';
import { eventually } from '../helpers/eventually.js';
import { jwksOf, podClaims, TEST_ISSUER, testSigner, type TestSigner } from '../helpers/sa-tokens.js';
import { ADMIN, NODE, startServerProcess, type ServerProcess } from '../helpers/server-process.js';
import { requirePeer } from '../peers/require.js';

/** Whether this process may mount a tmpfs (root, as in CI): the only honest way to fill a disk. */
function tmpfsMissingReason(): string | undefined {
  const probe = mkdtempSync(join(tmpdir(), 'tmpfs-probe-'));
  try {
    const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', probe], { encoding: 'utf8' });
    if (mounted.status !== 0) return `cannot mount a tmpfs (${mounted.stderr.trim() || mounted.error?.message}); run as root`;
    spawnSync('umount', [probe]);
    return undefined;
  } finally {
    rmSync(probe, { recursive: true, force: true });
  }
}

const skip = requirePeer('tmpfs', tmpfsMissingReason);

/** Writes to `path` until the file system refuses; answers the bytes written. */
function fillDisk(path: string): number {
  const fd = openSync(path, 'w');
  let written = 0;
  try {
    for (const size of [1 << 20, 1 << 16, 1 << 12, 1 << 8, 1]) {
      const chunk = Buffer.alloc(size, 0x41);
      for (;;) {
        try {
          written += writeSync(fd, chunk);
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
          break;
        }
      }
    }
  } finally {
    closeSync(fd);
  }
  return written;
}

async function readyz(server: ServerProcess): Promise<number> {
  const res = await fetch(`${server.metricsUrl}/readyz`, { signal: AbortSignal.timeout(3000) });
  await res.arrayBuffer();
  return res.status;
}

/** How long `check` took to hold, for the test's diagnostic line. */
async function msUntil(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<number> {
  const started = Date.now();
  await eventually(what, check, { timeoutMs });
  return Date.now() - started;
}

describe('the SQLite store on a full disk', { skip, timeout: 120_000 }, () => {
  let dir: string;
  let dataDir: string;
  let signer: TestSigner;
  let server: ServerProcess;
  let eks: EKSClient;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'full-disk-'));
    dataDir = join(dir, 'data');
    mkdirSync(dataDir);
    const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', dataDir], { encoding: 'utf8' });
    assert.equal(mounted.status, 0, mounted.stderr);
    signer = await testSigner();
    const jwksFile = join(dir, 'jwks.json');
    writeFileSync(jwksFile, JSON.stringify(jwksOf(signer)));
    server = await startServerProcess({ dataDir, config: { clusters: [{ name: 'demo', issuer: TEST_ISSUER, jwksFile }], issuer: { type: 'local' } } });
    eks = new EKSClient({ endpoint: server.apiUrl, region: 'us-east-1', credentials: { ...ADMIN }, maxAttempts: 1 });
  });

  after(async () => {
    eks?.destroy();
    await server?.stop();
    spawnSync('umount', [dataDir]);
    rmSync(dir, { recursive: true, force: true });
  });

  test('writes fail with a clear ServerException and /readyz goes not ready; freeing space brings both back by itself', async (t) => {
    const roleArn = 'arn:aws:iam::111122223333:role/app';
    const first = await eks.send(new CreatePodIdentityAssociationCommand({ clusterName: 'demo', namespace: 'default', serviceAccount: 'app', roleArn }));
    assert.equal(await readyz(server), 200);

    const filler = join(dataDir, 'filler');
    const filled = fillDisk(filler);
    // Writes go to the WAL, which grows: keep writing until one needs space there is none of.
    const tags = Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`key-${i}`, 'v'.repeat(200)]));
    let refused: Error | undefined;
    let attempts = 0;
    for (; attempts < 300 && !refused; attempts++) {
      try {
        await eks.send(new CreatePodIdentityAssociationCommand({ clusterName: 'demo', namespace: 'default', serviceAccount: `sa-${attempts}`, roleArn, tags }));
      } catch (error) {
        refused = error as Error;
      }
    }
    assert.ok(refused, `a write failed once the disk was full (${attempts} creates)`);
    assert.equal(refused.name, 'ServerException');
    assert.equal(refused.message, 'the association store cannot write: disk full');
    assert.equal((refused as unknown as { $metadata: { httpStatusCode: number } }).$metadata.httpStatusCode, 500);
    const notReadyAfter = await msUntil('/readyz not ready', async () => (await readyz(server)) === 503, 5_000);

    // reads, and so credentials, still work
    const described = await eks.send(new DescribePodIdentityAssociationCommand({ clusterName: 'demo', associationId: first.association!.associationId! }));
    assert.equal(described.association?.serviceAccount, 'app');
    const url = new URL('/clusters/demo/assume-role-for-pod-identity', server.apiUrl);
    const body = JSON.stringify({ token: await signer.sign(podClaims()) });
    const headers = await signRequest({ method: 'POST', url, headers: { 'content-type': 'application/json' }, body }, { credentials: NODE, region: 'us-east-1', service: 'eks-auth' });
    const credentials = await fetch(url, { method: 'POST', headers, body });
    assert.equal(credentials.status, 200, await credentials.text());
    // still failing while the disk is full; the log keeps the engine's error
    await rejectsWith(eks.send(new CreatePodIdentityAssociationCommand({ clusterName: 'demo', namespace: 'default', serviceAccount: 'still-full', roleArn, tags })), 'ServerException', 500);
    assert.equal(await readyz(server), 503);
    // (the server writes its log in batches, at least every 100 ms)
    await eventually("the log keeps SQLite's own words", () => /database or disk is full/.test(server.logs()), { timeoutMs: 2_000 });

    unlinkSync(filler);
    const readyAfter = await msUntil('/readyz ready again', async () => (await readyz(server)) === 200, 15_000);
    const again = await eks.send(new CreatePodIdentityAssociationCommand({ clusterName: 'demo', namespace: 'default', serviceAccount: 'after-recovery', roleArn }));
    assert.match(again.association!.associationId!, /^a-[a-z0-9]{17}$/);
    t.diagnostic(`filled ${(filled / 2 ** 20).toFixed(1)} MB; write refused after ${attempts} creates; not ready ${notReadyAfter} ms later; ready ${readyAfter} ms after the space was freed`);
  });
});
