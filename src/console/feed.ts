// What the console knows of EKS Auth decisions, in the process that serves
// it: the latest decisions (for a page's first rows and a live feed that
// resumes), each service account's last success and last failure, and
// per-minute counts of issued and refused credentials. Decisions arrive from
// this process's audit trail and, with API workers, from theirs over the
// cluster channel (server/workers.ts): those are this replica's own; with
// PostgreSQL, other replicas' arrive relayed (replica-relay.ts). Memory is
// bounded: a fixed number of recent decisions and service accounts, and an
// hour of minutes.
import { BoundedMap } from '../lib/bounded-cache.js';
import type { AuditEntry } from '../lib/audit.js';
import type { ConsoleDecision } from './client/decision.js';
import { matchesFilter, toConsoleDecision, type DecisionFilter, type DecisionOrigin } from './decisions.js';

const RECENT = 500;
const SERVICE_ACCOUNTS = 10_000;
/** minutes of counts kept (the chart shows the last 30) */
const MINUTES = 60;

export interface ServiceAccountState {
  cluster: string;
  namespace: string;
  serviceAccount: string;
  lastSuccess?: ConsoleDecision;
  lastFailure?: ConsoleDecision;
}

export interface MinuteCount {
  /** epoch ms at the minute's start */
  minute: number;
  issued: number;
  refused: number;
}

type Listener = (decision: ConsoleDecision) => void;

/** A decision as another replica relays it: everything but this process's sequence number. */
export type RelayedDecision = Omit<ConsoleDecision, 'seq'>;

export class DecisionFeed {
  private readonly recent: ConsoleDecision[] = [];
  private readonly accounts = new BoundedMap<string, ServiceAccountState>(SERVICE_ACCOUNTS);
  private readonly minutes = new Map<number, MinuteCount>();
  private readonly listeners = new Set<Listener>();
  private readonly localListeners = new Set<Listener>();
  private seq = 0;

  constructor(private readonly now: () => number = Date.now) {}

  /** Takes an audit record made at `origin`; anything but a decision is ignored. */
  add(record: AuditEntry, origin: DecisionOrigin): void {
    const decision = toConsoleDecision(record, origin, this.seq + 1);
    if (!decision) return;
    this.accept(decision);
    for (const listener of this.localListeners) listener(decision);
  }

  /** Takes a decision another replica made. */
  addRelayed(relayed: RelayedDecision): void {
    this.accept({ ...relayed, seq: this.seq + 1 });
  }

  /** Counts decisions another replica made but did not relay one by one (past its batch's limit), for the chart. */
  countRelayed(issued: number, refused: number): void {
    const bucket = this.bucket();
    bucket.issued += issued;
    bucket.refused += refused;
  }

  private accept(decision: ConsoleDecision): void {
    this.seq = decision.seq;
    this.recent.push(decision);
    if (this.recent.length > RECENT) this.recent.shift();
    this.count(decision);
    if (decision.namespace !== undefined && decision.serviceAccount !== undefined) {
      const key = JSON.stringify([decision.cluster, decision.namespace, decision.serviceAccount]);
      const state = this.accounts.get(key) ?? { cluster: decision.cluster, namespace: decision.namespace, serviceAccount: decision.serviceAccount };
      if (decision.outcome === 'allowed') state.lastSuccess = decision;
      else state.lastFailure = decision;
      this.accounts.set(key, state);
    }
    for (const listener of this.listeners) listener(decision);
  }

  private count(decision: ConsoleDecision): void {
    const bucket = this.bucket();
    if (decision.outcome === 'allowed') bucket.issued++;
    else bucket.refused++;
  }

  /** The current minute's counts (older than an hour are dropped as a new minute starts). */
  private bucket(): MinuteCount {
    const minute = Math.floor(this.now() / 60_000) * 60_000;
    let bucket = this.minutes.get(minute);
    if (!bucket) {
      bucket = { minute, issued: 0, refused: 0 };
      this.minutes.set(minute, bucket);
      for (const old of this.minutes.keys()) if (old <= minute - MINUTES * 60_000) this.minutes.delete(old);
    }
    return bucket;
  }

  /** The latest decisions that match, newest first; only those after `afterSeq` when given. */
  latest(filter: DecisionFilter, limit = 100, afterSeq = 0): ConsoleDecision[] {
    const found: ConsoleDecision[] = [];
    for (let i = this.recent.length - 1; i >= 0 && found.length < limit; i--) {
      const decision = this.recent[i]!;
      if (decision.seq <= afterSeq) break;
      if (matchesFilter(decision, filter)) found.push(decision);
    }
    return found;
  }

  /** The sequence number of the newest decision (0 before the first). */
  lastSeq(): number {
    return this.seq;
  }

  /** Every service account seen, most recently decided first. */
  serviceAccounts(filter: DecisionFilter = {}): ServiceAccountState[] {
    const latestOf = (s: ServiceAccountState) => Math.max(s.lastSuccess?.seq ?? 0, s.lastFailure?.seq ?? 0);
    const states: ServiceAccountState[] = [];
    for (const state of this.accounts.values()) {
      const latest = (state.lastSuccess?.seq ?? 0) > (state.lastFailure?.seq ?? 0) ? state.lastSuccess! : state.lastFailure!;
      if (matchesFilter({ ...latest, outcome: filter.outcome ?? latest.outcome }, filter)) states.push(state);
    }
    return states.sort((a, b) => latestOf(b) - latestOf(a));
  }

  /** Counts of the last `count` minutes, oldest first, the current minute last (zeros where nothing happened). */
  perMinute(count = 30): MinuteCount[] {
    const current = Math.floor(this.now() / 60_000) * 60_000;
    return Array.from({ length: count }, (_, i) => {
      const minute = current - (count - 1 - i) * 60_000;
      return this.minutes.get(minute) ?? { minute, issued: 0, refused: 0 };
    });
  }

  /** Calls `listener` with every new decision; returns the unsubscribe. */
  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Calls `listener` with each decision made in this replica (not those relayed from others); returns the unsubscribe. */
  subscribeLocal(listener: Listener): () => void {
    this.localListeners.add(listener);
    return () => this.localListeners.delete(listener);
  }
}
