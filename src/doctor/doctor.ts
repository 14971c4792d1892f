// `pod-identity doctor`: which link of the chain breaks when a pod gets no
// credentials. In order: the association; what the webhook would do to the
// pod (the server's own decision); whether the pod carries that mutation; the
// token the kubelet would project (its audience and claims); issuance
// through EKS Auth, then through the agent the pod calls; GetCallerIdentity
// with what was issued; and, with the aws-sts issuer, whether the role trusts
// the server's principal. It stops at the first failure, with the fix.
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { paginateListPodIdentityAssociations, type EKSClient } from '@aws-sdk/client-eks';
import type { AwsCredentialIdentity } from '@smithy/types';
import type { PatchOperation, Pod } from '../api/admission.js';
import { decodeAssumeRoleResponse, decodeErrorResponse } from '../api/eks-auth.js';
import { signRequest } from '../lib/sigv4.js';
import { fixForIssuance, missingMutation, POD_IDENTITY_AUDIENCE, projectedToken, tokenFacts, tokenProblem, type CheckResult } from './checks.js';

export interface DoctorSubject {
  clusterName: string;
  namespace: string;
  serviceAccount: string;
  /** a real pod of that service account */
  pod?: string;
}

/** Where doctor gets the real pod and a token the kubelet would get for it. */
export interface PodAccess {
  readPod(namespace: string, name: string): Promise<Pod | undefined>;
  /** a token bound to the pod, as the kubelet requests it for the projected volume */
  podToken(namespace: string, serviceAccount: string, pod: string, audience: string, expirationSeconds: number): Promise<string>;
}

export interface DoctorOptions {
  /** the association API with admin keys */
  eks: EKSClient;
  endpoint: string;
  region: string;
  adminKey: AwsCredentialIdentity;
  /** a node key, to call EKS Auth directly */
  nodeKey?: AwsCredentialIdentity;
  /** the agent's credentials URL, when this machine reaches it (dev mode, or doctor run on the node) */
  agentUrl?: string;
  /** the cluster, through its kubeconfig */
  pods?: PodAccess;
  /** dev mode: mints the token the development signer would give the pod */
  devToken?: (namespace: string, serviceAccount: string) => Promise<string>;
  /** where GetCallerIdentity goes when the server's issuer is aws-sts without an STS endpoint of its own */
  stsEndpoint?: string;
  /** progress, one line per check as it finishes */
  onResult?: (result: CheckResult) => void;
}

interface Diagnosis {
  association: {
    associationId: string;
    namespace: string;
    serviceAccount: string;
    roleArn: string;
    targetRoleArn?: string;
    sessionTags?: Record<string, string>;
    sessionNameTemplate?: string;
    transitiveSessionTags?: boolean;
  } | null;
  admission: { mutated: boolean; reason: string; patch?: PatchOperation[] };
  issuer: {
    type: 'local' | 'aws-sts';
    stsEndpoint?: string;
    principalArn?: string;
    principalError?: string;
    roles?: ({ roleArn: string; principalArn: string } & ({ readable: true; assumeRole: boolean; tagSession: boolean; notes: string[] } | { readable: false; reason: string }))[];
  };
}

interface Issued {
  credentials: AwsCredentialIdentity;
  via: string;
}

const TIMEOUT_MS = 5_000;

/** A SigV4-signed JSON request, answered with its status and body. */
async function signedJson(url: URL, body: string, key: AwsCredentialIdentity, region: string, service: string): Promise<{ status: number; headers: Record<string, string>; body: Buffer }> {
  const headers = await signRequest({ method: 'POST', url, headers: { 'content-type': 'application/json' }, body }, { credentials: key, region, service });
  const res = await fetch(url, { method: 'POST', headers, body, signal: AbortSignal.timeout(TIMEOUT_MS) });
  return { status: res.status, headers: Object.fromEntries(res.headers), body: Buffer.from(await res.arrayBuffer()) };
}

function describeFailure(error: unknown): string {
  const e = error as { name?: string; message?: string; cause?: { code?: string } };
  return e.cause?.code ? `${e.cause.code}` : `${e.name ?? 'Error'}: ${e.message ?? ''}`.trim();
}

/** Which association matched (a pattern says so), where it maps, and what it adds to the session. */
function describeMatch(association: NonNullable<Diagnosis['association']>, namespace: string, serviceAccount: string): string {
  const pattern = association.namespace !== namespace || association.serviceAccount !== serviceAccount ? ` (pattern ${association.namespace}/${association.serviceAccount})` : '';
  const role = association.targetRoleArn ? `${association.roleArn} → ${association.targetRoleArn}` : association.roleArn;
  const extras = [
    association.sessionTags && `session tags ${Object.entries(association.sessionTags).map(([k, v]) => `${k}=${v}`).join(', ')}`,
    association.sessionNameTemplate && `session name ${association.sessionNameTemplate}`,
    association.transitiveSessionTags === false && 'tags not transitive',
  ].filter(Boolean);
  return `${association.associationId}${pattern} maps ${namespace}/${serviceAccount} to ${role}${extras.length > 0 ? `; ${extras.join('; ')}` : ''}`;
}

export async function runDoctor(subject: DoctorSubject, options: DoctorOptions): Promise<CheckResult[]> {
  const { clusterName, namespace, serviceAccount } = subject;
  const results: CheckResult[] = [];
  const record = (result: CheckResult): boolean => {
    results.push(result);
    options.onResult?.(result);
    return result.status !== 'failed';
  };
  const context = { clusterName, namespace, serviceAccount };

  // 1. the association (a list for one service account answers the one that applies, exact or pattern)
  let found: { associationId?: string } | undefined;
  for await (const page of paginateListPodIdentityAssociations({ client: options.eks, pageSize: 100 }, { clusterName, namespace, serviceAccount })) {
    found ??= page.associations?.[0];
  }
  // The server's own view: its association, its webhook's decision, its issuer.
  let real: Pod | undefined;
  if (subject.pod && options.pods) real = await options.pods.readPod(namespace, subject.pod);
  const answer = await signedJson(
    new URL(`${options.endpoint}/clusters/${encodeURIComponent(clusterName)}/diagnostics`),
    // Without a real pod the server asks about a minimal one of the service account.
    JSON.stringify({ namespace, serviceAccount, ...(real && { pod: real }) }),
    options.adminKey,
    options.region,
    'eks',
  );
  if (answer.status !== 200) throw decodeErrorResponse(answer);
  const diagnosis = JSON.parse(answer.body.toString('utf8')) as Diagnosis;
  const association = diagnosis.association;
  if (
    !record(
      association && found
        ? { check: 'association', title: 'the association exists', status: 'passed', detail: describeMatch(association, namespace, serviceAccount) }
        : {
            check: 'association',
            title: 'the association exists',
            status: 'failed',
            detail: `no association for ${namespace}/${serviceAccount} in cluster ${clusterName}`,
            fix: fixForIssuance('ResourceNotFoundException', context),
          },
    )
  )
    return results;
  const roleArn = association!.targetRoleArn ?? association!.roleArn;

  // 2. what the webhook would do
  const what = real ? `pod ${namespace}/${subject.pod}` : `a new pod of ${serviceAccount}`;
  const alreadyMutated = diagnosis.admission.reason === 'already-injected';
  if (
    !record(
      diagnosis.admission.mutated || alreadyMutated
        ? { check: 'webhook', title: 'the webhook mutates the pod', status: 'passed', detail: alreadyMutated ? `${what} already carries the mutation` : `${what} gets the token volume and the credential variables` }
        : {
            check: 'webhook',
            title: 'the webhook mutates the pod',
            status: 'failed',
            detail: `the webhook would leave ${what} alone: ${diagnosis.admission.reason}`,
            fix:
              diagnosis.admission.reason === 'skip-label'
                ? 'remove the label eks.amazonaws.com/skip-pod-identity-webhook from the pod'
                : diagnosis.admission.reason.startsWith('the webhook serves')
                  ? `${diagnosis.admission.reason}: set webhook.clusterName, or run a server for this cluster`
                  : 'see the reason above',
          },
    )
  )
    return results;

  // 3. whether the pod carries the mutation
  if (!subject.pod) {
    record({ check: 'pod', title: 'the pod carries the mutation', status: 'skipped', detail: 'no pod named (--pod)' });
  } else if (!options.pods) {
    record({ check: 'pod', title: 'the pod carries the mutation', status: 'skipped', detail: 'no cluster access (--kubeconfig)' });
  } else if (!real) {
    record({
      check: 'pod',
      title: 'the pod carries the mutation',
      status: 'failed',
      detail: `pod ${namespace}/${subject.pod} does not exist`,
      fix: `name a running pod of ${serviceAccount}: kubectl -n ${namespace} get pods -o custom-columns=NAME:.metadata.name,SA:.spec.serviceAccountName`,
    });
    return results;
  } else {
    const missing = missingMutation(real);
    if (
      !record(
        missing.length === 0
          ? { check: 'pod', title: 'the pod carries the mutation', status: 'passed', detail: `pod ${namespace}/${subject.pod} has the label, the volume and the variables` }
          : {
              check: 'pod',
              title: 'the pod carries the mutation',
              status: 'failed',
              detail: `pod ${namespace}/${subject.pod} lacks ${missing.join('; ')}`,
              fix: 'the pod was created before its association (or the webhook was not called): delete it so that its controller makes a new one; check the MutatingWebhookConfiguration (pod-identity webhook-config)',
            },
      )
    )
      return results;
  }

  // 4. the token
  let token: string | undefined;
  const projected = real ? projectedToken(real) : undefined;
  try {
    if (options.devToken && !subject.pod) token = await options.devToken(namespace, serviceAccount);
    else if (subject.pod && options.pods && real) token = await options.pods.podToken(namespace, serviceAccount, subject.pod, projected?.audience ?? POD_IDENTITY_AUDIENCE, Math.max(600, projected?.expirationSeconds ?? 3600));
  } catch (error) {
    record({ check: 'token', title: "the pod's token is one EKS Auth accepts", status: 'failed', detail: `no token: ${describeFailure(error)}`, fix: 'check the kubeconfig allows serviceaccounts/token create' });
    return results;
  }
  if (!token) {
    record({ check: 'token', title: "the pod's token is one EKS Auth accepts", status: 'skipped', detail: 'no token to check without --pod and --kubeconfig (or dev mode)' });
    return results;
  }
  const problem = tokenProblem(tokenFacts(token), namespace, serviceAccount);
  if (
    !record(
      problem === undefined
        ? { check: 'token', title: "the pod's token is one EKS Auth accepts", status: 'passed', detail: `audience ${POD_IDENTITY_AUDIENCE}, subject system:serviceaccount:${namespace}:${serviceAccount}, bound to its pod` }
        : {
            check: 'token',
            title: "the pod's token is one EKS Auth accepts",
            status: 'failed',
            detail: `the token is refused: ${problem}`,
            fix: problem.includes('audience') ? `the pod's eks-pod-identity-token volume must request audience ${POD_IDENTITY_AUDIENCE}: another webhook or a hand-made volume set it; recreate the pod` : 'see above',
          },
    )
  )
    return results;

  // 5. issuance through EKS Auth, then through the agent
  let issued: Issued | undefined;
  if (options.nodeKey) {
    const url = new URL(`${options.endpoint}/clusters/${encodeURIComponent(clusterName)}/assume-role-for-pod-identity`);
    let response;
    try {
      response = await signedJson(url, JSON.stringify({ token }), options.nodeKey, options.region, 'eks-auth');
    } catch (error) {
      record({ check: 'eks-auth', title: 'EKS Auth issues credentials', status: 'failed', detail: `${options.endpoint} did not answer: ${describeFailure(error)}`, fix: 'is the server running there?' });
      return results;
    }
    const ok = response.status === 200 ? decodeAssumeRoleResponse(response.body) : undefined;
    if (ok) {
      issued = { credentials: { accessKeyId: ok.credentials.accessKeyId, secretAccessKey: ok.credentials.secretAccessKey, sessionToken: ok.credentials.sessionToken }, via: 'EKS Auth' };
      record({ check: 'eks-auth', title: 'EKS Auth issues credentials', status: 'passed', detail: `credentials for ${ok.assumedRoleUser.arn}` });
    } else {
      const error = decodeErrorResponse(response);
      record({ check: 'eks-auth', title: 'EKS Auth issues credentials', status: 'failed', detail: `${error.code}: ${error.message}`, fix: trustFix(diagnosis, fixForIssuance(error.code, { ...context, roleArn })) });
      return results;
    }
  } else {
    record({ check: 'eks-auth', title: 'EKS Auth issues credentials', status: 'skipped', detail: 'no node key (--node-access-key-id, --node-secret-access-key); the agent is asked instead' });
  }
  if (options.agentUrl) {
    let response: Response;
    try {
      response = await fetch(options.agentUrl, { headers: { authorization: token }, signal: AbortSignal.timeout(TIMEOUT_MS) });
    } catch (error) {
      record({
        check: 'agent',
        title: 'the agent serves credentials',
        status: 'failed',
        detail: `the agent at ${options.agentUrl} does not answer: ${describeFailure(error)}`,
        fix: "is the pod-identity agent running on the pod's node (kubectl get pods -A -l app.kubernetes.io/component=agent -o wide), and does this machine reach it? Run doctor on that node, or give --agent-url",
      });
      return results;
    }
    const body = (await response.json().catch(() => ({}))) as { AccessKeyId?: string; SecretAccessKey?: string; Token?: string; Code?: string; Message?: string };
    if (response.status === 200 && body.AccessKeyId && body.SecretAccessKey && body.Token) {
      issued = { credentials: { accessKeyId: body.AccessKeyId, secretAccessKey: body.SecretAccessKey, sessionToken: body.Token }, via: 'the agent' };
      record({ check: 'agent', title: 'the agent serves credentials', status: 'passed', detail: `${options.agentUrl} answered credentials` });
    } else {
      const code = body.Code ?? `HTTP ${response.status}`;
      record({ check: 'agent', title: 'the agent serves credentials', status: 'failed', detail: `${options.agentUrl} answered ${response.status} ${code}: ${body.Message ?? ''}`.trim(), fix: trustFix(diagnosis, fixForIssuance(code, { ...context, roleArn })) });
      return results;
    }
  } else {
    record({ check: 'agent', title: 'the agent serves credentials', status: 'skipped', detail: 'the agent is not reachable from here (give --agent-url when doctor runs on the node)' });
  }
  if (!issued) return results;

  // 6. GetCallerIdentity with what was issued
  const stsEndpoint = diagnosis.issuer.type === 'local' ? options.endpoint : (diagnosis.issuer.stsEndpoint ?? options.stsEndpoint);
  const sts = new STSClient({ region: options.region, credentials: issued.credentials, maxAttempts: 1, ...(stsEndpoint && { endpoint: stsEndpoint }) });
  try {
    const identity = await sts.send(new GetCallerIdentityCommand({}));
    if (!record({ check: 'caller-identity', title: 'the credentials work', status: 'passed', detail: `GetCallerIdentity through ${issued.via}'s credentials: ${identity.Arn}` })) return results;
  } catch (error) {
    record({ check: 'caller-identity', title: 'the credentials work', status: 'failed', detail: `GetCallerIdentity failed: ${describeFailure(error)}`, fix: 'the credentials were issued but STS refuses them: check the issuer (issuer.type, issuer.stsEndpoint)' });
    return results;
  } finally {
    sts.destroy();
  }

  // 7. aws-sts: the role's trust policy
  if (diagnosis.issuer.type !== 'aws-sts') {
    record({ check: 'trust', title: "the role trusts the server's principal", status: 'skipped', detail: 'the local issuer assumes no role' });
    return results;
  }
  record(trustResult(diagnosis));
  return results;
}

function trustResult(diagnosis: Diagnosis): CheckResult {
  const title = "the role trusts the server's principal";
  if (diagnosis.issuer.principalError) return { check: 'trust', title, status: 'skipped', detail: diagnosis.issuer.principalError };
  for (const role of diagnosis.issuer.roles ?? []) {
    if (!role.readable) return { check: 'trust', title, status: 'skipped', detail: `cannot read ${role.roleArn}: ${role.reason}` };
    if (!role.assumeRole || !role.tagSession) {
      const missing = [!role.assumeRole && 'sts:AssumeRole', !role.tagSession && 'sts:TagSession'].filter(Boolean).join(' and ');
      return { check: 'trust', title, status: 'failed', detail: `${role.roleArn} does not allow ${missing} to ${role.principalArn}`, fix: `pod-identity trust-policy --role-arn ${role.roleArn} --principal-arn ${role.principalArn}` };
    }
  }
  const notes = (diagnosis.issuer.roles ?? []).flatMap((r) => (r.readable ? r.notes : []));
  return { check: 'trust', title, status: 'passed', detail: `${(diagnosis.issuer.roles ?? []).map((r) => r.roleArn).join(', ')} trust ${diagnosis.issuer.principalArn}${notes.length ? ` (${notes.join('; ')})` : ''}` };
}

/** An issuance refusal's fix, sharpened by what the server found in the role's trust policy. */
function trustFix(diagnosis: Diagnosis, fallback: string): string {
  const verdict = trustResult(diagnosis);
  return verdict.status === 'failed' ? `${verdict.detail}: ${verdict.fix}` : fallback;
}
