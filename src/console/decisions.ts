// The console's view of one EKS Auth decision: the audit record's display
// fields (auth/service.ts's DecisionRecord) and where it was made. Built from
// named fields only, so nothing else the record holds (the token's jti, the
// issued access key id) reaches a page; a record never holds a secret anyway.
import type { AuditEntry } from '../lib/audit.js';
import type { ConsoleDecision, Outcome } from './client/decision.js';

/** Where a record was made: a replica and, with `workers` above 1, its worker. */
export interface DecisionOrigin {
  host: string;
  worker?: number;
}

const OUTCOMES: readonly string[] = ['allowed', 'denied', 'failed'];

function text(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

/** Whether an audit record is an EKS Auth decision (the trail also holds association changes). */
export function isDecisionRecord(record: AuditEntry): boolean {
  return record.type === 'eks-auth-decision';
}

/** The display fields of a decision record; undefined for any other record. */
export function toConsoleDecision(record: AuditEntry, origin: DecisionOrigin, seq: number): ConsoleDecision | undefined {
  if (!isDecisionRecord(record)) return undefined;
  const r = record as unknown as Record<string, unknown>;
  const outcome = OUTCOMES.includes(r.outcome as string) ? (r.outcome as Outcome) : 'failed';
  const optional = {
    namespace: text(r.namespace),
    serviceAccount: text(r.serviceAccount),
    pod: text(r.podName),
    node: text(r.node),
    roleArn: text(r.roleArn),
    errorType: text(r.errorType),
    reason: text(r.reason),
  };
  return {
    seq,
    time: record.time,
    cluster: text(r.cluster) ?? '',
    ...(Object.fromEntries(Object.entries(optional).filter(([, v]) => v !== undefined)) as Partial<ConsoleDecision>),
    outcome,
    requestId: text(r.requestId) ?? '',
    replica: origin.host,
    ...(origin.worker !== undefined && { worker: origin.worker }),
  };
}

/** What the live feed shows: each set field must match exactly. */
export interface DecisionFilter {
  cluster?: string;
  namespace?: string;
  serviceAccount?: string;
  outcome?: Outcome;
}

/** The filter a query string names (blank fields and unknown outcomes mean "any"). */
export function parseDecisionFilter(query: URLSearchParams): DecisionFilter {
  const filter: DecisionFilter = {};
  for (const key of ['cluster', 'namespace', 'serviceAccount'] as const) {
    const value = query.get(key)?.trim();
    if (value) filter[key] = value;
  }
  const outcome = query.get('outcome');
  if (outcome && OUTCOMES.includes(outcome)) filter.outcome = outcome as Outcome;
  return filter;
}

export function matchesFilter(decision: ConsoleDecision, filter: DecisionFilter): boolean {
  return (
    (filter.cluster === undefined || decision.cluster === filter.cluster) &&
    (filter.namespace === undefined || decision.namespace === filter.namespace) &&
    (filter.serviceAccount === undefined || decision.serviceAccount === filter.serviceAccount) &&
    (filter.outcome === undefined || decision.outcome === filter.outcome)
  );
}
