// The store the configuration names: PostgreSQL when a databaseUrl is given
// (several replicas), else the embedded SQLite file in the data directory.
import { join } from 'node:path';
import type { Logger } from '../lib/logger.js';
import type { AssociationStore } from './store.js';
import { PostgresAssociationStore } from './stores/postgres/store.js';
import { SqliteAssociationStore } from './stores/sqlite.js';

export async function openStore(config: { databaseUrl?: string | undefined; dataDir: string }, logger?: Logger): Promise<AssociationStore> {
  if (config.databaseUrl) return PostgresAssociationStore.open(config.databaseUrl, { logger });
  return new SqliteAssociationStore(join(config.dataDir, 'associations.db'));
}
