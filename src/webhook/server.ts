// The admission webhook's listener: HTTPS, `POST /mutate`, AdmissionReview v1.
// Decode → decide (one indexed store read, plus a cached ServiceAccount read
// when the token-expiration annotation may matter) → encode. Every path ends in
// `allowed: true`: a review we cannot read or a store that fails admits the
// pod unmutated, with a warning, exactly as failurePolicy Ignore would.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import { Counter, Histogram, type Registry } from 'prom-client';
import type { AssociationStore } from '../associations/store.js';
import type { Association } from '../associations/types.js';
import { WireError } from '../lib/errors.js';
import { applyServerTimeouts, parseListen, readBody, sendJson, sendText } from '../lib/http.js';
import type { Logger } from '../lib/logger.js';
import type { ClusterConfig, ServerConfig } from '../server/config.js';
import { generatedCertificates, servingHosts, watchedCertificateFiles, type KeyPair, type TlsSource } from './certs.js';
import { ANNOTATION_TOKEN_EXPIRATION, hasSkipLabel, mutatePod, podServiceAccount, type MutationResult, type Pod } from './mutate.js';
import { decodeReview, encodeAnswer, notForUs, podOf } from './review.js';
import { kubeServiceAccountLookup, type ServiceAccountExpirationLookup } from './service-accounts.js';

/** Pods are bounded by etcd's ~1.5 MiB object limit; the review wraps one pod (oldObject is null on CREATE). */
export const WEBHOOK_BODY_LIMIT = 3 * 1024 * 1024;

export interface WebhookOptions {
  store: AssociationStore;
  /** the cluster this listener serves; undefined means mutate nothing (and say so once) */
  clusterName: string | undefined;
  ipv6: boolean;
  /** injected as AWS_REGION / AWS_DEFAULT_REGION when set */
  region?: string;
  serviceAccountExpiration?: ServiceAccountExpirationLookup;
  logger: Logger;
  registry: Registry;
  /** answer without a patch when the decision takes longer than this (default 2 s, well inside the API server's timeout) */
  decisionTimeoutMs?: number;
  bodyLimit?: number;
}

export type Outcome = 'mutated' | 'skipped' | 'error';

interface Decision {
  outcome: Outcome;
  result?: MutationResult;
  warnings?: string[];
  reason: string;
}

function isJson(contentType: string | undefined): boolean {
  if (!contentType) return false;
  const type = contentType.split(';', 1)[0]!.trim().toLowerCase();
  return type === 'application/json';
}

function withDeadline<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no decision within ${ms} ms`)), ms);
  });
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
}

/** Which pod an admission was for, in its log lines. */
interface AdmissionSubject {
  namespace: string;
  serviceAccount: string;
  pod: string;
}

/**
 * The log fields of one admission, written out rather than `{ ...subject, uid }`:
 * on Node 20's V8 a literal that starts with a spread and then adds fields
 * builds a new hidden class on every call (~2 µs a field).
 */
function admissionLog(subject: AdmissionSubject | undefined, uid: string, extra: { err?: string; reason?: string } = {}) {
  return { namespace: subject?.namespace, serviceAccount: subject?.serviceAccount, pod: subject?.pod, uid, err: extra.err, reason: extra.reason };
}

/** The request handler, separate from the listener so tests and the bench can drive it over any server. */
export function createWebhookHandler(options: WebhookOptions): (req: IncomingMessage, res: ServerResponse) => void {
  const { store, clusterName, logger } = options;
  const bodyLimit = options.bodyLimit ?? WEBHOOK_BODY_LIMIT;
  const decisionTimeoutMs = options.decisionTimeoutMs ?? 2_000;
  const admissions = new Counter({
    name: 'pod_identity_webhook_admissions_total',
    help: 'Pod admission reviews answered, by outcome (mutated, skipped, error)',
    labelNames: ['outcome'],
    registers: [options.registry],
  });
  const latency = new Histogram({
    name: 'pod_identity_webhook_admission_duration_seconds',
    help: 'Time from request to answer of an admission review',
    labelNames: ['outcome'],
    buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [options.registry],
  });
  for (const outcome of ['mutated', 'skipped', 'error'] as const) admissions.inc({ outcome }, 0);
  if (!clusterName) logger.warn('the admission webhook serves no cluster (several are configured and webhook.clusterName is unset): pods are admitted unmutated');

  async function decide(pod: Pod, namespace: string): Promise<Decision> {
    if (hasSkipLabel(pod)) return { outcome: 'skipped', result: { mutated: false, reason: 'skip-label' }, reason: 'skip-label' };
    if (!clusterName) return { outcome: 'skipped', reason: 'no cluster configured for the webhook' };
    const serviceAccount = podServiceAccount(pod);
    const association: Association | undefined = await store.findBySubject({ clusterName, namespace, serviceAccount });
    let serviceAccountTokenExpiration: string | undefined;
    if (association && options.serviceAccountExpiration && pod.metadata?.annotations?.[ANNOTATION_TOKEN_EXPIRATION] === undefined) {
      serviceAccountTokenExpiration = await options.serviceAccountExpiration(namespace, serviceAccount);
    }
    const result = mutatePod(pod, association, { ipv6: options.ipv6, region: options.region, serviceAccountTokenExpiration });
    return { outcome: result.mutated ? 'mutated' : 'skipped', result, reason: result.mutated ? 'mutated' : result.reason };
  }

  async function review(body: Buffer): Promise<{ answer: ReturnType<typeof encodeAnswer>; decision: Decision; subject?: AdmissionSubject }> {
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
    const subject: AdmissionSubject = { namespace, serviceAccount: podServiceAccount(pod), pod: pod.metadata?.name || pod.metadata?.generateName || '' };
    try {
      const decision = await withDeadline(decide(pod, namespace), decisionTimeoutMs);
      const patch = decision.result?.mutated ? decision.result.patch : undefined;
      return { answer: encodeAnswer(envelope, patch), decision, subject };
    } catch (error) {
      logger.error(admissionLog(subject, envelope.uid, { err: (error as Error).message }), 'admission decision failed; pod admitted without pod identity');
      const decision: Decision = { outcome: 'error', reason: 'decision failed', warnings: ['pod-identity webhook: could not look up the pod identity association; admitted without AWS credentials'] };
      return { answer: encodeAnswer(envelope, undefined, decision.warnings), decision, subject };
    }
  }

  return function handleWebhookRequest(req, res) {
    const started = process.hrtime.bigint();
    const path = (req.url ?? '/').split('?', 1)[0];
    if (path === '/healthz' && (req.method === 'GET' || req.method === 'HEAD')) {
      req.resume();
      sendText(res, 200, 'ok\n');
      return;
    }
    if (path !== '/mutate') {
      req.resume();
      sendJson(res, 404, { message: 'not found: the admission webhook answers POST /mutate' });
      return;
    }
    if (req.method !== 'POST') {
      req.resume();
      sendJson(res, 405, { message: 'method not allowed: use POST' }, { allow: 'POST' });
      return;
    }
    if (!isJson(req.headers['content-type'])) {
      req.resume();
      sendJson(res, 415, { message: 'unsupported content type: expected application/json' });
      return;
    }
    const record = (outcome: Outcome) => {
      admissions.inc({ outcome });
      latency.observe({ outcome }, Number(process.hrtime.bigint() - started) / 1e9);
    };
    readBody(req, bodyLimit)
      .then(review)
      .then(
        ({ answer, decision, subject }) => {
          sendJson(res, 200, answer);
          record(decision.outcome);
          if (decision.outcome === 'mutated') logger.info(admissionLog(subject, answer.response.uid), 'pod mutated');
          else if (logger.isLevelEnabled('debug')) logger.debug(admissionLog(subject, answer.response.uid, { reason: decision.reason }), 'pod admitted unchanged');
        },
        (error: unknown) => {
          // Too large or a broken connection: no review to answer; the API server applies failurePolicy Ignore.
          const status = error instanceof WireError ? error.status : 400;
          if (!res.headersSent) sendJson(res, status, { message: (error as Error).message });
          record('error');
          logger.warn({ err: (error as Error).message }, 'admission review could not be read');
        },
      );
  };
}

/** The HTTPS server; certificate changes swap its secure context for new connections. */
export function createWebhookServer(options: WebhookOptions, tls: TlsSource): Server {
  const server = createServer({ ...tls.current(), minVersion: 'TLSv1.2' }, createWebhookHandler(options));
  applyServerTimeouts(server);
  return server;
}

/** The cluster a listener serves: the configured one, else the only cluster there is. */
export function webhookCluster(config: ServerConfig): ClusterConfig | undefined {
  if (config.webhook.clusterName) return config.clusters.find((c) => c.name === config.webhook.clusterName);
  return config.clusters.length === 1 ? config.clusters[0] : undefined;
}

export interface StartedWebhook {
  server: Server;
  tls: TlsSource;
  /** stop the certificate timers (the listener is closed by its owner) */
  close(): void;
}

export interface WebhookDeps {
  store: AssociationStore;
  logger: Logger;
  registry: Registry;
  /** test hook: how often configured certificate files are checked */
  certPollMs?: number;
}

/** Builds the webhook listener from the server configuration (not yet listening). */
export function createWebhookFromConfig(config: ServerConfig, deps: WebhookDeps): StartedWebhook {
  const logger = deps.logger.child({ component: 'webhook' });
  const cluster = webhookCluster(config);
  // The secure context is swapped on the server made below, once it exists.
  const target: { server?: Server } = {};
  const onChange = (pair: KeyPair) => target.server?.setSecureContext({ ...pair, minVersion: 'TLSv1.2' });
  const tls =
    config.webhook.certFile && config.webhook.keyFile
      ? watchedCertificateFiles(config.webhook.certFile, config.webhook.keyFile, { logger, onChange, pollMs: deps.certPollMs })
      : generatedCertificates(config.dataDir, servingHosts(parseListen(config.webhookListen).host, config.webhook.certHosts), { logger, onChange });
  const serviceAccountExpiration = cluster?.kubeconfig ? kubeServiceAccountLookup({ kubeconfigPath: cluster.kubeconfig, logger }) : undefined;
  const server = createWebhookServer(
    {
      store: deps.store,
      clusterName: cluster?.name,
      ipv6: cluster?.ipv6 ?? false,
      region: config.webhook.injectRegion ? config.region : undefined,
      serviceAccountExpiration,
      logger,
      registry: deps.registry,
    },
    tls,
  );
  target.server = server;
  return { server, tls, close: () => tls.close() };
}
