// A cluster's token-signing public keys, loaded from a JWKS document (file,
// URI, OIDC discovery or the API server) and kept current: a token with an
// unknown `kid` triggers a refetch, but at most one fetch runs at a time and
// refetches are spaced by a cooldown, so a flood of forged kids cannot turn
// into a flood of fetches. Stale keys are refreshed in the background.
import { KeyObject } from 'node:crypto';
import { importJWK, type JWK } from 'jose';
import { WireError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import { isAsymmetricAlg, keyFitsAlg, type AsymmetricAlg } from './jws.js';

export interface VerificationKey {
  kid?: string;
  /** the key's own `alg`, when the JWK names one */
  alg?: AsymmetricAlg;
  key: KeyObject;
}

/** Fetches the current JWKS document (`{"keys": [...]}`). */
export type JwksFetcher = () => Promise<unknown>;

export interface KeySetOptions {
  fetchJwks: JwksFetcher;
  /** what the keys are, for logs ("jwksUri https://…") */
  describe: string;
  logger: Logger;
  /** minimum time between two fetches caused by unknown kids */
  cooldownMs?: number;
  /** keys older than this are refreshed in the background */
  refreshMs?: number;
  now?: () => number;
}

const MIN_RSA_BITS = 2048;

/** The import alg jose needs when a JWK does not name its own. */
function importAlgFor(jwk: JWK): AsymmetricAlg | undefined {
  if (isAsymmetricAlg(jwk.alg)) return jwk.alg;
  if (jwk.kty === 'RSA') return 'RS256';
  if (jwk.kty === 'EC') return jwk.crv === 'P-256' ? 'ES256' : jwk.crv === 'P-384' ? 'ES384' : jwk.crv === 'P-521' ? 'ES512' : undefined;
  if (jwk.kty === 'OKP' && (jwk.crv === 'Ed25519' || jwk.crv === 'Ed448')) return 'EdDSA';
  return undefined;
}

/** Imports the usable public signing keys of a JWKS document; the rest are skipped with a reason. */
export async function importJwks(doc: unknown): Promise<{ keys: VerificationKey[]; skipped: string[] }> {
  const list = (doc as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(list)) throw new Error('not a JWKS document (no "keys" array)');
  const keys: VerificationKey[] = [];
  const skipped: string[] = [];
  for (const raw of list as JWK[]) {
    const name = typeof raw?.kid === 'string' ? raw.kid : '(no kid)';
    if (typeof raw !== 'object' || raw === null) continue;
    if (raw.use !== undefined && raw.use !== 'sig') {
      skipped.push(`${name}: use is not "sig"`);
      continue;
    }
    if (raw.d !== undefined || raw.kty === 'oct') {
      skipped.push(`${name}: not an asymmetric public key`);
      continue;
    }
    const alg = importAlgFor(raw);
    if (!alg) {
      skipped.push(`${name}: unsupported key type or alg`);
      continue;
    }
    try {
      const imported = await importJWK(raw, alg);
      const key = imported instanceof Uint8Array ? undefined : KeyObject.from(imported);
      if (!key || key.type !== 'public' || !keyFitsAlg(key, alg)) throw new Error('not a public key of its alg');
      if ((key.asymmetricKeyType === 'rsa' || key.asymmetricKeyType === 'rsa-pss') && (key.asymmetricKeyDetails?.modulusLength ?? 0) < MIN_RSA_BITS) {
        throw new Error(`RSA keys need at least ${MIN_RSA_BITS} bits`);
      }
      keys.push({ key, ...(typeof raw.kid === 'string' && { kid: raw.kid }), ...(isAsymmetricAlg(raw.alg) && { alg: raw.alg }) });
    } catch (error) {
      skipped.push(`${name}: ${(error as Error).message}`);
    }
  }
  return { keys, skipped };
}

function keysUnavailable(): WireError {
  return new WireError('ServiceUnavailableException', "The cluster's token-signing keys are not available right now.", { reason: 'keys_unavailable' });
}

export class KeySet {
  private keys: VerificationKey[] = [];
  private current = new Set<KeyObject>();
  private loadedAt = 0;
  private lastAttemptAt = Number.NEGATIVE_INFINITY;
  private inFlight: Promise<void> | undefined;
  private readonly cooldownMs: number;
  private readonly refreshMs: number;
  private readonly now: () => number;

  constructor(private readonly options: KeySetOptions) {
    this.cooldownMs = options.cooldownMs ?? 10_000;
    this.refreshMs = options.refreshMs ?? 5 * 60_000;
    this.now = options.now ?? Date.now;
  }

  /** Loads the keys now (start-up warm-up); failures are logged, not thrown. */
  async warmUp(): Promise<void> {
    await this.load().catch(() => undefined);
  }

  /** Whether a key is still published (a verified-token cache entry dies with its key). */
  stillPublished(key: KeyObject): boolean {
    return this.current.has(key);
  }

  /**
   * The keys that may have signed a token with this kid and alg. An unknown
   * kid refetches (single flight, cooldown); no keys at all and no way to get
   * them is ServiceUnavailableException.
   */
  async candidates(kid: string | undefined, alg: AsymmetricAlg): Promise<VerificationKey[]> {
    if (this.loadedAt === 0) {
      // Never loaded: wait for a fetch in flight, or start one (spaced by a short cooldown).
      if (!this.inFlight && this.now() - this.lastAttemptAt < Math.min(this.cooldownMs, 1000)) throw keysUnavailable();
      await this.load().catch(() => {
        throw keysUnavailable();
      });
    } else if (this.now() - this.loadedAt > this.refreshMs && this.now() - this.lastAttemptAt >= this.cooldownMs) {
      void this.load().catch(() => undefined);
    }
    let found = this.match(kid, alg);
    // Unknown kid: join a fetch in flight, or start one when the cooldown allows.
    if (found.length === 0 && (this.inFlight || this.now() - this.lastAttemptAt >= this.cooldownMs)) {
      await this.load().catch(() => undefined);
      found = this.match(kid, alg);
    }
    return found;
  }

  private match(kid: string | undefined, alg: AsymmetricAlg): VerificationKey[] {
    return this.keys.filter((k) => (kid === undefined || k.kid === kid) && (k.alg === undefined || k.alg === alg) && keyFitsAlg(k.key, alg));
  }

  private load(): Promise<void> {
    if (this.inFlight) return this.inFlight;
    this.lastAttemptAt = this.now();
    this.inFlight = (async () => {
      try {
        const { keys, skipped } = await importJwks(await this.options.fetchJwks());
        if (skipped.length) this.options.logger.warn({ source: this.options.describe, skipped }, 'some JWKS keys were skipped');
        this.keys = keys;
        this.current = new Set(keys.map((k) => k.key));
        this.loadedAt = this.now();
        this.options.logger.debug({ source: this.options.describe, keys: keys.map((k) => k.kid ?? '(no kid)') }, 'token-signing keys loaded');
      } catch (error) {
        this.options.logger.warn({ source: this.options.describe, err: (error as Error).message }, 'cannot load token-signing keys');
        throw error;
      } finally {
        this.inFlight = undefined;
      }
    })();
    return this.inFlight;
  }
}
