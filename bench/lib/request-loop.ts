// The AssumeRoleForPodIdentity request path in one process, for counting its
// instructions under callgrind (bench/request-cost.ts): the API handler the
// server runs, with a JWKS-file cluster, the SQLite store, the local issuer
// and the audit log on stderr. Requests arrive as in-memory streams instead of
// sockets, so the count is the server's own work: neither the kernel's nor a
// client's is in it.
//
// Run by bench/request-cost.ts as
//   valgrind --tool=callgrind --instr-atstart=no … node --single-threaded --import tsx bench/lib/request-loop.ts
// with REQUEST_LOOP (JSON, RequestLoopSpec) in the environment. Instructions
// are counted only around the measured requests (callgrind_control -i on/off);
// prints {"measured": n, "failed": n} on stdout.
import { execFileSync } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { Registry } from 'prom-client';
import { AssociationService } from '../../src/associations/service.js';
import { SqliteAssociationStore } from '../../src/associations/stores/sqlite.js';
import { createEksAuth } from '../../src/server/setup/eks-auth.js';
import { AuditLog } from '../../src/lib/audit.js';
import { createLogger } from '../../src/lib/logger.js';
import { createApiHandler } from '../../src/server/api.js';
import { parseServerConfig } from '../../src/config/load.js';
import { eksAuthRoutes } from '../../src/server/routes/eks-auth.js';

export interface RequestLoopSpec {
  /** holds jwks.json and requests.json (SignedBody[]) */
  dir: string;
  issuer: string;
  node: { accessKeyId: string; secretAccessKey: string };
  /** `namespace/serviceAccount` → role ARN */
  roles: Record<string, string>;
  warmUp: number;
  measured: number;
}

export interface SignedBody {
  path: string;
  headers: Record<string, string>;
  body: string;
}

const spec = JSON.parse(process.env.REQUEST_LOOP ?? '{}') as RequestLoopSpec;
const requests = JSON.parse(readFileSync(join(spec.dir, 'requests.json'), 'utf8')) as SignedBody[];

const store = new SqliteAssociationStore(join(spec.dir, 'associations.db'));
const associations = new AssociationService({ store, region: 'us-east-1', accountId: '111122223333', clusters: () => ['bench'] });
for (const [subject, roleArn] of Object.entries(spec.roles)) {
  const [namespace, serviceAccount] = subject.split('/') as [string, string];
  await associations.create('bench', { namespace, serviceAccount, roleArn }, { actor: { kind: 'access-key', accessKeyId: 'bench' } });
}
// The server's own configuration schema fills in every default, as for `pod-identity server`.
const config = parseServerConfig({
  region: 'us-east-1',
  accountId: '111122223333',
  dataDir: spec.dir,
  nodes: [spec.node],
  clusters: [{ name: 'bench', issuer: spec.issuer, jwksFile: join(spec.dir, 'jwks.json') }],
  issuer: { type: 'local', durationSeconds: 3600 },
});
const logger = createLogger({ level: 'info', batched: true });
const registry = new Registry();
const eksAuth = createEksAuth(config, { store, logger, registry, audit: new AuditLog(logger) });
await Promise.all(eksAuth.clusters.map((cluster) => cluster.warmUp()));
const handle = createApiHandler({ routes: eksAuthRoutes(eksAuth.service, [spec.node], config.region), logger, registry });

let failed = 0;

/** One request through the handler: the body as a stream, the answer into a stand-in for the socket's response. */
function send(request: SignedBody): Promise<void> {
  return new Promise((resolve) => {
    const req = Object.assign(Readable.from([Buffer.from(request.body)]), { method: 'POST', url: request.path, headers: request.headers });
    const res = Object.assign(new EventEmitter(), {
      statusCode: 200,
      headersSent: false,
      writeHead(status: number) {
        res.statusCode = status;
        res.headersSent = true;
        return res;
      },
      end() {
        if (res.statusCode !== 200) failed++;
        res.emit('finish');
        resolve();
      },
    });
    handle(req as unknown as IncomingMessage, res as unknown as ServerResponse);
  });
}

const callgrind = (toggle: 'on' | 'off') => execFileSync('callgrind_control', ['-i', toggle, String(process.pid)], { stdio: 'ignore' });
for (const request of requests.slice(0, spec.warmUp)) await send(request);
callgrind('on');
for (const request of requests.slice(spec.warmUp, spec.warmUp + spec.measured)) await send(request);
callgrind('off');
process.stdout.write(`${JSON.stringify({ measured: spec.measured, failed })}\n`);
process.exit(0);
