// prom-client, loaded file by file. The package's index loads every part of
// it (the summary's t-digest, the push gateway's zlib, the cluster
// aggregator) and its default metrics load @opentelemetry/api for exemplars:
// about 18 MiB of resident memory in a process that uses a registry, three
// metric types and the process metrics. The agent, on every node, loads only
// these. The classes are the package's own (a process that also imports
// 'prom-client', the server, gets the same modules from require's cache).
import { createRequire } from 'node:module';
import type * as PromClient from 'prom-client';

const require = createRequire(import.meta.url);

export const Registry = require('prom-client/lib/registry') as typeof PromClient.Registry;
export const Counter = require('prom-client/lib/counter') as typeof PromClient.Counter;
export const Gauge = require('prom-client/lib/gauge') as typeof PromClient.Gauge;
export const Histogram = require('prom-client/lib/histogram') as typeof PromClient.Histogram;
export type Registry = PromClient.Registry;

type DefaultMetric = (registry: Registry, config: { eventLoopMonitoringPrecision: number }) => void;

/** prom-client's default metrics but its CPU counters (processCpuTotal, the one that loads @opentelemetry/api). */
const PROCESS_METRICS = [
  'processStartTime',
  'osMemoryHeap',
  'processOpenFileDescriptors',
  'processMaxFileDescriptors',
  'eventLoopLag',
  'processResources',
  'processHandles',
  'processRequests',
  'heapSizeAndUsed',
  'heapSpacesSizeAndUsed',
  'version',
  'gc',
];

/**
 * The default metrics under prom-client's names and help (`process_*`,
 * `nodejs_*`), what collectDefaultMetrics registers; the three
 * process_cpu_*_seconds_total counters are set here from process.cpuUsage(),
 * as prom-client's are, without exemplars.
 */
export function collectProcessMetrics(registry: Registry): void {
  const config = { eventLoopMonitoringPrecision: 10 };
  for (const name of PROCESS_METRICS) (require(`prom-client/lib/metrics/${name}`) as DefaultMetric)(registry, config);
  let last = process.cpuUsage();
  const registers = [registry];
  new Counter({
    name: 'process_cpu_user_seconds_total',
    help: 'Total user CPU time spent in seconds.',
    registers,
    // collected first, it sets all three, as prom-client's does
    collect() {
      const now = process.cpuUsage();
      const user = (now.user - last.user) / 1e6;
      const sys = (now.system - last.system) / 1e6;
      last = now;
      this.inc(user);
      system.inc(sys);
      total.inc(user + sys);
    },
  });
  // registered after the user counter, whose collect() runs first on a scrape
  const system = new Counter({ name: 'process_cpu_system_seconds_total', help: 'Total system CPU time spent in seconds.', registers });
  const total = new Counter({ name: 'process_cpu_seconds_total', help: 'Total user and system CPU time spent in seconds.', registers });
}
