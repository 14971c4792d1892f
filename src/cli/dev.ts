// `pod-identity dev` and `pod-identity dev token`: wiring only; see src/dev/.
import { fileURLToPath } from 'node:url';
import { Option, type Command } from 'commander';
import { connectKube } from '../kube/connect.js';
import { requestPodBoundToken } from '../kube/pod-token.js';
import { DEFAULT_STATE_DIR, devInstructions, startDev, writeDevToken, type DevOptions } from '../dev/dev.js';
import { POD_IDENTITY_AUDIENCE } from '../dev/token-signer.js';
import { createLogger } from '../lib/logger.js';
import { existingFile, integer, port, withExamples } from './options.js';
import { exitOnSignals } from './shutdown.js';

/** TokenRequest bound to a pod, as the kubelet asks for the projected volume. */
async function requestPodToken(kubeconfig: string, namespace: string, serviceAccount: string, podName: string, expirationSeconds: number): Promise<string> {
  const kube = connectKube(kubeconfig);
  try {
    return await requestPodBoundToken(kube, { namespace, serviceAccount, podName, audience: POD_IDENTITY_AUDIENCE, expirationSeconds });
  } finally {
    await kube.close();
  }
}

export function registerDevCommand(program: Command): void {
  const dev = withExamples(
    program
      .command('dev')
      .description('run everything on loopback for a laptop: server (SQLite, local issuer), agent and a development token signer'),
    'pod-identity dev',
    'pod-identity dev --console-listen 127.0.0.1:8443   # the admin console on a port of your choice',
    'pod-identity dev --state-dir /tmp/pi --kubeconfig ~/.kube/config --issuer aws-sts --sts-endpoint http://127.0.0.1:5000',
  )
    .addOption(new Option('--state-dir <dir>', 'where the store, keys and tokens live').default(DEFAULT_STATE_DIR))
    .option('--listen <host:port>', 'EKS API, EKS Auth and STS listener', '127.0.0.1:8080')
    .option('--webhook-listen <host:port>', 'admission webhook listener (TLS)', '127.0.0.1:9443')
    .option('--metrics-listen <host:port>', 'metrics and health listener', '127.0.0.1:9090')
    .option('--console-listen <host:port>', 'admin console listener (port 0: a free one; the banner prints its URL)', '127.0.0.1:0')
    .option('--agent-port <port>', 'port of the agent on 127.0.0.1', port, 8090)
    .option('--region <region>', 'region of ARNs and signing', 'us-east-1')
    .option('--account-id <id>', 'account id of ARNs', '000000000000')
    .addOption(new Option('--issuer <type>', 'credential issuer').choices(['local', 'aws-sts']).default('local'))
    .option('--sts-endpoint <url>', 'STS endpoint for --issuer aws-sts (default: AWS)')
    .option('--kubeconfig <file>', "verify a real cluster's tokens (TokenReview) instead of the development signer", existingFile)
    .option('--log-level <level>', 'fatal, error, warn, info, debug, trace or silent', 'warn')
    .action(
      async (flags: DevOptions) => {
        const logger = createLogger({ level: flags.logLevel, name: 'pod-identity-dev' });
        const running = await startDev(flags, logger);
        process.stdout.write(devInstructions(running, fileURLToPath(new URL('./main.js', import.meta.url)), flags.region));
        exitOnSignals(logger, () => running.close());
      },
    );

  withExamples(
    dev
      .command('token')
      .description('write a pod-bound service-account token for a service account (for the environment `dev` prints)')
      .requiredOption('-n, --namespace <ns>', 'namespace of the service account')
      .requiredOption('-s, --service-account <name>', 'service account')
      .option('--pod <name>', 'pod the token is bound to (required when dev runs against a cluster)')
      .option('--expiration-seconds <n>', 'token lifetime', integer(600, 2 ** 32), 86400)
      .addOption(new Option('--state-dir <dir>', 'state directory of the running dev').default(DEFAULT_STATE_DIR)),
    'pod-identity dev token --state-dir ./.pod-identity -n default -s demo',
  )
    .action(async (flags: { namespace: string; serviceAccount: string; pod?: string; expirationSeconds: number; stateDir: string }) => {
      const file = await writeDevToken(flags.stateDir, flags, (kubeconfig) =>
        requestPodToken(kubeconfig, flags.namespace, flags.serviceAccount, flags.pod!, flags.expirationSeconds),
      );
      process.stdout.write(`${file}\n`);
    });
}
