// A plain HTTP client of the admin console, as a browser would talk to it
// without script: form posts, the session cookie, the page's CSRF token. For
// the console's integration tests (cookie attributes, CSRF, throttling,
// session expiry, form errors); undici, so a test can pick the source address
// (the throttle is per address) and trust a test CA.
import { Agent, request } from 'undici';

interface ConsoleResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  /** the Set-Cookie header, when there is one */
  setCookie?: string;
}

export interface ConsoleClientOptions {
  /** PEM of the CA that signed the console's certificate */
  ca?: string;
  /** source address of the connections (any of 127.0.0.0/8 reaches a loopback listener) */
  localAddress?: string;
}

export interface SignedIn {
  /** the Cookie header value */
  cookie: string;
  /** the session's CSRF token, read from a page's form */
  csrf: string;
  /** the Set-Cookie header of the sign-in */
  setCookie: string;
}

export interface ConsoleClient {
  get(path: string, cookie?: string): Promise<ConsoleResponse>;
  post(path: string, form: Record<string, string>, options?: { cookie?: string; origin?: string; headers?: Record<string, string> }): Promise<ConsoleResponse>;
  /** signs in and reads the CSRF token from the page it lands on; throws when refused */
  signIn(accessKeyId: string, secretAccessKey: string): Promise<SignedIn>;
  close(): Promise<void>;
}

export function consoleClient(baseUrl: string, options: ConsoleClientOptions = {}): ConsoleClient {
  const dispatcher = new Agent({ ...(options.localAddress && { localAddress: options.localAddress }), connect: { ...(options.ca && { ca: options.ca }) } });
  const send = async (method: 'GET' | 'POST', path: string, headers: Record<string, string>, body?: string): Promise<ConsoleResponse> => {
    const res = await request(`${baseUrl}${path}`, { method, headers, body, dispatcher, signal: AbortSignal.timeout(15_000) });
    const text = await res.body.text();
    const cookie = res.headers['set-cookie'];
    return { status: res.statusCode, headers: res.headers, text, ...(cookie !== undefined && { setCookie: String(cookie) }) };
  };
  const client: ConsoleClient = {
    get: (path, cookie) => send('GET', path, cookie ? { cookie } : {}),
    post: (path, form, o = {}) =>
      send(
        'POST',
        path,
        { 'content-type': 'application/x-www-form-urlencoded', ...(o.cookie && { cookie: o.cookie }), ...(o.origin && { origin: o.origin }), ...o.headers },
        new URLSearchParams(form).toString(),
      ),
    async signIn(accessKeyId, secretAccessKey) {
      const res = await client.post('/sign-in', { accessKeyId, secretAccessKey });
      if (res.status !== 303 || !res.setCookie) throw new Error(`sign-in answered ${res.status}`);
      const cookie = res.setCookie.split(';')[0]!;
      const page = await client.get('/associations', cookie);
      const csrf = /name="csrf" value="([^"]+)"/.exec(page.text)?.[1];
      if (!csrf) throw new Error(`no CSRF token on the page (status ${page.status})`);
      return { cookie, csrf, setCookie: res.setCookie };
    },
    close: () => dispatcher.close(),
  };
  return client;
}

/** The text of a page's notice (the API's error name and message, for a refused change), unescaped. */
export function noticeOf(page: string): string | undefined {
  const inner = /<div class="notice [a-z]+" role="(?:alert|status)" id="notice">([^<]*)<\/div>/.exec(page)?.[1];
  return inner?.replace(/&(amp|lt|gt|quot|#39);/g, (_, e: string) => ({ amp: '&', lt: '<', gt: '>', quot: '"', '#39': "'" })[e]!);
}
