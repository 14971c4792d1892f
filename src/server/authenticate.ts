// Caller authentication for the API listener's routes: SigV4 against a key
// set chosen per API (admins for the association API, nodes for EKS Auth).
import { verifySigV4, type SigningKey, type VerifiedCaller } from '../lib/sigv4.js';
import type { RequestContext } from './router.js';

type KeyLookup = (accessKeyId: string) => SigningKey | undefined;

/** A lookup over a fixed list of configured keys. */
export function staticKeys(keys: readonly { accessKeyId: string; secretAccessKey: string }[]): KeyLookup {
  const byId = new Map(keys.map((k) => [k.accessKeyId, { accessKeyId: k.accessKeyId, secretAccessKey: k.secretAccessKey }]));
  return (accessKeyId) => byId.get(accessKeyId);
}

export type Authenticator = (ctx: RequestContext) => VerifiedCaller;

/** What a credential scope must name: the endpoint's signing name and the server's region. */
interface SigningScope {
  service: string;
  region: string;
}

/** Builds the SigV4 authenticator for one scope and one set of keys. */
export function sigv4Authenticator(scope: SigningScope, lookup: KeyLookup): Authenticator {
  const { service, region } = scope;
  return function authenticateSigV4(ctx) {
    const raw = ctx.req.url ?? '/';
    const q = raw.indexOf('?');
    return verifySigV4(
      { method: ctx.req.method ?? 'GET', path: q === -1 ? raw : raw.slice(0, q), query: ctx.query, headers: ctx.req.headers, body: ctx.body },
      { service, region, lookup },
    );
  };
}
