// The console's HTTP handler: sign-in and sessions, the CSRF check on every
// change, the pages, the live feed and the assets, in that order of checks:
// assets and the sign-in page are public; everything else needs a session;
// every POST also needs the same origin and the session's CSRF token.
// Changes go through the AssociationService with the API's own input schemas
// (api/eks.ts), so a refused change reads exactly as the API words it.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import { createInput, listInput, tagResourceInput, untagResourceInput, updateInput, validate, type Association } from '../api/eks.js';
import type { ChangeContext } from '../associations/audit.js';
import type { AssociationService } from '../associations/service.js';
import { isWireError, WireError } from '../lib/errors.js';
import { readBody } from '../lib/http.js';
import type { Logger } from '../lib/logger.js';
import { clientScript, STYLESHEET } from './assets.js';
import { parseDecisionFilter } from './decisions.js';
import { EventStreams } from './events.js';
import type { DecisionFeed } from './feed.js';
import { createFromForm, parseForm, tagFromForm, updateFromForm } from './forms.js';
import { associationPage, associationsPage, chartFigure, clustersPage, decisionsPage, problemPage, serviceAccountsPage, signInPage, type ClusterInfo, type FeedScope, type Notice } from './pages.js';
import { COOKIE, csrfMatches, readCookie, sessionCookie, SessionStore, type Session } from './sessions.js';
import { SignInThrottle, verifyAdminKey, type KeyLookup } from './sign-in.js';

export interface ConsoleOptions {
  associations: AssociationService;
  /** associations per cluster, for the clusters page */
  countByCluster: () => Promise<Record<string, number>>;
  clusters: readonly ClusterInfo[];
  /** the admin keys, as the association API looks them up */
  adminKeys: KeyLookup;
  feed: DecisionFeed;
  /** whose decisions the feed holds */
  scope: FeedScope;
  sessionSeconds: number;
  /** served over TLS: the cookie is marked Secure */
  secure: boolean;
  logger: Logger;
  throttle?: SignInThrottle;
}

export interface ConsoleHandler {
  handle: RequestListener;
  /** ends the live feeds, so that the listener can close */
  close(): void;
}

const FORM_LIMIT = 64 * 1024;

/** Headers of every answer: no caching, no framing, no foreign script, style or connection. */
const SECURITY_HEADERS = {
  'cache-control': 'no-store',
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  // same-origin, not no-referrer: under no-referrer browsers send Origin: null, and the origin check needs it
  'referrer-policy': 'same-origin',
};

const DONE: Record<string, string> = {
  created: 'Association created.',
  updated: 'Association saved.',
  tagged: 'Tag added.',
  untagged: 'Tag removed.',
  deleted: 'Association deleted.',
};

function send(res: ServerResponse, status: number, body: string, type = 'text/html; charset=utf-8', headers: Record<string, string> = {}): void {
  res.writeHead(status, { ...SECURITY_HEADERS, 'content-type': type, 'content-length': Buffer.byteLength(body), ...headers });
  res.end(body);
}

function redirect(res: ServerResponse, location: string, headers: Record<string, string> = {}): void {
  res.writeHead(303, { ...SECURITY_HEADERS, location, 'content-length': 0, ...headers });
  res.end();
}

/** How a refused change reads on the page: the API's error name and message. */
function errorNotice(error: WireError): Notice {
  return { kind: 'error', text: `${error.code}: ${error.message}` };
}

function doneNotice(query: URLSearchParams): Notice | undefined {
  const text = DONE[query.get('done') ?? ''];
  return text ? { kind: 'done', text } : undefined;
}

/** Whether a POST comes from a page of this console (browsers send Origin on every POST). */
function sameOrigin(req: IncomingMessage): boolean {
  const origin = req.headers.origin;
  if (origin === undefined) return true;
  try {
    return new URL(origin).host === req.headers.host;
  } catch {
    return false;
  }
}

const ITEM = /^\/associations\/([^/]+)\/([^/]+)(?:\/(update|delete|tags|untag))?$/;

export function createConsoleHandler(options: ConsoleOptions): ConsoleHandler {
  const { associations, feed, logger } = options;
  const sessions = new SessionStore(options.sessionSeconds * 1000);
  const throttle = options.throttle ?? new SignInThrottle();
  const streams = new EventStreams(feed);
  const clusterNames = options.clusters.map((c) => c.name);

  const changeContext = (session: Session): ChangeContext => ({ actor: { kind: 'access-key', accessKeyId: session.accessKeyId }, requestId: randomUUID() });

  async function signIn(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const address = req.socket.remoteAddress ?? '';
    if (!throttle.allow(address)) {
      req.resume();
      logger.warn({ address }, 'console sign-in throttled');
      const wait = throttle.retryAfterSeconds;
      send(res, 429, signInPage({ error: `Too many sign-in attempts. Try again in ${wait} seconds.` }), undefined, { 'retry-after': String(wait) });
      return;
    }
    const form = parseForm(await readBody(req, FORM_LIMIT));
    const accessKeyId = (form.get('accessKeyId') ?? '').trim();
    const verified = verifyAdminKey(options.adminKeys, accessKeyId, form.get('secretAccessKey') ?? '');
    if (!verified) {
      logger.warn({ address }, 'console sign-in refused');
      send(res, 401, signInPage({ error: 'That access key ID and secret are not an admin key of this server.', accessKeyId }));
      return;
    }
    const { id } = sessions.create(verified);
    logger.info({ accessKeyId: verified, address }, 'console sign-in');
    redirect(res, '/associations', { 'set-cookie': sessionCookie(id, options.sessionSeconds, options.secure) });
  }

  async function listAssociations(query: URLSearchParams): Promise<{ associations: Association[]; nextToken?: string }> {
    const cluster = query.get('cluster') || undefined;
    const input = validate(listInput, {
      ...(query.get('namespace') && { namespace: query.get('namespace')!.trim() }),
      ...(query.get('serviceAccount') && { serviceAccount: query.get('serviceAccount')!.trim() }),
      ...(cluster && query.get('nextToken') && { nextToken: query.get('nextToken') }),
    });
    if (cluster) return associations.list(cluster, input);
    const pages = await Promise.all(clusterNames.map((name) => associations.list(name, input)));
    return { associations: pages.flatMap((p) => p.associations) };
  }

  async function associationsView(session: Session, res: ServerResponse, query: URLSearchParams, status: number, n: Notice | undefined, createForm?: URLSearchParams): Promise<void> {
    const filter = {
      ...(query.get('cluster') && { cluster: query.get('cluster')! }),
      ...(query.get('namespace') && { namespace: query.get('namespace')! }),
      ...(query.get('serviceAccount') && { serviceAccount: query.get('serviceAccount')! }),
    };
    let page: { associations: Association[]; nextToken?: string } = { associations: [] };
    let shown = n;
    try {
      page = await listAssociations(query);
    } catch (error) {
      if (!isWireError(error)) throw error;
      shown ??= errorNotice(error);
      status = error.status;
    }
    const view = { clusters: clusterNames, filter, associations: page.associations, ...(page.nextToken && { nextToken: page.nextToken }), ...(createForm && { createForm }) };
    send(res, status, associationsPage(session, view, shown));
  }

  /** Runs a change; a refused one is shown on `onError`'s page with the API's words. */
  async function change(res: ServerResponse, work: () => Promise<string>, onError: (error: WireError) => Promise<void>): Promise<void> {
    let location;
    try {
      location = await work();
    } catch (error) {
      if (!isWireError(error)) throw error;
      await onError(error);
      return;
    }
    redirect(res, location);
  }

  async function item(session: Session, req: IncomingMessage, res: ServerResponse, form: URLSearchParams | undefined, query: URLSearchParams, m: RegExpExecArray): Promise<void> {
    const cluster = decodeURIComponent(m[1]!);
    const id = decodeURIComponent(m[2]!);
    const action = m[3];
    const base = `/associations/${encodeURIComponent(cluster)}/${encodeURIComponent(id)}`;
    const showItem = async (status: number, n?: Notice) => {
      let association;
      try {
        association = await associations.describe(cluster, id);
      } catch (error) {
        if (!isWireError(error)) throw error;
        send(res, error.status, problemPage('Association not found', `${error.code}: ${error.message}`));
        return;
      }
      send(res, status, associationPage(session, association, n));
    };
    if (!action) {
      if (req.method !== 'GET') return notAllowed(res);
      return showItem(200, doneNotice(query));
    }
    if (!form) return notAllowed(res);
    const onError = (error: WireError) => showItem(error.status, errorNotice(error));
    if (action === 'update') {
      return change(res, async () => {
        await associations.update(cluster, id, validate(updateInput, updateFromForm(form)), changeContext(session));
        return `${base}?done=updated`;
      }, onError);
    }
    if (action === 'delete') {
      return change(res, async () => {
        await associations.delete(cluster, id, changeContext(session));
        return `/associations?cluster=${encodeURIComponent(cluster)}&done=deleted`;
      }, onError);
    }
    return change(res, async () => {
      const { associationArn } = await associations.describe(cluster, id);
      if (action === 'tags') await associations.tagResource(associationArn, validate(tagResourceInput, tagFromForm(form), 'BadRequestException').tags, changeContext(session));
      else await associations.untagResource(associationArn, validate(untagResourceInput, { tagKeys: [form.get('key') ?? ''] }, 'BadRequestException').tagKeys, changeContext(session));
      return `${base}?done=${action === 'tags' ? 'tagged' : 'untagged'}`;
    }, onError);
  }

  function notAllowed(res: ServerResponse): void {
    send(res, 405, problemPage('Not allowed', 'This page does not take that kind of request.'));
  }

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://console');
    const path = url.pathname;
    const method = req.method ?? 'GET';
    const query = url.searchParams;

    if (method === 'GET' && path === '/assets/console.css') return send(res, 200, STYLESHEET, 'text/css; charset=utf-8');
    if (method === 'GET' && path === '/assets/console.js') {
      const script = clientScript();
      return script === undefined ? send(res, 404, '', 'text/javascript') : send(res, 200, script, 'text/javascript; charset=utf-8');
    }
    if (method === 'POST' && !sameOrigin(req)) {
      req.resume();
      return send(res, 403, problemPage('Refused', 'This form was not sent from a page of this console.'));
    }
    if (path === '/sign-in') {
      if (method === 'GET') return send(res, 200, signInPage());
      if (method === 'POST') return signIn(req, res);
      return notAllowed(res);
    }

    const sessionId = readCookie(req.headers.cookie, COOKIE);
    const session = sessions.get(sessionId);
    if (!session) {
      req.resume();
      if (method === 'GET' && path !== '/events' && path !== '/chart') return redirect(res, '/sign-in');
      return send(res, 401, problemPage('Signed out', 'Your session has ended. Sign in again.'));
    }

    let form: URLSearchParams | undefined;
    if (method === 'POST') {
      if (!/^application\/x-www-form-urlencoded\b/.test(req.headers['content-type'] ?? '')) {
        req.resume();
        return send(res, 415, problemPage('Refused', 'Changes are sent as HTML forms.'));
      }
      form = parseForm(await readBody(req, FORM_LIMIT));
      const token = form.get('csrf') ?? (req.headers['x-csrf-token'] as string | undefined);
      if (!csrfMatches(session, token ?? undefined)) {
        logger.warn({ accessKeyId: session.accessKeyId, path }, 'console change without a valid CSRF token refused');
        return send(res, 403, problemPage('Refused', 'The form’s CSRF token is missing or out of date. Reload the page and try again.'));
      }
    }

    if (path === '/sign-out' && form) {
      sessions.delete(sessionId);
      return redirect(res, '/sign-in', { 'set-cookie': sessionCookie('', 0, options.secure) });
    }
    if (path === '/' && method === 'GET') return redirect(res, '/associations');
    if (path === '/clusters' && method === 'GET') return send(res, 200, clustersPage(session, options.clusters, await options.countByCluster()));
    if (path === '/associations') {
      if (method === 'GET') return associationsView(session, res, query, 200, doneNotice(query));
      if (!form) return notAllowed(res);
      const cluster = form.get('cluster') ?? '';
      return change(
        res,
        async () => {
          const created = await associations.create(cluster, validate(createInput, createFromForm(form)), changeContext(session));
          return `/associations/${encodeURIComponent(created.clusterName)}/${encodeURIComponent(created.associationId)}?done=created`;
        },
        (error) => associationsView(session, res, new URLSearchParams({ cluster }), error.status, errorNotice(error), form),
      );
    }
    const m = ITEM.exec(path);
    if (m) return item(session, req, res, form, query, m);
    if (method !== 'GET') return notAllowed(res);

    const filter = parseDecisionFilter(query);
    if (path === '/decisions') {
      return send(res, 200, decisionsPage(session, { scope: options.scope, clusters: clusterNames, filter, decisions: feed.latest(filter, 100), lastSeq: feed.lastSeq(), minutes: feed.perMinute() }));
    }
    if (path === '/events') {
      const after = Number(query.get('after'));
      streams.serve(req, res, filter, Number.isSafeInteger(after) ? after : 0, session.expiresAt);
      return;
    }
    if (path === '/chart') return send(res, 200, chartFigure(feed.perMinute()).text);
    if (path === '/service-accounts') return send(res, 200, serviceAccountsPage(session, options.scope, clusterNames, filter, feed.serviceAccounts(filter)));
    send(res, 404, problemPage('Not found', 'There is no such page in the console.'));
  }

  return {
    handle(req, res) {
      route(req, res).catch((error: unknown) => {
        const tooLarge = isWireError(error) && error.code === 'RequestEntityTooLargeException';
        if (!tooLarge) logger.error({ err: error, path: req.url?.split('?')[0] }, 'console request failed');
        if (res.headersSent) res.destroy();
        else send(res, tooLarge ? 413 : 500, problemPage('Something went wrong', tooLarge ? 'That form is too large.' : 'The console could not answer; the server log says why.'));
      });
    },
    close: () => streams.endAll(),
  };
}
