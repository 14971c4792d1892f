// promtool, Prometheus' rule checker, installed by scripts/install-promtool.sh
// from Debian's prometheus package: on PATH, or in /usr/bin.
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

const INSTALL_PROMTOOL = 'scripts/install-promtool.sh';

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The promtool binary, or undefined when it is not installed. */
export function promtoolPath(): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter).filter(Boolean), '/usr/bin'];
  return dirs.map((dir) => join(dir, 'promtool')).find(executable);
}

/** Why promtool cannot run here, or undefined when it can. */
export function promtoolMissingReason(): string | undefined {
  return promtoolPath() === undefined ? `promtool not found on PATH or in /usr/bin; run ${INSTALL_PROMTOOL}` : undefined;
}
