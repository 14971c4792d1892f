// One HTTPS JSON request against a peer that presents a test CA's certificate
// (Node's fetch cannot be given a CA without undici internals).
import { request } from 'node:https';

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

export function httpsJson<T = unknown>(url: string, options: HttpsJsonRequest): Promise<HttpsJsonResponse<T>> {
  const payload = options.body === undefined ? undefined : JSON.stringify(options.body);
  const headers: Record<string, string> = { accept: options.accept ?? 'application/json' };
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  if (payload !== undefined) {
    headers['content-type'] = options.contentType ?? 'application/json';
    headers['content-length'] = String(Buffer.byteLength(payload));
  }
  return new Promise((resolve, reject) => {
    const req = request(url, { method: options.method ?? 'GET', ca: options.ca, headers, timeout: options.timeoutMs ?? 15_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown = text;
        try {
          body = text.length > 0 ? JSON.parse(text) : undefined;
        } catch {
          // not JSON: keep the text
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: body as T, text });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${options.method ?? 'GET'} ${url}: no answer in ${options.timeoutMs ?? 15_000} ms`)));
    req.on('error', reject);
    req.end(payload);
  });
}
