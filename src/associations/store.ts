// The association store: the one interface every backend (SQLite, PostgreSQL)
// implements, so callers never know which one they talk to. All methods are
// async even where SQLite is synchronous, because PostgreSQL is not.
import type { Association } from '../api/eks.js';
import type { AssociationChanges, Subject } from './types.js';

/** A create whose (cluster, namespace, serviceAccount) already has an association. */
export class SubjectTakenError extends Error {
  override name = 'SubjectTakenError';
  constructor(readonly existing: Subject) {
    super(`an association already exists for ${existing.namespace}/${existing.serviceAccount} in cluster ${existing.clusterName}`);
  }
}

/** Why a store cannot write: what the operator must fix (the engine's own code is in `cause`). */
export type StoreWriteProblem = 'disk full' | 'read-only' | 'I/O error';

/** A write the store's engine refused for want of space or permission: the one error every backend maps these to. */
export class StoreWriteError extends Error {
  override name = 'StoreWriteError';
  constructor(
    readonly problem: StoreWriteProblem,
    options: { cause: unknown },
  ) {
    super(`the association store cannot write: ${problem}`, options);
  }
}

/** Idempotency record of a create: the token, a fingerprint of its input, what it made. */
export interface RequestTokenRecord {
  fingerprint: string;
  associationId: string;
}

export interface ListQuery {
  namespace?: string;
  serviceAccount?: string;
  /** exclusive lower bound on associationId (the pagination cursor) */
  afterId?: string;
  limit: number;
}

export type StoreChange = { kind: 'upsert' | 'delete'; association: Association };

export interface AssociationStore {
  /**
   * Inserts a new association; throws SubjectTakenError when its subject is
   * taken. With a request token, the token is recorded in the same
   * transaction, and a token already recorded returns its record instead of
   * inserting (the caller compares fingerprints).
   */
  create(association: Association, requestToken?: { token: string; fingerprint: string }): Promise<{ created: true; association: Association } | { created: false; record: RequestTokenRecord }>;
  get(clusterName: string, associationId: string): Promise<Association | undefined>;
  /** The association of exactly this (cluster, namespace, serviceAccount), patterns taken literally: one indexed read. */
  findBySubject(subject: Subject): Promise<Association | undefined>;
  /**
   * The hot path of EKS Auth and the webhook: the subject's exact association
   * and the cluster's pattern associations that may match it (resolve.ts picks
   * one). Two indexed reads; the second only sees pattern rows.
   */
  findCandidates(subject: Subject): Promise<Association[]>;
  /** Ordered by associationId ascending. */
  list(clusterName: string, query: ListQuery): Promise<Association[]>;
  /** Every association of every cluster, ordered by (clusterName, associationId); for exports and migration. */
  listAll(afterKey?: { clusterName: string; associationId: string }, limit?: number): Promise<Association[]>;
  update(clusterName: string, associationId: string, changes: AssociationChanges): Promise<Association | undefined>;
  delete(clusterName: string, associationId: string): Promise<Association | undefined>;
  /** How many associations each cluster has (clusters without any are absent); for the association-count metric. */
  countByCluster(): Promise<Record<string, number>>;
  /** Store-wide change feed, so in-memory caches in every replica stay current. */
  onChange(listener: (change: StoreChange) => void): () => void;
  /** Cheap readiness check for /readyz; fails while the store cannot write (then it tries a write itself, so it recovers on its own). */
  ping(): Promise<void>;
  close(): Promise<void>;
}
