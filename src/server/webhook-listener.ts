// The admission webhook's listener: HTTPS, `POST /mutate`, AdmissionReview v1.
// The HTTP shell around webhook/review.ts: path, method, content type and a
// bounded body, then the review, its answer, a metric and a log line.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import { Counter, Histogram, type Registry } from 'prom-client';
import { WireError } from '../lib/errors.js';
import { applyServerTimeouts, readBody, sendJson, sendText } from '../lib/http.js';
import type { TlsSource } from '../webhook/certs.js';
import { admissionLog, createReviewer, type Outcome, type ReviewOptions } from '../webhook/review.js';

/** Pods are bounded by etcd's ~1.5 MiB object limit; the review wraps one pod (oldObject is null on CREATE). */
const WEBHOOK_BODY_LIMIT = 3 * 1024 * 1024;

export interface WebhookListenerOptions extends ReviewOptions {
  registry: Registry;
  bodyLimit?: number;
}

function isJson(contentType: string | undefined): boolean {
  if (!contentType) return false;
  const type = contentType.split(';', 1)[0]!.trim().toLowerCase();
  return type === 'application/json';
}

/** The request handler of the listener. */
function createWebhookHandler(options: WebhookListenerOptions): (req: IncomingMessage, res: ServerResponse) => void {
  const { logger } = options;
  const bodyLimit = options.bodyLimit ?? WEBHOOK_BODY_LIMIT;
  const review = createReviewer(options);
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
export function createWebhookServer(options: WebhookListenerOptions, tls: TlsSource): Server {
  const server = createServer({ ...tls.current(), minVersion: 'TLSv1.2' }, createWebhookHandler(options));
  applyServerTimeouts(server);
  return server;
}
