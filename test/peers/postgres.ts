// A throwaway PostgreSQL cluster for tests: initdb in a temp dir, postgres on
// a free loopback port with password (scram) authentication, stopped and
// removed on teardown. PostgreSQL refuses to run as root, so under root the
// server runs as the `postgres` system user (created by Debian's package,
// scripts/install-postgres.sh).
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';
import { freePort } from '../helpers/server-process.js';
import { registerTempDir, spawnPeer, waitUntil, type PeerProcess } from './processes.js';
import { requirePeer } from './require.js';

export interface PostgresPeer {
  /** superuser URL of the `postgres` maintenance database */
  adminUrl: string;
  /** creates an empty database and answers its URL */
  createDatabase(name?: string): Promise<string>;
  /** runs one statement as the superuser against `database` (default: postgres) */
  query<T extends Record<string, unknown> = Record<string, unknown>>(sql: string, params?: unknown[], database?: string): Promise<T[]>;
  /** everything the server logged so far */
  logs(): string;
  stop(): Promise<void>;
}

interface Binaries {
  initdb: string;
  postgres: string;
}

/** Newest /usr/lib/postgresql/<v>/bin (Debian), else PATH. */
function findBinaries(): Binaries | undefined {
  const debian = '/usr/lib/postgresql';
  if (existsSync(debian)) {
    const versions = readdirSync(debian)
      .filter((v) => /^\d+$/.test(v))
      .sort((a, b) => Number(b) - Number(a));
    for (const version of versions) {
      const bin = join(debian, version, 'bin');
      if (existsSync(join(bin, 'postgres')) && existsSync(join(bin, 'initdb'))) return { initdb: join(bin, 'initdb'), postgres: join(bin, 'postgres') };
    }
  }
  const which = (name: string) => {
    const result = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
    return result.status === 0 ? result.stdout.trim() : undefined;
  };
  const initdb = which('initdb');
  const postgres = which('postgres');
  return initdb && postgres ? { initdb, postgres } : undefined;
}

/** uid/gid of the `postgres` system user, read from /etc/passwd. */
function postgresUser(): { uid: number; gid: number } | undefined {
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('postgres:'));
  if (!line) return undefined;
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

/** Why a PostgreSQL peer cannot be started here, or undefined when it can. */
function postgresMissingReason(): string | undefined {
  if (!findBinaries()) return 'PostgreSQL server binaries (initdb, postgres) not found; run scripts/install-postgres.sh';
  if (process.getuid?.() === 0 && !postgresUser()) return 'running as root and there is no `postgres` user to run the server as; run scripts/install-postgres.sh';
  return undefined;
}

/** `skip` option for suites that need PostgreSQL, by the shared peer rule (skip locally, fail in CI). */
export function postgresSkip(): string | false {
  return requirePeer('PostgreSQL', postgresMissingReason);
}

export async function startPostgres(): Promise<PostgresPeer> {
  const missing = postgresMissingReason();
  if (missing) throw new Error(missing);
  const binaries = findBinaries()!;
  const runAs = process.getuid?.() === 0 ? postgresUser()! : undefined;

  const dir = mkdtempSync(join(tmpdir(), 'pod-identity-pg-'));
  // Removed on stop(), on exit, or by the peers' watchdog if this process is killed.
  const removeDir = registerTempDir(dir);
  if (runAs) chownSync(dir, runAs.uid, runAs.gid);
  const dataDir = join(dir, 'data');
  const password = randomBytes(12).toString('hex');
  const pwfile = join(dir, 'pwfile');
  writeFileSync(pwfile, `${password}\n`, { mode: 0o600 });
  if (runAs) chownSync(pwfile, runAs.uid, runAs.gid);
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: 'C', LC_ALL: 'C' };

  const init = spawnSync(
    binaries.initdb,
    ['-D', dataDir, '-U', 'postgres', `--pwfile=${pwfile}`, '--auth-local=trust', '--auth-host=scram-sha-256', '-E', 'UTF8', '--no-locale', '--no-sync'],
    { env, cwd: dir, encoding: 'utf8', ...(runAs && { uid: runAs.uid, gid: runAs.gid }), timeout: 60_000 },
  );
  rmSync(pwfile, { force: true });
  if (init.status !== 0) {
    removeDir();
    throw new Error(`initdb failed (${init.status ?? init.signal}):\n${init.stdout}\n${init.stderr}`);
  }

  const port = await freePort();
  // Durability settings are off: the tests kill our server processes, never PostgreSQL.
  const serverArgs = ['-D', dataDir, '-p', String(port), '-k', dir, '-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off', '-c', 'full_page_writes=off', '-c', 'max_connections=200'];
  // Its own process group (spawnPeer), so a stop or the watchdog reaches every backend.
  const server: PeerProcess = runAs
    ? spawnPeer('postgres', 'runuser', ['-u', 'postgres', '--', binaries.postgres, ...serverArgs], { cwd: dir, env })
    : spawnPeer('postgres', binaries.postgres, serverArgs, { cwd: dir, env });

  const urlFor = (database: string) => `postgres://postgres:${password}@127.0.0.1:${port}/${database}`;
  const adminUrl = urlFor('postgres');
  const stop = async () => {
    // SIGINT is PostgreSQL's fast shutdown (SIGTERM would wait for clients to leave).
    if (server.running() && server.child.pid !== undefined) {
      try {
        process.kill(-server.child.pid, 'SIGINT');
      } catch {
        // already gone
      }
      await Promise.race([server.exited, new Promise((r) => setTimeout(r, 5_000))]);
    }
    await server.stop(1_000);
    removeDir();
  };

  try {
    await waitUntil(server, 'a PostgreSQL connection', 30_000, async () => {
      const client = new Client({ connectionString: adminUrl, connectionTimeoutMillis: 1000 });
      try {
        await client.connect();
        await client.query('SELECT 1');
        return true;
      } finally {
        await client.end().catch(() => {});
      }
    });
  } catch (error) {
    await stop();
    throw error;
  }

  let databases = 0;
  const query = async <T extends Record<string, unknown>>(sql: string, params: unknown[] = [], database = 'postgres'): Promise<T[]> => {
    const client = new Client({ connectionString: urlFor(database) });
    await client.connect();
    try {
      return (await client.query<T>(sql, params)).rows;
    } finally {
      await client.end();
    }
  };

  return {
    adminUrl,
    query,
    async createDatabase(name) {
      const database = name ?? `test_${process.pid}_${++databases}_${randomBytes(3).toString('hex')}`;
      if (!/^[a-z_][a-z0-9_]*$/.test(database)) throw new Error(`database name ${database} is not a plain identifier`);
      await query(`CREATE DATABASE ${database}`);
      return urlFor(database);
    },
    logs: () => server.logs(),
    stop,
  };
}
