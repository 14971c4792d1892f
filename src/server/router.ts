// The API listener's routing: each route names its AWS operation (for
// metrics and logs), how its caller is authenticated, and its handler.
// Decode → authenticate → decide → encode happens in api.ts, in that order.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../lib/logger.js';
import type { VerifiedCaller } from '../lib/sigv4.js';

export interface RequestContext {
  req: IncomingMessage;
  res: ServerResponse;
  /** path parameters, already URI-decoded */
  params: Record<string, string>;
  query: URLSearchParams;
  /** raw body, already read within the route's limit */
  body: Buffer;
  requestId: string;
  logger: Logger;
  /** set when the route has an authenticator */
  caller?: VerifiedCaller;
}

/** The answer of a handler; api.ts writes it (handlers may also write `res` themselves and return undefined). */
interface RouteResult {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
  /** a pre-encoded body (e.g. STS XML); `body` is ignored when set */
  raw?: { contentType: string; text: string };
}

/** How errors are encoded for a route's protocol. */
export type ErrorProtocol = 'rest-json' | 'aws-query';

export interface Route {
  operation: string;
  method: string;
  /** matched against the raw path; named groups become params */
  pattern: RegExp;
  /** verifies the caller (SigV4, pure computation) before the handler runs; throws WireError */
  authenticate?: (ctx: RequestContext) => VerifiedCaller;
  /** body size limit in bytes (default 64 KiB) */
  bodyLimit?: number;
  /** decides whether a POST / belongs to this route (e.g. the STS Action) */
  accepts?: (ctx: RequestContext) => boolean;
  errors?: ErrorProtocol;
  handle: (ctx: RequestContext) => Promise<RouteResult | undefined>;
}

export interface RouteMatch {
  route: Route;
  params: Record<string, string>;
}

function decodeParam(value: string): string {
  if (!value.includes('%')) return value;
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}

/** The names of a pattern's groups, read once: a `for…in` over a match's groups object takes V8's slow path on every request. */
const groupNamesByPattern = new WeakMap<RegExp, string[]>();

function groupNames(pattern: RegExp, groups: Record<string, string | undefined>): string[] {
  let names = groupNamesByPattern.get(pattern);
  if (!names) groupNamesByPattern.set(pattern, (names = Object.keys(groups)));
  return names;
}

/** Finds the route for a method and raw path; 'method' when the path matches another method only. */
export function matchRoute(routes: Route[], method: string, rawPath: string): RouteMatch[] | 'method' | undefined {
  const matches: RouteMatch[] = [];
  let pathMatched = false;
  for (const route of routes) {
    const m = route.pattern.exec(rawPath);
    if (!m) continue;
    pathMatched = true;
    if (route.method !== method) continue;
    const params: Record<string, string> = {};
    if (m.groups) for (const name of groupNames(route.pattern, m.groups)) params[name] = decodeParam(m.groups[name]!);
    matches.push({ route, params });
  }
  if (matches.length) return matches;
  return pathMatched ? 'method' : undefined;
}
