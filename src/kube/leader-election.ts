// Leader election on a coordination.k8s.io/v1 Lease: of the replicas that
// run the same elector, one at a time leads (the CRD reconciler runs only
// there). The decisions are pure functions of the lease, this replica's clock
// and its identity: nextLeaseStep (create, renew or take the lease, or wait)
// and leadershipAfter (whether we still lead after an attempt). The loop
// around them reads and writes the Lease, always with the resourceVersion it
// read, so that of two replicas writing the same version one gets a conflict.
//
// Expiry is measured on this replica's clock only, as client-go does: a
// foreign lease is taken over once it has not changed for its duration since
// this replica first saw its current version, whatever the holder's clock
// says. A leader that cannot renew for renewDeadline stops leading, which is
// before any other replica may take over (leaseDuration after its last renew).
import { setTimeout as sleep } from 'node:timers/promises';
import { CoordinationV1Api, type V1Lease, type V1LeaseSpec } from '@kubernetes/client-node';
import type { Logger } from '../lib/logger.js';
import { describeKubeError, refusedStatus, type KubeApi } from './connect.js';

export interface LeaseTiming {
  /** how long a lease lasts without renewal */
  leaseDurationMs: number;
  /** how often the leader renews */
  renewIntervalMs: number;
  /** how often a follower (or a leader whose renewal failed) tries again */
  retryIntervalMs: number;
  /** a leader that could not renew for this long stops leading; below leaseDurationMs */
  renewDeadlineMs: number;
}

export const DEFAULT_LEASE_TIMING: LeaseTiming = { leaseDurationMs: 15_000, renewIntervalMs: 5_000, retryIntervalMs: 2_000, renewDeadlineMs: 10_000 };

// ---------------------------------------------------------------- pure decisions

/** When this replica first saw the lease's current version (by its own clock). */
export interface Sighting {
  resourceVersion: string;
  at: number;
}

/** The sighting of `lease` at `now`: kept while the lease is unchanged, new when it changed. */
export function sight(previous: Sighting | undefined, lease: V1Lease | undefined, now: number): Sighting | undefined {
  const version = lease?.metadata?.resourceVersion;
  if (version === undefined) return undefined;
  return previous?.resourceVersion === version ? previous : { resourceVersion: version, at: now };
}

export type LeaseStep =
  /** no lease yet: create one naming us */
  | { kind: 'create'; spec: V1LeaseSpec }
  /** ours: move its renewTime */
  | { kind: 'renew'; spec: V1LeaseSpec }
  /** released, or expired by our clock: take it over */
  | { kind: 'take'; spec: V1LeaseSpec }
  /** another replica's live lease */
  | { kind: 'wait'; holder: string; expiresAt: number };

/**
 * client-node hands V1MicroTime through unconverted (its type says Date),
 * and the API server parses MicroTime with exactly six fractional digits.
 */
function microTime(ms: number): Date {
  return new Date(ms).toISOString().replace(/Z$/, '000Z') as unknown as Date;
}

/** What to do with the lease (undefined: there is none) at `now`, for `identity`, given when we first saw its current version. */
export function nextLeaseStep(lease: V1Lease | undefined, seen: Sighting | undefined, now: number, identity: string, leaseDurationMs: number): LeaseStep {
  const leaseDurationSeconds = Math.ceil(leaseDurationMs / 1000);
  const fresh = (transitions: number): V1LeaseSpec => ({
    holderIdentity: identity,
    leaseDurationSeconds,
    acquireTime: microTime(now),
    renewTime: microTime(now),
    leaseTransitions: transitions,
  });
  if (!lease) return { kind: 'create', spec: fresh(0) };
  const spec = lease.spec ?? {};
  const holder = spec.holderIdentity ?? '';
  if (holder === identity) return { kind: 'renew', spec: { ...spec, leaseDurationSeconds, renewTime: microTime(now) } };
  const transitions = (spec.leaseTransitions ?? 0) + 1;
  if (holder === '') return { kind: 'take', spec: fresh(transitions) };
  // the holder's own duration counts; a lease we have not seen before is live for a whole duration from now
  const expiresAt = (seen?.at ?? now) + (spec.leaseDurationSeconds ?? leaseDurationSeconds) * 1000;
  if (now >= expiresAt) return { kind: 'take', spec: fresh(transitions) };
  return { kind: 'wait', holder, expiresAt };
}

/** How an attempt ended: the lease written, someone else's live lease, a write that lost against another writer's (409), or no answer. */
export type AttemptOutcome = 'written' | 'waiting' | 'conflict' | 'failed';

export interface Leadership {
  leading: boolean;
  /** when our last write of the lease succeeded */
  renewedAt?: number;
}

/** Whether we lead after an attempt, and how long until the next one. */
export function leadershipAfter(outcome: AttemptOutcome, before: Leadership, now: number, timing: LeaseTiming): Leadership & { nextAttemptInMs: number } {
  switch (outcome) {
    case 'written':
      return { leading: true, renewedAt: now, nextAttemptInMs: timing.renewIntervalMs };
    case 'waiting':
      return { leading: false, nextAttemptInMs: timing.retryIntervalMs };
    case 'conflict':
      // the lease changed since we read it: it may be someone else's now; stop, and read it again at once
      return { leading: false, nextAttemptInMs: 0 };
    case 'failed': {
      const stillLeading = before.leading && before.renewedAt !== undefined && now - before.renewedAt < timing.renewDeadlineMs;
      return { leading: stillLeading, ...(stillLeading && { renewedAt: before.renewedAt }), nextAttemptInMs: timing.retryIntervalMs };
    }
  }
}

// ---------------------------------------------------------------- the loop

export interface LeaderElectionOptions {
  kube: KubeApi;
  namespace: string;
  name: string;
  /** unique per replica: the pod name and a random suffix */
  identity: string;
  logger: Logger;
  /** called when this replica becomes the leader */
  onStartedLeading(): void | Promise<void>;
  /** called when it stops leading (lost, or stopping); awaited before the lease is released */
  onStoppedLeading(): void | Promise<void>;
  /** called for every attempt whose read or write of the Lease failed (not a conflict) */
  onFailedAttempt?(): void;
  timing?: LeaseTiming;
  now?: () => number;
}

export interface LeaderElection {
  isLeading(): boolean;
  /** stops the loop; a leader stops leading, then releases the lease so that another replica takes over at once */
  stop(): Promise<void>;
}

export function startLeaderElection(options: LeaderElectionOptions): LeaderElection {
  const { namespace, name, identity } = options;
  const timing = options.timing ?? DEFAULT_LEASE_TIMING;
  const now = options.now ?? Date.now;
  const logger = options.logger.child({ lease: `${namespace}/${name}`, identity });
  const leases = options.kube.client(CoordinationV1Api, { timeoutMs: 2_000 });
  const controller = new AbortController();
  let leadership: Leadership = { leading: false };
  let seen: Sighting | undefined;
  /** the lease as we last read or wrote it, for the release */
  let lastLease: V1Lease | undefined;
  let deadline: NodeJS.Timeout | undefined;
  /** starts and stops of the leader's work, one after the other */
  let transitions: Promise<void> = Promise.resolve();
  /** what was last logged about the lease (another holder, an error), so that a state that lasts is logged once */
  let lastLogged: string | undefined;
  const logOnce = (what: string, log: () => void) => {
    if (lastLogged !== what) log();
    lastLogged = what;
  };

  function setLeading(leading: boolean): void {
    if (leading === leadership.leading) return;
    leadership = { ...leadership, leading };
    if (!leading) clearTimeout(deadline);
    logger.info(leading ? 'leading' : 'stopped leading');
    const transition = leading ? options.onStartedLeading : options.onStoppedLeading;
    transitions = transitions.then(transition).catch((error: unknown) => logger.error({ err: error }, leading ? 'starting the leader’s work failed' : 'stopping the leader’s work failed'));
  }

  /** `lease` with another spec, to be written over the version that was read */
  function leaseWith(lease: V1Lease, spec: V1LeaseSpec): V1Lease {
    const { resourceVersion, labels, annotations } = lease.metadata ?? {};
    return { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name, namespace, resourceVersion, labels, annotations }, spec };
  }

  async function read(): Promise<V1Lease | undefined> {
    try {
      return await leases.readNamespacedLease({ namespace, name });
    } catch (error) {
      if (refusedStatus(error) === 404) return undefined;
      throw error;
    }
  }

  async function write(step: Exclude<LeaseStep, { kind: 'wait' }>, lease: V1Lease | undefined): Promise<V1Lease> {
    if (step.kind === 'create') return leases.createNamespacedLease({ namespace, body: { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name, namespace }, spec: step.spec } });
    return leases.replaceNamespacedLease({ namespace, name, body: leaseWith(lease!, step.spec) });
  }

  async function attempt(): Promise<AttemptOutcome> {
    try {
      const lease = await read();
      lastLease = lease;
      seen = sight(seen, lease, now());
      const step = nextLeaseStep(lease, seen, now(), identity, timing.leaseDurationMs);
      if (step.kind === 'wait') {
        logOnce(`holder ${step.holder}`, () => logger.info({ holder: step.holder }, 'another replica leads'));
        return 'waiting';
      }
      lastLease = await write(step, lease);
      if (step.kind !== 'renew') logger.info({ step: step.kind }, 'lease acquired');
      lastLogged = undefined;
      return 'written';
    } catch (error) {
      // 409: created or updated by someone else since we read it
      if (refusedStatus(error) === 409) return 'conflict';
      const message = describeKubeError(error);
      logOnce(`error ${message}`, () => logger.warn({ err: message }, 'lease not read or written; retrying'));
      options.onFailedAttempt?.();
      return 'failed';
    }
  }

  async function run(): Promise<void> {
    while (!controller.signal.aborted) {
      const outcome = await attempt();
      if (controller.signal.aborted) break;
      const next = leadershipAfter(outcome, leadership, now(), timing);
      if (outcome === 'written') {
        // a renewal that hangs must not keep us leading past the deadline
        clearTimeout(deadline);
        deadline = setTimeout(() => setLeading(false), timing.renewDeadlineMs);
        deadline.unref();
      }
      leadership = { ...leadership, renewedAt: next.renewedAt };
      setLeading(next.leading);
      await sleep(next.nextAttemptInMs, undefined, { signal: controller.signal }).catch(() => undefined);
    }
  }

  async function release(): Promise<void> {
    const lease = lastLease;
    if (lease?.spec?.holderIdentity !== identity) return;
    try {
      await leases.replaceNamespacedLease({ namespace, name, body: leaseWith(lease, { ...lease.spec, holderIdentity: undefined, leaseDurationSeconds: 1, renewTime: microTime(now()) }) });
      logger.info('lease released');
    } catch (error) {
      logger.warn({ err: describeKubeError(error) }, 'lease not released; another replica takes over when it expires');
    }
  }

  const running = run();
  return {
    isLeading: () => leadership.leading,
    async stop() {
      controller.abort();
      await running;
      const wasLeading = leadership.leading;
      setLeading(false);
      await transitions;
      if (wasLeading) await release();
    },
  };
}
