// Console sessions: a random id in an HttpOnly, SameSite=Strict cookie (Secure
// under TLS), kept in this process's memory for a short, fixed lifetime, with
// a CSRF token of its own that every change must carry. The store keeps the
// id's SHA-256 only, so a heap dump holds no usable cookie; a restart signs
// everyone out, which a short-lived session can afford.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

export const COOKIE = 'pod_identity_console';
const MAX_SESSIONS = 1000;

export interface Session {
  /** the admin access key id that signed in (never its secret) */
  accessKeyId: string;
  /** the token every change carries (a form field, or the x-csrf-token header) */
  csrf: string;
  /** epoch ms */
  expiresAt: number;
}

function digest(id: string): string {
  return createHash('sha256').update(id).digest('hex');
}

export class SessionStore {
  private readonly sessions = new Map<string, Session>();

  constructor(
    private readonly lifetimeMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** A new session; the id goes into the cookie and nowhere else. */
  create(accessKeyId: string): { id: string; session: Session } {
    const now = this.now();
    if (this.sessions.size >= MAX_SESSIONS) {
      for (const [key, s] of this.sessions) if (s.expiresAt <= now) this.sessions.delete(key);
      // still full of live sessions: the oldest goes
      if (this.sessions.size >= MAX_SESSIONS) this.sessions.delete(this.sessions.keys().next().value!);
    }
    const id = randomBytes(32).toString('base64url');
    const session = { accessKeyId, csrf: randomBytes(32).toString('base64url'), expiresAt: now + this.lifetimeMs };
    this.sessions.set(digest(id), session);
    return { id, session };
  }

  /** The live session of a cookie's id; an expired one is forgotten. */
  get(id: string | undefined): Session | undefined {
    if (!id) return undefined;
    const key = digest(id);
    const session = this.sessions.get(key);
    if (session && session.expiresAt <= this.now()) {
      this.sessions.delete(key);
      return undefined;
    }
    return session;
  }

  delete(id: string | undefined): void {
    if (id) this.sessions.delete(digest(id));
  }
}

/** Whether a submitted CSRF token is the session's, compared in constant time. */
export function csrfMatches(session: Session, submitted: string | undefined): boolean {
  if (!submitted) return false;
  const a = Buffer.from(session.csrf);
  const b = Buffer.from(submitted);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** The value of one cookie in a Cookie header. */
export function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq !== -1 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** The Set-Cookie value of a session (or, with maxAgeSeconds 0, of its removal). */
export function sessionCookie(id: string, maxAgeSeconds: number, secure: boolean): string {
  return `${COOKIE}=${id}; Path=/; Max-Age=${maxAgeSeconds}; HttpOnly; SameSite=Strict${secure ? '; Secure' : ''}`;
}
