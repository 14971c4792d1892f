// `pod-identity server`: flags → config → startServer; SIGTERM/SIGINT drain.
// In a forked API worker (workers > 1) the same command runs the worker's part.
import cluster from 'node:cluster';
import type { Command } from 'commander';
import { ConfigError, loadServerConfig } from '../config/load.js';
import { createLogger } from '../lib/logger.js';
import { startServer } from '../server/server.js';
import { runApiWorker } from '../server/workers.js';
import { CliError, oneLine } from './fail.js';
import { defaultNote, withExamples } from './options.js';
import { exitOnSignals } from './shutdown.js';

/** Flags that override top-level config keys (the same names as the YAML keys). */
const FLAG_KEYS = ['listen', 'webhookListen', 'metricsListen', 'consoleListen', 'region', 'accountId', 'dataDir', 'databaseUrl', 'logLevel', 'workers'] as const;

export function registerServerCommand(program: Command): void {
  withExamples(
    program
      .command('server')
      .description('run the control plane: EKS association API, EKS Auth API, admission webhook and metrics')
      .option('--config <file>', 'YAML configuration file (see README: Configuration)')
      .option('--listen <host:port>', `EKS and EKS Auth API listener ${defaultNote('127.0.0.1:8080')}`)
      .option('--webhook-listen <host:port>', `admission webhook listener, always TLS ${defaultNote('127.0.0.1:9443')}`)
      .option('--metrics-listen <host:port>', `/metrics, /healthz and /readyz listener ${defaultNote('127.0.0.1:9090')}`)
      .option('--console-listen <host:port>', 'admin console listener (a browser; HTTPS when tls is set); off unless set')
      .option('--region <region>', `region used in ARNs ${defaultNote('us-east-1')}`)
      .option('--account-id <id>', `12-digit account id used in ARNs ${defaultNote('000000000000')}`)
      .option('--data-dir <dir>', `directory of the embedded SQLite store ${defaultNote('./data')}`)
      .option('--database-url <url>', 'PostgreSQL URL, for several replicas')
      .option('--workers <n|auto>', `API worker processes sharing the API listener, or auto for one per core ${defaultNote(1)}`)
      .option('--log-level <level>', `fatal, error, warn, info, debug, trace or silent ${defaultNote('info')}`)
      .addHelpText('after', '\nEvery key can also be set by environment: POD_IDENTITY_<KEY> (e.g. POD_IDENTITY_DATA_DIR).\nPrecedence: file < environment < flags.'),
    'pod-identity server --config /etc/pod-identity/config.yaml',
    'POD_IDENTITY_DATA_DIR=/var/lib/pod-identity pod-identity server --listen 0.0.0.0:8080 --workers auto',
    'pod-identity server --config /etc/pod-identity/config.yaml --console-listen 127.0.0.1:8443   # then open http://127.0.0.1:8443',
  ).action(async (flags: Record<string, string | undefined>) => {
    const overrides: Record<string, unknown> = {};
    for (const key of FLAG_KEYS) if (flags[key] !== undefined) overrides[key] = flags[key];
    let config;
    try {
      config = loadServerConfig({ file: flags.config, env: process.env, overrides });
    } catch (error) {
      if (error instanceof ConfigError) throw new CliError(error.message, 2);
      throw error;
    }
    const logger = createLogger({ level: config.logLevel, name: 'pod-identity-server', batched: true });
    if (cluster.isWorker) {
      await runApiWorker(config, logger);
      return;
    }
    let server;
    try {
      server = await startServer(config, { logger });
    } catch (error) {
      if (error instanceof ConfigError) throw new CliError(error.message, 2);
      logger.fatal({ reason: oneLine(error) }, 'server failed to start');
      logger.flush();
      throw new CliError(`cannot start: ${oneLine(error)}`);
    }
    exitOnSignals(logger, () => server.close());
  });
}
