// Interop export for operators who run AWS's own pod identity webhook instead
// of ours: its `--watch-container-credentials-config` file lists the service
// accounts to inject, as `{"identities":[{"namespace","serviceAccount"}]}`.
// The same document is served read-only by the API listener
// (`GET /clusters/{name}/identities`, server/routes/identities.ts) and printed
// by `pod-identity identities`.
import { hasPattern } from '../associations/resolve.js';
import type { AssociationStore } from '../associations/store.js';

export interface Identity {
  namespace: string;
  serviceAccount: string;
}

export interface IdentitiesFile {
  identities: Identity[];
}

/**
 * One entry per (namespace, serviceAccount), sorted, so the file changes only
 * when the set does. Pattern associations (`build-*`) are left out: AWS's
 * webhook matches names literally, so only our webhook applies them.
 */
export function toIdentitiesFile(subjects: Iterable<Identity>): IdentitiesFile {
  const seen = new Map<string, Identity>();
  for (const { namespace, serviceAccount } of subjects) if (!hasPattern({ namespace, serviceAccount })) seen.set(`${namespace}\u0000${serviceAccount}`, { namespace, serviceAccount });
  const identities = [...seen.values()].sort((a, b) => a.namespace.localeCompare(b.namespace) || a.serviceAccount.localeCompare(b.serviceAccount));
  return { identities };
}

/** The file's text as AWS's webhook reads it (JSON, newline-terminated). */
export function formatIdentitiesFile(file: IdentitiesFile): string {
  return `${JSON.stringify(file, null, 2)}\n`;
}

/** Every association subject of one cluster, read page by page. */
export async function clusterIdentities(store: AssociationStore, clusterName: string): Promise<IdentitiesFile> {
  const subjects: Identity[] = [];
  let afterId: string | undefined;
  while (true) {
    const page = await store.list(clusterName, { afterId, limit: 500 });
    subjects.push(...page);
    if (page.length < 500) break;
    afterId = page[page.length - 1]!.associationId;
  }
  return toIdentitiesFile(subjects);
}
