// `GET /healthz` on the API listener: an answer that costs nothing, for a
// client that only needs a connection to EKS Auth (the agent opens its
// kept-alive connections with it at start; a load balancer may probe it).
// It says the process answers, not that it can serve: that is /readyz on
// the metrics listener.
import type { Route } from '../router.js';

const OK = { status: 200, raw: { contentType: 'text/plain; charset=utf-8', text: 'ok\n' } };

export function healthRoutes(): Route[] {
  return [{ operation: 'Health', method: 'GET', pattern: /^\/healthz$/, handle: () => Promise.resolve(OK) }];
}
