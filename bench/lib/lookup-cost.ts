// Instructions per findBySubject, counted by callgrind (experiment for bench/analysis/store.md).
// valgrind --tool=callgrind --instr-atstart=no --smc-check=all-non-file node --single-threaded --import tsx bench/lib/lookup-cost.ts <engine> <db> <hit|miss>
import { execFileSync } from 'node:child_process';
import { ENGINES, subjectOf, type Engine } from './store-engine.js';

const [engine, path, kind] = process.argv.slice(2) as [Engine, string, 'hit' | 'miss'];
const Store = await ENGINES[engine]();
const store = new Store(path);
const subject = (i: number) => (kind === 'hit' ? { clusterName: 'bench', ...subjectOf((i * 7919) % 100_000) } : { clusterName: 'bench', namespace: `ns-${i % 500}`, serviceAccount: `absent-${i}` });
const WARM = 20_000;
const MEASURED = 20_000;
for (let i = 0; i < WARM; i++) await store.findBySubject(subject(i));
execFileSync('callgrind_control', ['-i', 'on', String(process.pid)]);
let found = 0;
for (let i = WARM; i < WARM + MEASURED; i++) if (await store.findBySubject(subject(i))) found++;
execFileSync('callgrind_control', ['-i', 'off', String(process.pid)]);
console.log(JSON.stringify({ engine, kind, measured: MEASURED, found }));
await store.close();
