#!/usr/bin/env node
// `npm start`'s first step: compile src/ into dist/ only when dist/ is older
// than what it is built from (the sources, the tsconfig files and the
// lockfile), saying so and how long it took; otherwise nothing. A build
// starts from an empty dist/, so no module deleted from src/ lingers there.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const STAMP = 'dist/.build-stamp';

function newest(path) {
  const stat = statSync(path);
  if (!stat.isDirectory()) return stat.mtimeMs;
  return Math.max(0, ...readdirSync(path).map((name) => newest(join(path, name))));
}

const inputs = Math.max(newest('src'), ...['tsconfig.json', 'tsconfig.build.json', 'package-lock.json'].map(newest));
if (existsSync(STAMP) && statSync(STAMP).mtimeMs >= inputs) process.exit(0);

process.stderr.write('pod-identity: building dist/ from src/ (tsc, about 20 s)\n');
const started = Date.now();
rmSync('dist', { recursive: true, force: true });
const tsc = spawnSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json'], { stdio: 'inherit' });
if (tsc.status !== 0) {
  process.stderr.write('pod-identity: the build failed (see above)\n');
  process.exit(tsc.status ?? 1);
}
writeFileSync(STAMP, `${new Date().toISOString()}\n`);
process.stderr.write(`pod-identity: built in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
