// Instructions per findBySubject (the hot lookup), counted by callgrind around
// 20,000 lookups after 20,000 of warm-up, on a file the store scenario's write
// phase made (bench/analysis/store.md: the engines compared this way):
//   valgrind --tool=callgrind --instr-atstart=no --smc-check=all-non-file --callgrind-out-file=OUT \
//     node --single-threaded --import tsx bench/lib/lookup-cost.ts <associations.db> <hit|miss>
// then `grep ^totals OUT` divided by 20,000. Only user-space instructions count:
// the kernel's side of SQLite's reads (pread) is not in the figure.
import { execFileSync } from 'node:child_process';
import { loadStore, subjectOf } from './store-phase.js';

const [path, kind] = process.argv.slice(2) as [string, 'hit' | 'miss'];
const Store = await loadStore();
const store = new Store(path);
const subject = (i: number) => (kind === 'hit' ? { clusterName: 'bench', ...subjectOf((i * 7919) % 100_000) } : { clusterName: 'bench', namespace: `ns-${i % 500}`, serviceAccount: `absent-${i}` });
const WARM = 20_000;
const MEASURED = 20_000;
for (let i = 0; i < WARM; i++) await store.findBySubject(subject(i));
execFileSync('callgrind_control', ['-i', 'on', String(process.pid)]);
let found = 0;
for (let i = WARM; i < WARM + MEASURED; i++) if (await store.findBySubject(subject(i))) found++;
execFileSync('callgrind_control', ['-i', 'off', String(process.pid)]);
console.log(JSON.stringify({ kind, measured: MEASURED, found }));
await store.close();
