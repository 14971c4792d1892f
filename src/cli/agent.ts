// `pod-identity agent`: flags → startAgent; SIGTERM/SIGINT drain. Flags carry
// the AWS agent's names where they mean the same thing.
import { fromNodeProviderChain } from '@aws-sdk/credential-providers';
import { InvalidArgumentError, type Command } from 'commander';
import { AGENT_IPV4, AGENT_IPV6, startAgent } from '../agent/server.js';
import { createLogger } from '../lib/logger.js';
import { exitOnSignals } from './shutdown.js';

interface AgentFlags {
  clusterName: string;
  endpoint?: string;
  region?: string;
  port: number;
  probePort: number;
  probeAddress: string;
  metricsPort: number;
  metricsAddress: string;
  bindHosts: string[];
  allowLoopback: boolean;
  maxCacheSize: number;
  maxServiceQps: number;
  nodeName?: string;
  rateLimit: number;
  rateLimitBurst: number;
  upstreamTimeout: number;
  logLevel?: string;
}

function integer(min: number, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`expected an integer from ${min} to ${max}`);
    return n;
  };
}

function positive(value: string): number {
  const n = Number(value);
  if (!(n > 0) || !Number.isFinite(n)) throw new InvalidArgumentError('expected a number above 0');
  return n;
}

/** Repeatable and comma-separated: -b 169.254.170.23 -b [fd00:ec2::23] or -b 169.254.170.23,[fd00:ec2::23]. */
function collectHosts(value: string, previous: string[]): string[] {
  return [...previous, ...value.split(',').map((h) => h.trim()).filter(Boolean)];
}

export function registerAgentCommand(program: Command): void {
  program
    .command('agent')
    .description('run the node agent: the container-credentials endpoint AWS SDKs call (http://169.254.170.23/v1/credentials)')
    .requiredOption('-c, --cluster-name <name>', 'cluster whose associations apply (as configured on the server)')
    .option('--endpoint <url>', 'EKS Auth endpoint, e.g. http://pod-identity.pod-identity.svc:8080 (default https://eks-auth.<region>.api.aws)')
    .option('--region <region>', 'signing region (default AWS_REGION, AWS_DEFAULT_REGION, then us-east-1)')
    .option('-p, --port <port>', 'port of the credentials listeners', integer(0, 65535), 80)
    .option('-b, --bind-hosts <hosts>', `addresses to serve on, repeatable or comma-separated (default ${AGENT_IPV4} and [${AGENT_IPV6}])`, collectHosts, [])
    .option('--allow-loopback', 'allow serving on 127.0.0.1 / [::1] (laptops and tests)', false)
    .option('--probe-port <port>', '/healthz and /readyz port', integer(0, 65535), 2703)
    .option('--probe-address <address>', 'address of the probe listener', '127.0.0.1')
    .option('--metrics-port <port>', 'Prometheus /metrics port', integer(0, 65535), 2705)
    .option('--metrics-address <address>', 'address of the metrics listener', '0.0.0.0')
    .option('--max-cache-size <n>', 'credentials cached at most (least recently used go first); 0 turns caching off', integer(0, 1_000_000), 2000)
    .option('--max-service-qps <n>', 'background refreshes per second sent to EKS Auth', positive, 3)
    .option('--node-name <name>', 'this node, sent to EKS Auth as eksNodeName (default $NODE_NAME)')
    .option('--rate-limit <n>', 'requests per second each listener answers before 429', positive, 1000)
    .option('--rate-limit-burst <n>', 'burst of that limit', integer(1, 1_000_000), 1000)
    .option('--upstream-timeout <ms>', 'deadline of one EKS Auth attempt (retried up to 3 times)', integer(1, 60_000), 2000)
    .option('--log-level <level>', 'fatal, error, warn, info, debug, trace or silent')
    .addHelpText('after', '\nSigning keys for EKS Auth come from the AWS default credential chain (environment, shared files, web identity, IMDS).')
    .action(async (flags: AgentFlags) => {
      const logger = createLogger({ level: flags.logLevel, name: 'pod-identity-agent' });
      const region = flags.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1';
      let agent;
      try {
        agent = await startAgent(
          {
            clusterName: flags.clusterName,
            endpoint: flags.endpoint,
            region,
            bindHosts: flags.bindHosts.length > 0 ? flags.bindHosts : undefined,
            port: flags.port,
            allowLoopback: flags.allowLoopback,
            probePort: flags.probePort,
            probeAddress: flags.probeAddress,
            metricsPort: flags.metricsPort,
            metricsAddress: flags.metricsAddress,
            maxCacheSize: flags.maxCacheSize,
            maxServiceQps: flags.maxServiceQps,
            nodeName: flags.nodeName ?? (process.env.NODE_NAME || undefined),
            rateLimit: flags.rateLimit,
            rateLimitBurst: flags.rateLimitBurst,
            upstreamTimeoutMs: flags.upstreamTimeout,
          },
          { logger, credentials: fromNodeProviderChain() },
        );
      } catch (error) {
        logger.fatal({ err: error }, 'agent failed to start');
        logger.flush();
        console.error(`pod-identity agent: ${(error as Error).message}`);
        process.exit(1);
      }
      exitOnSignals(logger, () => agent.close());
    });
}
