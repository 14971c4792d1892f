// Checks made before the server starts anything, for what the configuration
// names but its schema cannot see: a cluster's jwksFile must be readable and
// hold a usable signing key, or every token of that cluster would be refused
// by a server that looks ready. Failures are ConfigErrors naming the key
// (`clusters[0].jwksFile`), which the CLI turns into exit code 2.
import { readFile } from 'node:fs/promises';
import { verificationMode } from '../../auth/cluster.js';
import { importJwks } from '../../auth/keys.js';
import { ConfigError } from '../../config/load.js';
import type { ServerConfig } from '../../config/schema.js';

async function checkJwksFile(key: string, path: string): Promise<void> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new ConfigError(`invalid configuration: ${key}: cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new ConfigError(`invalid configuration: ${key}: ${path} is not JSON`);
  }
  let imported;
  try {
    imported = await importJwks(doc);
  } catch (error) {
    throw new ConfigError(`invalid configuration: ${key}: ${path}: ${(error as Error).message}`);
  }
  if (imported.keys.length === 0) {
    throw new ConfigError(`invalid configuration: ${key}: ${path} holds no usable signing key${imported.skipped.length ? ` (${imported.skipped.join('; ')})` : ''}`);
  }
}

export async function preflight(config: ServerConfig): Promise<void> {
  for (const [i, cluster] of config.clusters.entries()) {
    if (cluster.jwksFile && verificationMode(cluster) === 'jwks-file') await checkJwksFile(`clusters[${i}].jwksFile`, cluster.jwksFile);
  }
}
