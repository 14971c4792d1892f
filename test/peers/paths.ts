// Where the install scripts put the peers. The pinned versions are read from
// the scripts themselves, so the scripts stay the one place that names them.
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

export const INSTALL_K8S = 'scripts/install-k8s.sh';
export const INSTALL_PYTHON_PEERS = 'scripts/install-python-peers.sh';

/** ${POD_IDENTITY_PEERS_CACHE:-~/.cache/pod-identity} */
function peersCacheDir(): string {
  return process.env.POD_IDENTITY_PEERS_CACHE || join(homedir(), '.cache', 'pod-identity');
}

/** The default `NAME="${NAME:-x.y.z}"` of an install script, overridable by the same env var. */
function pinnedVersion(script: string, variable: string): string {
  const fromEnv = process.env[variable];
  if (fromEnv) return fromEnv;
  const text = readFileSync(join(repoRoot, script), 'utf8');
  const match = new RegExp(`^${variable}="\\$\\{${variable}:-([^}]+)\\}"`, 'm').exec(text);
  if (!match) throw new Error(`${script} does not pin ${variable}`);
  return match[1];
}

export function kubeBinDir(): string {
  return join(peersCacheDir(), `k8s-v${pinnedVersion(INSTALL_K8S, 'K8S_VERSION')}`, 'bin');
}

export function venvDir(): string {
  return join(peersCacheDir(), 'venv');
}

/** scripts/install-node-peers.sh's images (the pause archive) and the test images' archives */
export function imagesDir(): string {
  return join(peersCacheDir(), 'images');
}
