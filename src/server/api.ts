// The API listener's request pipeline: match route → read body (bounded) →
// authenticate → handle → encode, with per-operation metrics. Everything a
// route needs arrives in its RequestContext.
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import { WireError } from '../lib/errors.js';
import { DEFAULT_BODY_LIMIT, readBody } from '../lib/http.js';
import type { Logger } from '../lib/logger.js';
import { hotCounter, hotHistogram } from '../lib/metrics.js';
import { AdmissionControl, type AdmissionLimits } from './admission.js';
import { matchRoute, type RequestContext, type Route } from './router.js';
import { newRequestId, sendWireError, toWireError } from './wire-errors.js';

export interface ApiOptions {
  routes: Route[];
  logger: Logger;
  registry: Registry;
  /** overload shedding of these operations (EKS Auth); none when absent */
  admission?: { limits: AdmissionLimits; operations: readonly string[] };
}

export interface ApiHandler extends RequestListener {
  /** stops the admission control's timer */
  close(): void;
}

/** The query of a URL without one; shared, since routes only read their query. */
const NO_QUERY = new URLSearchParams();

export function createApiHandler(options: ApiOptions): ApiHandler {
  const { routes, logger } = options;
  const requests = hotCounter(options.registry, {
    name: 'pod_identity_api_requests_total',
    help: 'API requests by operation and HTTP status',
    labelNames: ['operation', 'status'],
  });
  const latency = hotHistogram(options.registry, {
    name: 'pod_identity_api_request_duration_seconds',
    help: 'API request latency by operation',
    labelName: 'operation',
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
  });
  let admission: AdmissionControl | undefined;
  const admitted = new Set(options.admission?.operations ?? []);
  if (options.admission) {
    const shed = hotCounter(options.registry, {
      name: 'pod_identity_api_requests_shed_total',
      help: 'EKS Auth requests refused with 429 ThrottlingException because this process was at capacity, by reason (in-flight or queue)',
      labelNames: ['reason'],
    });
    admission = new AdmissionControl(options.admission.limits, (reason) => shed.add(reason));
  }

  const handler = function handleApiRequest(req: IncomingMessage, res: ServerResponse) {
    const started = performance.now();
    const requestId = newRequestId();
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const rawPath = q === -1 ? url : url.slice(0, q);
    const query = q === -1 ? NO_QUERY : new URLSearchParams(url.slice(q + 1));
    const found = matchRoute(routes, req.method ?? 'GET', rawPath);
    let operation = 'Unknown';

    const finish = () => {
      requests.add(operation, String(res.statusCode));
      latency.observe(operation, (performance.now() - started) / 1000);
    };
    res.on('finish', finish);

    if (!Array.isArray(found)) {
      req.resume();
      const error = found === 'method' ? new WireError('UnknownOperationException', 'Method not allowed for this path.', { status: 405 }) : new WireError('UnknownOperationException', `No operation at ${req.method} ${rawPath}.`);
      sendWireError(res, error, requestId);
      return;
    }
    // Shed before the body is read: a refused request costs next to nothing.
    const guarded = admission && found.find((m) => admitted.has(m.route.operation));
    if (guarded) {
      operation = guarded.route.operation;
      if (!admission!.admit(res, requestId)) {
        req.resume();
        return;
      }
    }
    let limit = 0;
    for (const m of found) limit = Math.max(limit, m.route.bodyLimit ?? DEFAULT_BODY_LIMIT);
    readBody(req, limit)
      .then(async (body) => {
        const ctx: RequestContext = { req, res, params: {}, query, body, requestId, logger };
        const match = found.find((m) => !m.route.accepts || m.route.accepts(ctx));
        if (!match) throw new WireError('InvalidRequestException', 'The request does not name an operation this server supports.');
        const { route } = match;
        operation = route.operation;
        ctx.params = match.params;
        try {
          if (route.authenticate) ctx.caller = route.authenticate(ctx);
          const result = await route.handle(ctx);
          if (!result || res.headersSent) return;
          if (result.raw) {
            res.writeHead(result.status, { 'content-type': result.raw.contentType, 'content-length': Buffer.byteLength(result.raw.text), 'x-amzn-requestid': requestId, ...result.headers });
            res.end(result.raw.text);
            return;
          }
          const payload = result.body === undefined ? '' : JSON.stringify(result.body);
          res.writeHead(result.status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload), 'x-amzn-requestid': requestId, ...result.headers });
          res.end(payload);
        } catch (error) {
          const wire = toWireError(error, route.operation === 'AssumeRoleForPodIdentity' ? 'InternalServerException' : 'ServerException');
          if (wire.status >= 500) logger.error({ err: error, operation, requestId }, 'request failed');
          sendWireError(res, wire, requestId, route.errors ?? 'rest-json');
        }
      })
      .catch((error: unknown) => {
        // body too large, aborted request or no route accepting it
        sendWireError(res, toWireError(error), requestId, found[0]!.route.errors ?? 'rest-json');
      });
  };
  return Object.assign(handler, { close: () => admission?.close() });
}
