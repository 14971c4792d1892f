// `pod-identity agent`: flags → startAgent; SIGTERM/SIGINT drain. Flags carry
// the AWS agent's names (and short flags) where they mean the same thing.
import { Option, type Command } from 'commander';
import { AGENT_IPV4, AGENT_IPV6, startAgent } from '../agent/server.js';
import { signingKeysProvider } from '../agent/signing-keys.js';
import { createLogger } from '../lib/logger.js';
import { CliError, oneLine } from './fail.js';
import { clusterNameOption, defaultNote, endpointUrl, integer, port, positiveNumber, withExamples } from './options.js';
import { exitOnSignals } from './shutdown.js';

interface AgentFlags {
  clusterName: string;
  endpoint?: string;
  caBundle?: string;
  allowInsecureHttpEndpoint: boolean;
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
  warmUp: boolean;
  logLevel?: string;
}

/** Repeatable and comma-separated: -b 169.254.170.23 -b [fd00:ec2::23] or -b 169.254.170.23,[fd00:ec2::23]. */
function collectHosts(value: string, previous: string[]): string[] {
  return [...previous, ...value.split(',').map((h) => h.trim()).filter(Boolean)];
}

export function registerAgentCommand(program: Command): void {
  withExamples(
    program
      .command('agent')
      .description('run the node agent: the container-credentials endpoint AWS SDKs call (http://169.254.170.23/v1/credentials)')
      .addOption(clusterNameOption('cluster whose associations apply (as configured on the server)'))
      .option('--endpoint <url>', `EKS Auth endpoint, e.g. https://pod-identity-server.pod-identity.svc:8080 ${defaultNote('https://eks-auth.<region>.api.aws')}`, endpointUrl)
      .addOption(new Option('--ca-bundle <file>', "PEM file of the CAs the endpoint's certificate must chain to (default: the system's roots)").env('AWS_CA_BUNDLE'))
      .option('--allow-insecure-http-endpoint', 'accept a plain-http --endpoint: role credentials then cross the network unencrypted (laptops, tests)', false)
      .option('--region <region>', `signing region ${defaultNote('$AWS_REGION, $AWS_DEFAULT_REGION, then us-east-1')}`)
      .option('-p, --port <port>', 'port of the credentials listeners', port, 80)
      .option('-b, --bind-hosts <hosts>', `addresses to serve on, repeatable or comma-separated ${defaultNote(`${AGENT_IPV4} and [${AGENT_IPV6}]`)}`, collectHosts, [])
      .option('--allow-loopback', 'allow serving on 127.0.0.1 / [::1] (laptops and tests)', false)
      .option('--probe-port <port>', '/healthz and /readyz port', port, 2703)
      .option('--probe-address <address>', 'address of the probe listener', '127.0.0.1')
      .option('--metrics-port <port>', 'Prometheus /metrics port', port, 2705)
      .option('--metrics-address <address>', 'address of the metrics listener', '0.0.0.0')
      .option('--max-cache-size <n>', 'credentials cached at most (least recently used go first); 0 turns caching off', integer(0, 1_000_000), 2000)
      .option('--max-service-qps <n>', 'background refreshes per second sent to EKS Auth', positiveNumber, 3)
      .option('--node-name <name>', `this node, sent to EKS Auth as eksNodeName ${defaultNote('$NODE_NAME')}`)
      .option('--rate-limit <n>', 'requests per second each listener answers before 429', positiveNumber, 1000)
      .option('--rate-limit-burst <n>', 'burst of that limit', integer(1, 1_000_000), 1000)
      .option('--upstream-timeout <ms>', 'deadline of one EKS Auth attempt (retried up to 3 times)', integer(1, 60_000), 2000)
      .option('--no-warm-up', 'serve at once, without first running the cold-request path on loopback and opening connections to EKS Auth (about 0.3 s and a few MiB; the first pods then find a cold agent)')
      .option('--log-level <level>', `fatal, error, warn, info, debug, trace or silent ${defaultNote('info')}`)
      .addHelpText('after', '\nSigning keys for EKS Auth come from the AWS default credential chain (environment, shared files, web identity, IMDS).'),
    'pod-identity agent -c my-cluster --endpoint https://pod-identity-server.pod-identity.svc:8080 --ca-bundle /etc/pod-identity/ca/ca.crt',
    'pod-identity agent -c dev --endpoint http://127.0.0.1:8080 --allow-insecure-http-endpoint -b 127.0.0.1 --allow-loopback -p 8090',
  ).action(async (flags: AgentFlags) => {
    const logger = createLogger({ level: flags.logLevel, name: 'pod-identity-agent' });
    const region = flags.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1';
    let agent;
    try {
      agent = await startAgent(
        {
          clusterName: flags.clusterName,
          endpoint: flags.endpoint,
          caBundleFile: flags.caBundle,
          allowInsecureHttpEndpoint: flags.allowInsecureHttpEndpoint,
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
          warmUp: flags.warmUp,
        },
        { logger, credentials: signingKeysProvider() },
      );
    } catch (error) {
      logger.fatal({ reason: oneLine(error) }, 'agent failed to start');
      logger.flush();
      throw new CliError(`cannot start: ${oneLine(error)}`);
    }
    exitOnSignals(logger, () => agent.close());
  });
}
