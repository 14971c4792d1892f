// Instructions per AssumeRoleForPodIdentity request with a never-seen token,
// counted by callgrind (valgrind) in one process (bench/lib/request-loop.ts):
// the API handler of the server, a JWKS-file cluster, the SQLite store, the
// local issuer and the audit log. Time on this shared VM moves by ±10 % between
// runs an hour apart; the count of the request's own instructions (all but
// garbage collection and V8's compilers, whose share depends on when they
// happen to run) moves by under 1 %, so it shows what a change to the request
// path saves, and where the rest goes.
// The parts are grouped by symbol: OpenSSL (RSA, SHA-2, HMAC and their
// plumbing), V8's JSON parser and serializer, JavaScript (compiled code and
// V8's builtins), garbage collection, V8's compilers, libc, and the rest of
// Node and V8.
//
// Needs valgrind (callgrind_control, callgrind_annotate). Run:
//   npm run build && node --import tsx bench/request-cost.ts
// Knobs: BENCH_COST_WARM_UP (3000), BENCH_COST_REQUESTS (500), BENCH_COST_KEEP=1 to keep
//        callgrind's output (its directory is printed) for callgrind_annotate.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BENCH_NODE, benchRoles, signedAssumeRole } from './lib/control-plane.js';
import { progress, round, type ScenarioResult } from './lib/report.js';
import type { RequestLoopSpec, SignedBody } from './lib/request-loop.js';
import { BENCH_ISSUER, tokenMinter } from './lib/tokens.js';

/** Enough for V8 to have compiled the path before counting starts. */
const WARM_UP = Number(process.env.BENCH_COST_WARM_UP ?? 3000);
const MEASURED = Number(process.env.BENCH_COST_REQUESTS ?? 500);
const PATH = '/clusters/bench/assume-role-for-pod-identity';

/** Parts of the count, by the symbol each instruction was counted under; the first that matches. */
const PARTS: [string, RegExp][] = [
  ['JavaScript (compiled code)', /^\?\?\?:0x[0-9a-f]+ /],
  ['V8 compilers', /compiler::|[Mm]aglev|Turbofan/],
  ['garbage collection', /Scaveng|MarkCompact|Marking|Sweep|Evacuat|heap::|Heap::|IterateAndScavenge|PretenuringHandler/],
  ['OpenSSL', /\b(bn_|BN_|sha\d+_|OPENSSL_|EVP_|ossl_|OSSL_|CRYPTO_|RSA_|HMAC_|lh_|query_cmp)/],
  ['JavaScript (V8 builtins)', /Builtins_/],
  ['JSON (V8)', /Json/],
  ['libc', /libc\.so/],
];
const OTHER = 'Node and V8 (the rest)';

function requireTool(name: string): void {
  const probe = spawnSync(name, ['--version'], { stdio: 'ignore' });
  if (probe.error || probe.status !== 0) throw new Error(`${name} is needed for this scenario (apt-get install valgrind): ${probe.error?.message ?? `exit ${probe.status}`}`);
}

/** Instructions by part, from callgrind_annotate's per-function totals. */
export function instructionsByPart(annotated: string): { total: number; parts: Record<string, number> } {
  const parts: Record<string, number> = Object.fromEntries([...PARTS.map(([name]) => [name, 0]), [OTHER, 0]]);
  let total = 0;
  for (const line of annotated.split('\n')) {
    const m = /^\s*([\d,]+) \([\s\d.]+%\)\s+(.*)$/.exec(line);
    if (!m) continue;
    const count = Number(m[1]!.replaceAll(',', ''));
    const symbol = m[2]!;
    if (symbol.includes('PROGRAM TOTALS')) {
      total = count;
      continue;
    }
    const part = PARTS.find(([, pattern]) => pattern.test(symbol))?.[0] ?? OTHER;
    parts[part]! += count;
  }
  return { total, parts };
}

async function signedRequests(count: number, dir: string): Promise<void> {
  const minter = tokenMinter();
  writeFileSync(join(dir, 'jwks.json'), JSON.stringify(minter.jwks));
  const url = new URL(PATH, 'http://127.0.0.1:8080');
  const requests: SignedBody[] = [];
  for (let i = 0; i < count; i++) {
    const { headers, body } = await signedAssumeRole(url, await minter.mint(i));
    requests.push({ path: PATH, headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) }, body });
  }
  writeFileSync(join(dir, 'requests.json'), JSON.stringify(requests));
}

/** Runs the request loop under callgrind; resolves with its stdout once it exits 0. */
function countInLoop(spec: RequestLoopSpec, outFile: string): Promise<string> {
  const loop = fileURLToPath(new URL('./lib/request-loop.ts', import.meta.url));
  const args = ['--tool=callgrind', '--instr-atstart=no', '--smc-check=all-non-file', `--callgrind-out-file=${outFile}`, process.execPath, '--single-threaded', '--import', 'tsx', loop];
  const child = spawn('valgrind', args, { env: { ...process.env, REQUEST_LOOP: JSON.stringify(spec) }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  // The audit log goes to stderr; keep only its end, for errors.
  child.stderr.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve(stdout) : reject(new Error(`request loop under callgrind exited with ${code}:\n${stderr}`))));
  });
}

export async function run(): Promise<ScenarioResult> {
  requireTool('valgrind');
  const dir = mkdtempSync(join(tmpdir(), 'bench-request-cost-'));
  try {
    progress(`request-cost: signing ${WARM_UP + MEASURED} requests with never-seen tokens`);
    await signedRequests(WARM_UP + MEASURED, dir);
    const spec: RequestLoopSpec = {
      dir,
      issuer: BENCH_ISSUER,
      node: BENCH_NODE,
      roles: benchRoles(),
      warmUp: WARM_UP,
      measured: MEASURED,
    };
    progress(`request-cost: ${WARM_UP} requests of warm-up, then ${MEASURED} counted, under callgrind (a few minutes)`);
    const outFile = join(dir, 'callgrind.out');
    const loop = JSON.parse(await countInLoop(spec, outFile)) as { measured: number; failed: number };
    if (loop.failed > 0) throw new Error(`${loop.failed} of ${loop.measured} requests were not answered 200`);
    const annotated = spawnSync('callgrind_annotate', ['--threshold=100', outFile], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
    if (annotated.status !== 0) throw new Error(`callgrind_annotate failed: ${annotated.stderr}`);
    const { total, parts } = instructionsByPart(annotated.stdout);
    const perRequest = (count: number) => round(count / loop.measured, 0);
    const ownWork = total - parts['garbage collection']! - parts['V8 compilers']!;
    const figures: Record<string, number> = {
      'instructions per request, without garbage collection and V8 compilers': perRequest(ownWork),
      'instructions per request, all': perRequest(total),
    };
    for (const [name, count] of Object.entries(parts)) figures[`of which ${name}`] = perRequest(count);
    return {
      scenario: 'request-cost',
      description:
        `Instructions per AssumeRoleForPodIdentity request with a never-seen token, counted by callgrind over ${MEASURED} requests after ${WARM_UP} of warm-up, ` +
        'in one process (the API handler with a JWKS-file cluster, SQLite, the local issuer and the audit log; requests as in-memory streams, so no kernel or client work). ' +
        'Unlike time on this VM, the count without garbage collection and compilers repeats within 1 %: it is the yardstick for changes to the request path.',
      figures,
      targets: [],
      notes: ['Parts are grouped by the symbol callgrind counted each instruction under (bench/request-cost.ts, PARTS).'],
    };
  } finally {
    if (process.env.BENCH_COST_KEEP === '1') progress(`request-cost: kept ${dir} (callgrind.out, requests.json)`);
    else rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  run().then((result) => console.log(JSON.stringify(result, null, 2)));
}
