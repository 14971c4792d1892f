// A recording proxy in front of moto's STS: every request is passed on as it
// came and answered with moto's answer, and the AssumeRole calls' forms (the
// Query protocol's body) are kept, so a test can read exactly what the
// server sent STS: Tags, TransitiveTagKeys, RoleSessionName. moto accepts
// these parameters but does not echo them back, hence the proxy.
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { closeServer } from '../../src/lib/http.js';

export interface StsRecorder {
  /** http://127.0.0.1:<port>: point the server's issuer.stsEndpoint here */
  endpoint: string;
  /** the forms of the AssumeRole calls so far, oldest first */
  assumeRoles: URLSearchParams[];
  stop(): Promise<void>;
}

/** `Tags.member.N.Key/Value` of a recorded form, as a map. */
export function tagsOf(form: URLSearchParams): Record<string, string> {
  const tags: Record<string, string> = {};
  for (let i = 1; form.has(`Tags.member.${i}.Key`); i++) tags[form.get(`Tags.member.${i}.Key`)!] = form.get(`Tags.member.${i}.Value`) ?? '';
  return tags;
}

/** `TransitiveTagKeys.member.N` of a recorded form; undefined when the form has none. */
export function transitiveTagKeysOf(form: URLSearchParams): string[] | undefined {
  const keys: string[] = [];
  for (let i = 1; form.has(`TransitiveTagKeys.member.${i}`); i++) keys.push(form.get(`TransitiveTagKeys.member.${i}`)!);
  return keys.length > 0 ? keys : undefined;
}

async function bodyOf(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** Starts the proxy on a free loopback port, passing every request on to `upstream` (moto's endpoint). */
export async function startStsRecorder(upstream: string): Promise<StsRecorder> {
  const assumeRoles: URLSearchParams[] = [];
  const server = createServer((req, res) => {
    void (async () => {
      const body = await bodyOf(req);
      if (String(req.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded')) {
        const form = new URLSearchParams(body.toString('utf8'));
        if (form.get('Action') === 'AssumeRole') assumeRoles.push(form);
      }
      const headers = Object.fromEntries(Object.entries(req.headers).filter(([name]) => !['host', 'connection', 'content-length', 'transfer-encoding'].includes(name))) as Record<string, string>;
      const answer = await fetch(new URL(req.url ?? '/', upstream), { method: req.method, headers, ...(body.length > 0 && { body }), signal: AbortSignal.timeout(10_000) });
      const text = Buffer.from(await answer.arrayBuffer());
      res.writeHead(answer.status, { 'content-type': answer.headers.get('content-type') ?? 'text/xml', 'content-length': text.length });
      res.end(text);
    })().catch((error: unknown) => {
      res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(`sts recorder: ${(error as Error).message}`);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { endpoint: `http://127.0.0.1:${port}`, assumeRoles, stop: () => closeServer(server, 1_000) };
}
