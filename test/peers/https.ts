// One HTTPS request against a peer that presents a test CA's certificate
// (anonymous OIDC discovery, the apiserver's /metrics text), on undici with
// one kept-alive pool per CA. Kubernetes objects go through
// @kubernetes/client-node instead: kube.ts kubeApiClient.
import { Agent, request } from 'undici';

export interface HttpsJsonRequest {
  method?: string;
  /** PEM of the CA that signed the server's certificate */
  ca: string;
  /** bearer token, when the peer wants one */
  token?: string;
  body?: unknown;
  contentType?: string;
  /** Accept header; default application/json */
  accept?: string;
  timeoutMs?: number;
}

export interface HttpsJsonResponse<T> {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  /** parsed JSON, or the raw text when the body is not JSON */
  body: T;
  text: string;
}

const pools = new Map<string, Agent>();

function poolFor(ca: string): Agent {
  let pool = pools.get(ca);
  if (!pool) pools.set(ca, (pool = new Agent({ connect: { ca } })));
  return pool;
}

export async function httpsJson<T = unknown>(url: string, options: HttpsJsonRequest): Promise<HttpsJsonResponse<T>> {
  const payload = options.body === undefined ? undefined : JSON.stringify(options.body);
  const headers: Record<string, string> = { accept: options.accept ?? 'application/json' };
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  if (payload !== undefined) headers['content-type'] = options.contentType ?? 'application/json';
  const timeoutMs = options.timeoutMs ?? 15_000;
  try {
    const res = await request(url, { method: (options.method ?? 'GET') as 'GET', headers, body: payload, dispatcher: poolFor(options.ca), signal: AbortSignal.timeout(timeoutMs) });
    const text = await res.body.text();
    let body: unknown = text;
    try {
      body = text.length > 0 ? JSON.parse(text) : undefined;
    } catch {
      // not JSON: keep the text
    }
    return { status: res.statusCode, headers: res.headers, body: body as T, text };
  } catch (error) {
    if ((error as Error).name === 'TimeoutError') throw new Error(`${options.method ?? 'GET'} ${url}: no answer in ${timeoutMs} ms`, { cause: error });
    throw error;
  }
}
