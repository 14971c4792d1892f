// Where a cluster's JWKS comes from: a file, a URI, the issuer's OIDC
// discovery document, or the API server itself (`/openid/v1/jwks`, through
// the kubeconfig). Each is a fetcher for KeySet; all are bounded in time and
// size.
import { readFile, stat } from 'node:fs/promises';
import { OpenidApi, setHeaderOptions } from '@kubernetes/client-node';
import { describeKubeError, type KubeApi } from '../kube/connect.js';
import { readResponseLimited } from '../lib/http.js';
import type { JwksFetcher } from './keys.js';

const FETCH_TIMEOUT_MS = 5_000;
const MAX_DOCUMENT_BYTES = 1024 * 1024;

export function jwksFromFile(path: string): JwksFetcher {
  return async function readJwksFile() {
    if ((await stat(path)).size > MAX_DOCUMENT_BYTES) throw new Error(`${path} is larger than ${MAX_DOCUMENT_BYTES} bytes`);
    return JSON.parse(await readFile(path, 'utf8')) as unknown;
  };
}

async function fetchJson(url: string): Promise<unknown> {
  const res = await fetch(url, { headers: { accept: 'application/json, application/jwk-set+json' }, signal: AbortSignal.timeout(FETCH_TIMEOUT_MS), redirect: 'follow' });
  if (res.status !== 200) {
    await res.body?.cancel().catch(() => undefined);
    throw new Error(`${url} answered ${res.status}`);
  }
  // Read while streaming, up to the limit (the signal above bounds the time, body included).
  const body = await readResponseLimited(res, MAX_DOCUMENT_BYTES, url);
  return JSON.parse(body.toString('utf8')) as unknown;
}

export function jwksFromUri(uri: string): JwksFetcher {
  return function fetchJwksUri() {
    return fetchJson(uri);
  };
}

/** OIDC discovery: `<issuer>/.well-known/openid-configuration` → `jwks_uri`; the document must name the same issuer. */
export function jwksFromDiscovery(issuer: string): JwksFetcher {
  const discoveryUrl = `${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`;
  return async function discoverJwks() {
    const doc = (await fetchJson(discoveryUrl)) as { issuer?: unknown; jwks_uri?: unknown } | null;
    if (doc?.issuer !== issuer) throw new Error(`${discoveryUrl} names issuer ${JSON.stringify(doc?.issuer)}, not ${issuer}`);
    if (typeof doc.jwks_uri !== 'string') throw new Error(`${discoveryUrl} has no jwks_uri`);
    return fetchJson(doc.jwks_uri);
  };
}

/** The API server's own service-account JWKS, read with the cluster's kubeconfig credentials. */
export function jwksFromApiServer(kube: KubeApi): JwksFetcher {
  const openid = kube.client(OpenidApi, { timeoutMs: FETCH_TIMEOUT_MS, maxBytes: MAX_DOCUMENT_BYTES });
  // /openid/v1/jwks answers only application/jwk-set+json (406 to application/json alone)
  const jwkSet = setHeaderOptions('Accept', 'application/jwk-set+json');
  return async function fetchApiServerJwks() {
    try {
      return (await openid.getServiceAccountIssuerOpenIDKeyset(jwkSet)) as unknown;
    } catch (error) {
      throw new Error(`${kube.server}/openid/v1/jwks: ${describeKubeError(error)}`, { cause: error });
    }
  };
}
