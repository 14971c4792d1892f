// The few API-server calls token verification needs (TokenReview, pod reads,
// the service-account issuer's JWKS), over one keep-alive connection pool per
// cluster, each bounded in time and size. Credentials come from the cluster's
// kubeconfig (loadKubeAccess: client certificate or bearer token).
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest, type RequestOptions } from 'node:https';
import { loadKubeAccess, type KubeAccess } from '../webhook/kubeconfig.js';

const MAX_RESPONSE_BYTES = 4 * 1024 * 1024;

export interface KubeResponse {
  status: number;
  body: unknown;
}

export interface KubeClient {
  /** where the API server is, for logs */
  server: string;
  request(method: 'GET' | 'POST', path: string, body?: unknown, timeoutMs?: number): Promise<KubeResponse>;
  close(): void;
}

export function kubeClientFromKubeconfig(path: string): KubeClient {
  return kubeClient(loadKubeAccess(path));
}

export function kubeClient(access: KubeAccess): KubeClient {
  const { server } = access;
  const https = server.protocol !== 'http:';
  const agent = https
    ? new HttpsAgent({ keepAlive: true, maxSockets: 16, ca: access.ca, cert: access.cert, key: access.key, rejectUnauthorized: !access.insecureSkipTlsVerify })
    : new HttpAgent({ keepAlive: true, maxSockets: 16 });
  const basePath = server.pathname.replace(/\/$/, '');

  return {
    server: server.origin,
    request(method, path, body, timeoutMs = 2_000) {
      const token = access.token?.();
      const payload = body === undefined ? undefined : JSON.stringify(body);
      const options: RequestOptions = {
        method,
        hostname: server.hostname.replace(/^\[|\]$/g, ''),
        port: server.port || undefined,
        path: `${basePath}${path}`,
        agent,
        headers: {
          // /openid/v1/jwks answers only application/jwk-set+json (406 otherwise)
          accept: path.startsWith('/openid/') ? 'application/jwk-set+json, application/json' : 'application/json',
          ...(payload !== undefined && { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }),
          ...(token && { authorization: `Bearer ${token}` }),
        },
      };
      const send = https ? httpsRequest : httpRequest;
      return new Promise<KubeResponse>((resolve, reject) => {
        const req = send(options, (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (chunk: Buffer) => {
            size += chunk.length;
            if (size > MAX_RESPONSE_BYTES) {
              req.destroy(new Error('the API server answer is too large'));
              return;
            }
            chunks.push(chunk);
          });
          res.on('end', () => {
            let parsed: unknown;
            try {
              parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
            } catch {
              parsed = undefined;
            }
            resolve({ status: res.statusCode ?? 0, body: parsed });
          });
          res.on('error', reject);
        });
        req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer from the API server within ${timeoutMs} ms`)));
        req.on('error', reject);
        req.end(payload);
      });
    },
    close() {
      agent.destroy();
    },
  };
}
