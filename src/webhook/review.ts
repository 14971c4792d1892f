// One admission review, without HTTP: decode the AdmissionReview, decide (one
// store read of the exact and pattern associations, plus a cached ServiceAccount read when the
// token-expiration annotation may matter), encode the answer. Every path ends
// in `allowed: true`: a review we cannot read or a store that fails admits the
// pod unmutated, with a warning, exactly as failurePolicy Ignore would.
import { decodeReview, encodeAnswer, notForUs, podOf, type AdmissionAnswer, type Pod } from '../api/admission.js';
import { findAssociation } from '../associations/resolve.js';
import type { AssociationStore } from '../associations/store.js';
import type { Logger } from '../lib/logger.js';
import { hasSkipLabel, mutatePod, podServiceAccount, type MutationResult } from './mutate.js';
import type { ServiceAccountLookup } from './service-accounts.js';

export interface ReviewOptions {
  store: AssociationStore;
  /** the cluster this webhook serves; undefined means mutate nothing */
  clusterName: string | undefined;
  ipv6: boolean;
  /** injected as AWS_REGION / AWS_DEFAULT_REGION when set */
  region?: string;
  /** reads the ServiceAccount's annotations (the cluster's API access); without it the defaults below apply */
  serviceAccounts?: ServiceAccountLookup;
  /** webhook.tokenExpirationSeconds */
  defaultTokenExpirationSeconds?: number;
  /** webhook.stsRegionalEndpoints */
  stsRegionalEndpoints?: boolean;
  logger: Logger;
  /** answer without a patch when the decision takes longer than this (default 2 s, well inside the API server's timeout) */
  decisionTimeoutMs?: number;
}

export type Outcome = 'mutated' | 'skipped' | 'error';

export interface Decision {
  outcome: Outcome;
  /** the association that matched (exact or pattern), when one did */
  association?: { associationId: string; namespace: string; serviceAccount: string };
  result?: MutationResult;
  warnings?: string[];
  reason: string;
}

/** Which pod an admission was for, in its log lines. */
export interface AdmissionSubject {
  namespace: string;
  serviceAccount: string;
  pod: string;
}

export interface Reviewed {
  answer: AdmissionAnswer;
  decision: Decision;
  subject?: AdmissionSubject;
}

function withDeadline<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no decision within ${ms} ms`)), ms);
  });
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
}

/**
 * The log fields of one admission, written out rather than `{ ...subject, uid }`:
 * a literal that starts with a spread and then adds fields built a new hidden
 * class on every call on V8 (measured on Node 20's, ~2 µs a field).
 */
export function admissionLog(subject: AdmissionSubject | undefined, uid: string, extra: { err?: string; reason?: string } = {}) {
  return { namespace: subject?.namespace, serviceAccount: subject?.serviceAccount, pod: subject?.pod, uid, err: extra.err, reason: extra.reason };
}

/**
 * What the webhook decides for one pod of a namespace: the same decision for
 * an admission and for `pod-identity doctor`'s question "what would the
 * webhook do to this pod?".
 */
export function createDecider(options: ReviewOptions): (pod: Pod, namespace: string) => Promise<Decision> {
  const { store, clusterName } = options;
  return async function decide(pod, namespace) {
    if (hasSkipLabel(pod)) return { outcome: 'skipped', result: { mutated: false, reason: 'skip-label' }, reason: 'skip-label' };
    if (!clusterName) return { outcome: 'skipped', reason: 'no cluster configured for the webhook' };
    const serviceAccount = podServiceAccount(pod);
    if (serviceAccount === undefined) return { outcome: 'skipped', result: { mutated: false, reason: 'no-service-account' }, reason: 'no-service-account' };
    // the same resolver as EKS Auth: a pod is mutated exactly when it can get credentials
    const association = await findAssociation(store, { clusterName, namespace, serviceAccount });
    const serviceAccountAnnotations = association && options.serviceAccounts ? await options.serviceAccounts(namespace, serviceAccount) : undefined;
    const result = mutatePod(pod, association, {
      ipv6: options.ipv6,
      region: options.region,
      serviceAccountAnnotations,
      defaultTokenExpirationSeconds: options.defaultTokenExpirationSeconds,
      stsRegionalEndpoints: options.stsRegionalEndpoints,
    });
    const matched = association && { associationId: association.associationId, namespace: association.namespace, serviceAccount: association.serviceAccount };
    return { outcome: result.mutated ? 'mutated' : 'skipped', result, reason: result.mutated ? 'mutated' : result.reason, ...(matched && { association: matched }) };
  };
}

/** The review function of one webhook: body in, answer (and what was decided) out; never throws. */
export function createReviewer(options: ReviewOptions): (body: Buffer) => Promise<Reviewed> {
  const { logger } = options;
  const decisionTimeoutMs = options.decisionTimeoutMs ?? 2_000;
  const decide = createDecider(options);

  return async function review(body) {
    const decoded = decodeReview(body);
    if (!decoded.ok) {
      const decision: Decision = { outcome: 'error', reason: decoded.problem, warnings: [`pod-identity webhook: ${decoded.problem}; admitted without changes`] };
      return { answer: encodeAnswer(decoded.envelope, undefined, decision.warnings), decision };
    }
    const { envelope, request } = decoded;
    const other = notForUs(request);
    if (other) return { answer: encodeAnswer(envelope), decision: { outcome: 'skipped', reason: other } };
    const pod = podOf(request);
    if (!pod) {
      const decision: Decision = { outcome: 'error', reason: 'no pod in the request', warnings: ['pod-identity webhook: the review carries no pod; admitted without changes'] };
      return { answer: encodeAnswer(envelope, undefined, decision.warnings), decision };
    }
    const namespace = request.namespace || pod.metadata?.namespace || 'default';
    const subject: AdmissionSubject = { namespace, serviceAccount: podServiceAccount(pod) ?? '', pod: pod.metadata?.name || pod.metadata?.generateName || '' };
    try {
      const decision = await withDeadline(decide(pod, namespace), decisionTimeoutMs);
      const patch = decision.result?.mutated ? decision.result.patch : undefined;
      return { answer: encodeAnswer(envelope, patch), decision, subject };
    } catch (error) {
      logger.error(admissionLog(subject, envelope.uid, { err: (error as Error).message }), 'admission decision failed; pod admitted without pod identity');
      const decision: Decision = { outcome: 'error', reason: 'decision failed', warnings: ['pod-identity webhook: could not look up the pod identity association; admitted without AWS credentials'] };
      return { answer: encodeAnswer(envelope, undefined, decision.warnings), decision, subject };
    }
  };
}
