// `pod-identity doctor`: flags → which link of the chain breaks (src/doctor/).
// Dev mode (--state-dir) takes the keys, endpoints and token signer `dev`
// left there; otherwise the association API's connection options, a node key
// and the cluster's kubeconfig come from flags.
import { resolve } from 'node:path';
import { CoreV1Api } from '@kubernetes/client-node';
import type { Command } from 'commander';
import type { Pod } from '../api/admission.js';
import { DEV_CLUSTER, readDevState } from '../dev/dev.js';
import { openDevSigner } from '../dev/token-signer.js';
import type { CheckResult } from '../doctor/checks.js';
import { runDoctor, type PodAccess } from '../doctor/doctor.js';
import { connectKube, describeKubeError, refusedStatus, type KubeApi } from '../kube/connect.js';
import { requestPodBoundToken } from '../kube/pod-token.js';
import { withConnection, withEks, type ConnectionFlags } from './eks-client.js';
import { CliError } from './fail.js';
import { endpointUrl, withExamples } from './options.js';
import { outputOption } from './output.js';

interface DoctorFlags extends ConnectionFlags {
  clusterName?: string;
  namespace: string;
  serviceAccount: string;
  pod?: string;
  kubeconfig?: string;
  stateDir?: string;
  nodeAccessKeyId?: string;
  nodeSecretAccessKey?: string;
  agentUrl?: string;
  stsEndpoint?: string;
  output: 'text' | 'json';
}

function kubeconfigPath(value: string): string {
  return value === 'in-cluster' ? value : resolve(value);
}

/** The cluster as doctor reads it: the pod, and the token the kubelet would request for it. */
function podAccess(kube: KubeApi): PodAccess {
  const core = kube.client(CoreV1Api, { timeoutMs: 10_000 });
  return {
    async readPod(namespace, name) {
      try {
        return (await core.readNamespacedPod({ namespace, name })) as unknown as Pod;
      } catch (error) {
        if (refusedStatus(error) === 404) return undefined;
        throw new CliError(`cannot read pod ${namespace}/${name}: ${describeKubeError(error)}`);
      }
    },
    podToken: (namespace, serviceAccount, podName, audience, expirationSeconds) => requestPodBoundToken(kube, { namespace, serviceAccount, podName, audience, expirationSeconds }),
  };
}

const MARK: Record<CheckResult['status'], string> = { passed: 'passed ', failed: 'FAILED ', skipped: 'skipped' };

function printLine(result: CheckResult): void {
  process.stdout.write(`${MARK[result.status]}  ${result.title}: ${result.detail}\n`);
  if (result.fix) process.stdout.write(`         fix: ${result.fix}\n`);
}

export function registerDoctorCommand(program: Command): void {
  withExamples(
    withConnection(
      program
        .command('doctor')
        .description('find which link of the chain keeps a pod from getting credentials: association, webhook, pod, token, EKS Auth, agent, STS, trust policy')
        .option('-c, --cluster-name <name>', 'cluster of the service account (dev mode: dev)')
        .requiredOption('-n, --namespace <ns>', 'namespace of the service account')
        .requiredOption('-s, --service-account <name>', 'the service account')
        .option('--pod <name>', 'a real pod of that service account (checked with --kubeconfig)')
        .option('--kubeconfig <file>', 'the cluster, to read the pod and request the token its kubelet would get (a file, or in-cluster)', kubeconfigPath)
        .option('--state-dir <dir>', "dev mode: the state directory `pod-identity dev` printed (keys, endpoints, its token signer)"),
    )
      .option('--node-access-key-id <id>', 'a node key (the server’s nodes[]), to call EKS Auth directly')
      .option('--node-secret-access-key <secret>', 'its secret')
      .option('--agent-url <url>', 'the agent’s credentials URL, when this machine reaches it (doctor run on the node: http://169.254.170.23/v1/credentials)', endpointUrl)
      .option('--sts-endpoint <url>', 'STS endpoint for GetCallerIdentity when the server’s aws-sts issuer names none', endpointUrl)
      .addOption(outputOption(['text', 'json']))
      .addHelpText('after', '\nIt stops at the first failed check and prints the fix; exit 0 only when no check failed.'),
    'pod-identity doctor --state-dir ./.pod-identity -n default -s demo',
    'pod-identity doctor -c my-cluster -n shop -s checkout --pod checkout-7d9f --kubeconfig ~/.kube/config --endpoint https://pod-identity.example.com:8080 --node-access-key-id AKIA… --node-secret-access-key …',
  ).action(async (flags: DoctorFlags) => {
    const dev = flags.stateDir === undefined ? undefined : readDevState(resolve(flags.stateDir));
    if (flags.stateDir !== undefined && !dev) throw new CliError(`${resolve(flags.stateDir)} holds no dev state: give the --state-dir that pod-identity dev printed`);
    const clusterName = flags.clusterName ?? (dev ? DEV_CLUSTER : undefined);
    if (!clusterName) throw new CliError("required option '-c, --cluster-name <name>' not specified");
    const connection: ConnectionFlags = dev
      ? { endpoint: dev.apiUrl ?? flags.endpoint, region: dev.region ?? flags.region, accessKeyId: flags.accessKeyId ?? dev.keys.admin.accessKeyId, secretAccessKey: flags.secretAccessKey ?? dev.keys.admin.secretAccessKey }
      : flags;
    if (!connection.accessKeyId || !connection.secretAccessKey) throw new CliError('doctor needs the admin keys: pass --access-key-id and --secret-access-key (dev mode: --state-dir)');
    if ((flags.nodeAccessKeyId === undefined) !== (flags.nodeSecretAccessKey === undefined)) throw new CliError('--node-access-key-id and --node-secret-access-key go together');
    const nodeKey = flags.nodeAccessKeyId ? { accessKeyId: flags.nodeAccessKeyId, secretAccessKey: flags.nodeSecretAccessKey! } : dev?.keys.node;
    const kubeconfig = flags.kubeconfig ?? dev?.kubeconfig;
    const kube = kubeconfig ? connectKube(kubeconfig) : undefined;
    const signer = dev && !dev.kubeconfig && flags.stateDir ? await openDevSigner(resolve(flags.stateDir)) : undefined;
    try {
      const results = await withEks(connection, (eks) =>
        runDoctor(
          { clusterName, namespace: flags.namespace, serviceAccount: flags.serviceAccount, ...(flags.pod && { pod: flags.pod }) },
          {
            eks,
            endpoint: connection.endpoint,
            region: connection.region,
            adminKey: { accessKeyId: connection.accessKeyId!, secretAccessKey: connection.secretAccessKey! },
            ...(nodeKey && { nodeKey }),
            ...((flags.agentUrl ?? dev?.agentUrl) && { agentUrl: flags.agentUrl ?? dev!.agentUrl! }),
            ...(kube && { pods: podAccess(kube) }),
            ...(signer && { devToken: (namespace: string, serviceAccount: string) => signer.mint({ namespace, serviceAccount }) }),
            ...(flags.stsEndpoint && { stsEndpoint: flags.stsEndpoint }),
            ...(flags.output === 'text' && { onResult: printLine }),
          },
        ),
      );
      const failed = results.some((r) => r.status === 'failed');
      if (flags.output === 'json') process.stdout.write(`${JSON.stringify({ ok: !failed, checks: results }, null, 2)}\n`);
      else process.stdout.write(failed ? 'a check failed: fix it, then run doctor again\n' : 'every check passed\n');
      if (failed) process.exitCode = 1;
    } finally {
      await kube?.close();
    }
  });
}
