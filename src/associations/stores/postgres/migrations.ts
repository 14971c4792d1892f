// The PostgreSQL schema, as versioned migrations applied once each, in order,
// under an advisory lock (replicas that start together migrate once). The
// trigger of migration 1 records every row change in `association_changes`
// and announces its sequence number on CHANNEL (change-feed.ts listens).
import type { Pool } from 'pg';
import type { Logger } from '../../../lib/logger.js';
import { silentLogger } from '../../../lib/logger.js';
import { NAMESPACE_PATTERN, SERVICE_ACCOUNT_PATTERN, SUBJECT_CONSTRAINT } from './rows.js';

export const CHANNEL = 'pod_identity_association_changes';
/** pg_advisory_lock key held while migrating, so replicas starting together migrate once. */
const MIGRATION_LOCK_KEY = 7_283_640_912;

/**
 * Versioned migrations; each is applied once, in order, in its own
 * transaction, under the advisory lock. Text keys use the "C" collation so
 * ordering (and with it list cursors) is byte order, as in SQLite, whatever
 * the database's locale.
 */
const MIGRATIONS: { version: number; sql: string }[] = [
  {
    version: 1,
    sql: `
      CREATE TABLE associations (
        cluster_name TEXT COLLATE "C" NOT NULL,
        association_id TEXT COLLATE "C" NOT NULL,
        namespace TEXT COLLATE "C" NOT NULL,
        service_account TEXT COLLATE "C" NOT NULL,
        role_arn TEXT NOT NULL,
        association_arn TEXT NOT NULL,
        tags JSONB NOT NULL DEFAULT '{}',
        created_at DOUBLE PRECISION NOT NULL,
        modified_at DOUBLE PRECISION NOT NULL,
        owner_arn TEXT,
        disable_session_tags BOOLEAN NOT NULL DEFAULT FALSE,
        target_role_arn TEXT,
        external_id TEXT,
        policy TEXT,
        CONSTRAINT associations_pkey PRIMARY KEY (cluster_name, association_id),
        CONSTRAINT ${SUBJECT_CONSTRAINT} UNIQUE (cluster_name, namespace, service_account)
      );
      CREATE TABLE request_tokens (
        cluster_name TEXT COLLATE "C" NOT NULL,
        token TEXT COLLATE "C" NOT NULL,
        fingerprint TEXT NOT NULL,
        association_id TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (cluster_name, token)
      );
      CREATE TABLE association_changes (
        seq BIGSERIAL PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('upsert', 'delete')),
        association JSONB NOT NULL,
        changed_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
      );
      CREATE INDEX association_changes_changed_at ON association_changes (changed_at);
      CREATE FUNCTION record_association_change() RETURNS trigger LANGUAGE plpgsql AS $$
      DECLARE
        change_seq BIGINT;
      BEGIN
        IF TG_OP = 'DELETE' THEN
          INSERT INTO association_changes (kind, association) VALUES ('delete', to_jsonb(OLD)) RETURNING seq INTO change_seq;
        ELSE
          INSERT INTO association_changes (kind, association) VALUES ('upsert', to_jsonb(NEW)) RETURNING seq INTO change_seq;
        END IF;
        PERFORM pg_notify('${CHANNEL}', change_seq::text);
        RETURN NULL;
      END
      $$;
      CREATE TRIGGER associations_changed AFTER INSERT OR UPDATE OR DELETE ON associations
        FOR EACH ROW EXECUTE FUNCTION record_association_change();
    `,
  },
  {
    // Patterns (`*`, `build-*`), custom session tags, session name templates and non-transitive tags.
    // The partial indexes hold only pattern rows, so a lookup reads those that may match, never the cluster's.
    version: 2,
    sql: `
      ALTER TABLE associations
        ADD COLUMN session_tags JSONB,
        ADD COLUMN session_name_template TEXT,
        ADD COLUMN transitive_session_tags BOOLEAN NOT NULL DEFAULT TRUE;
      CREATE INDEX associations_service_account_patterns ON associations (cluster_name, namespace) WHERE ${SERVICE_ACCOUNT_PATTERN};
      CREATE INDEX associations_namespace_patterns ON associations (cluster_name) WHERE ${NAMESPACE_PATTERN};
    `,
  },
];

export async function migratePostgres(pool: Pool, logger: Logger = silentLogger()): Promise<number[]> {
  const client = await pool.connect();
  const applied: number[] = [];
  try {
    // Session-level lock on a dedicated connection: replicas that start
    // together queue here, and the later ones find nothing left to apply.
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
    try {
      await client.query('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())');
      const { rows } = await client.query<{ version: number }>('SELECT version FROM schema_migrations');
      const done = new Set(rows.map((r) => r.version));
      for (const migration of MIGRATIONS) {
        if (done.has(migration.version)) continue;
        await client.query('BEGIN');
        try {
          await client.query(migration.sql);
          await client.query('INSERT INTO schema_migrations (version) VALUES ($1)', [migration.version]);
          await client.query('COMMIT');
        } catch (error) {
          await client.query('ROLLBACK').catch(() => {});
          throw error;
        }
        applied.push(migration.version);
        logger.info({ version: migration.version }, 'postgres: applied schema migration');
      }
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]).catch(() => {});
    }
  } finally {
    client.release();
  }
  return applied;
}
