// Associations as Kubernetes resources: watches PodIdentityAssociation
// objects (podidentity.dev/v1alpha1, deploy/helm/pod-identity/crds/) in one
// cluster and reconciles them into the association store, level-triggered:
// every full list (at start, after a lost watch, and every resync period)
// reconciles every resource and removes associations whose resource is gone.
// What a resource asks for and what its status says are decided in
// resource.ts; this file does the I/O. Nothing here throws out of the loop:
// failures are logged and retried.
import { randomUUID } from 'node:crypto';
import type { Association } from '../../api/eks.js';
import { associationArn, newAssociationId } from '../../associations/service.js';
import { SubjectTakenError, type AssociationStore, type StoreChange } from '../../associations/store.js';
import type { Logger } from '../../lib/logger.js';
import { kubeClientFromKubeconfig, type KubeClient } from '../client.js';
import {
  changesFor,
  CRD_GROUP,
  CRD_PLURAL,
  CRD_VERSION,
  desiredFromSpec,
  nextStatus,
  ownerArnOf,
  ownerArnPrefix,
  sameStatus,
  type PodIdentityAssociationResource,
  type ResourceStatus,
} from './resource.js';

const COLLECTION = `/apis/${CRD_GROUP}/${CRD_VERSION}/${CRD_PLURAL}`;
/** A full list of the cluster's resources is read in one answer: room for ~100,000 of them. */
const MAX_LIST_BYTES = 256 * 1024 * 1024;

// ---------------------------------------------------------------- API server answers

/** The API server refused a status write (the store side may be fine). */
class StatusUpdateError extends Error {
  override name = 'StatusUpdateError';
}

interface WatchEvent {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: PodIdentityAssociationResource & { code?: number; metadata: { resourceVersion?: string } };
}

// ---------------------------------------------------------------- the reconciler

export interface CrdSyncOptions {
  clusterName: string;
  kubeconfigPath: string;
  store: AssociationStore;
  region: string;
  accountId: string;
  logger: Logger;
  /** full relist (reconcile all, remove orphans) this often; default 5 min */
  resyncMs?: number;
  now?: () => number;
}

export interface CrdSync {
  /** resolves after the first full list was reconciled */
  synced: Promise<void>;
  stop(): Promise<void>;
}

export function startCrdSync(options: CrdSyncOptions): CrdSync {
  const { clusterName, store, region, accountId } = options;
  const logger = options.logger.child({ component: 'crd-sync', cluster: clusterName });
  const now = options.now ?? Date.now;
  const resyncSeconds = Math.max(1, Math.round((options.resyncMs ?? 300_000) / 1000));
  const prefix = ownerArnPrefix(region, accountId, clusterName);
  const controller = new AbortController();
  /** the resources as last seen, by uid */
  const known = new Map<string, PodIdentityAssociationResource>();
  const retryTimers = new Set<NodeJS.Timeout>();
  let kube: KubeClient | undefined;
  let queue: Promise<void> = Promise.resolve();
  let markSynced: () => void = () => {};
  const synced = new Promise<void>((resolve) => (markSynced = resolve));

  const ownerOf = (resource: PodIdentityAssociationResource) => ownerArnOf(region, accountId, clusterName, resource);
  const statusPath = (r: PodIdentityAssociationResource) =>
    `/apis/${CRD_GROUP}/${CRD_VERSION}/namespaces/${encodeURIComponent(r.metadata.namespace)}/${CRD_PLURAL}/${encodeURIComponent(r.metadata.name)}/status`;

  /** Runs jobs one at a time: reconciles never race each other within a replica. */
  function enqueue(job: () => Promise<void>) {
    queue = queue.then(job).catch((error: unknown) => logger.error({ err: error }, 'PodIdentityAssociation reconcile failed'));
  }

  function retryLater(resource: PodIdentityAssociationResource) {
    const timer = setTimeout(() => {
      retryTimers.delete(timer);
      const latest = known.get(resource.metadata.uid);
      if (latest) enqueue(() => reconcile(latest));
    }, 5000);
    timer.unref();
    retryTimers.add(timer);
  }

  async function writeStatus(resource: PodIdentityAssociationResource, status: ResourceStatus) {
    if (sameStatus(resource.status, status)) return;
    const res = await kube!.request('PATCH', statusPath(resource), { body: { status }, contentType: 'application/merge-patch+json', timeoutMs: 10_000 });
    if (res.status === 404) return; // deleted meanwhile
    if (res.status < 200 || res.status >= 300) {
      throw new StatusUpdateError(`status update of ${resource.metadata.namespace}/${resource.metadata.name} answered HTTP ${res.status}: ${JSON.stringify(res.body).slice(0, 300)}`);
    }
    const updated = res.body as PodIdentityAssociationResource;
    if (known.has(resource.metadata.uid) && updated?.metadata) known.set(resource.metadata.uid, updated);
  }

  /** The association this resource made earlier, if it still exists and is still its own. */
  async function ownAssociation(resource: PodIdentityAssociationResource): Promise<Association | undefined> {
    const id = resource.status?.associationId;
    if (!id) return undefined;
    const found = await store.get(clusterName, id);
    return found && found.ownerArn === ownerOf(resource) ? found : undefined;
  }

  async function reconcile(resource: PodIdentityAssociationResource, attempt = 1): Promise<void> {
    if (resource.metadata.deletionTimestamp) return remove(resource);
    const owner = ownerOf(resource);
    const generation = resource.metadata.generation;
    const wanted = desiredFromSpec(resource);
    try {
      if (!wanted.ok) {
        // Keep what exists: a typo in Git must not cut running pods off their role.
        const kept = await ownAssociation(resource);
        const message = kept ? `${wanted.message}; association ${kept.associationId} is kept as it was` : wanted.message;
        await writeStatus(resource, nextStatus(resource.status, generation, { ready: false, reason: 'InvalidSpec', message, association: kept }, now()));
        return;
      }
      const desired = wanted.desired;
      // The service account changed: the association for the old one goes.
      const previous = await ownAssociation(resource);
      if (previous && previous.serviceAccount !== desired.serviceAccount) await store.delete(clusterName, previous.associationId);

      let current = await store.findBySubject({ clusterName, namespace: desired.namespace, serviceAccount: desired.serviceAccount });
      if (current && current.ownerArn !== owner) {
        const heldBy = current.ownerArn?.startsWith(prefix)
          ? `the PodIdentityAssociation ${current.ownerArn.slice(prefix.length).split('/').slice(0, 2).join('/')}`
          : current.ownerArn
            ? current.ownerArn
            : 'the EKS API';
        const message = `service account ${desired.namespace}/${desired.serviceAccount} already has association ${current.associationId}, made by ${heldBy}`;
        await writeStatus(resource, nextStatus(resource.status, generation, { ready: false, reason: 'Conflict', message }, now()));
        return;
      }
      if (!current) {
        const created = now();
        const associationId = newAssociationId();
        const association: Association = {
          clusterName,
          namespace: desired.namespace,
          serviceAccount: desired.serviceAccount,
          roleArn: desired.roleArn,
          associationId,
          associationArn: associationArn(region, accountId, clusterName, associationId),
          tags: desired.tags,
          createdAt: created,
          modifiedAt: created,
          ownerArn: owner,
          disableSessionTags: desired.disableSessionTags,
          ...(desired.targetRoleArn !== undefined && { targetRoleArn: desired.targetRoleArn, externalId: randomUUID() }),
          ...(desired.policy !== undefined && { policy: desired.policy }),
        };
        try {
          await store.create(association);
          current = association;
          logger.info({ namespace: desired.namespace, serviceAccount: desired.serviceAccount, associationId, resource: resource.metadata.name }, 'association created from PodIdentityAssociation');
        } catch (error) {
          // Another replica (or an API call) got there first: decide again on what is there now.
          if (error instanceof SubjectTakenError && attempt < 3) return reconcile(resource, attempt + 1);
          throw error;
        }
      } else {
        const changes = changesFor(current, desired, now());
        if (changes) {
          current = (await store.update(clusterName, current.associationId, changes)) ?? current;
          logger.info({ associationId: current.associationId, resource: resource.metadata.name }, 'association updated from PodIdentityAssociation');
        }
      }
      await writeStatus(
        resource,
        nextStatus(
          resource.status,
          generation,
          { ready: true, reason: 'Synced', message: `association ${current.associationId} maps ${desired.namespace}/${desired.serviceAccount} to ${desired.roleArn}`, association: current },
          now(),
        ),
      );
    } catch (error) {
      logger.warn({ err: error, namespace: resource.metadata.namespace, name: resource.metadata.name }, 'PodIdentityAssociation not reconciled; retrying');
      retryLater(resource);
      if (!(error instanceof StatusUpdateError)) {
        await writeStatus(
          resource,
          nextStatus(resource.status, generation, { ready: false, reason: 'StoreError', message: 'the association store could not be updated; retrying' }, now()),
        ).catch(() => {});
      }
    }
  }

  /** The resource is gone: so is every association it made. */
  async function remove(resource: PodIdentityAssociationResource): Promise<void> {
    known.delete(resource.metadata.uid);
    const owner = ownerOf(resource);
    const candidates = new Set<string>();
    if (resource.status?.associationId) candidates.add(resource.status.associationId);
    const serviceAccount = resource.spec?.serviceAccount;
    if (typeof serviceAccount === 'string') {
      const bySubject = await store.findBySubject({ clusterName, namespace: resource.metadata.namespace, serviceAccount });
      if (bySubject) candidates.add(bySubject.associationId);
    }
    for (const id of candidates) {
      const found = await store.get(clusterName, id);
      if (found?.ownerArn === owner) {
        await store.delete(clusterName, id);
        logger.info({ associationId: id, resource: resource.metadata.name, namespace: resource.metadata.namespace }, 'association deleted with its PodIdentityAssociation');
      }
    }
  }

  /** Deletes associations made from resources that no longer exist (missed while not watching). */
  async function collectOrphans(): Promise<void> {
    const live = new Set([...known.values()].map((r) => ownerOf(r)));
    let afterId: string | undefined;
    for (;;) {
      const page = await store.list(clusterName, { afterId, limit: 500 });
      for (const a of page) {
        if (a.ownerArn?.startsWith(prefix) && !live.has(a.ownerArn)) {
          await store.delete(clusterName, a.associationId);
          logger.info({ associationId: a.associationId, owner: a.ownerArn }, 'association deleted: its PodIdentityAssociation is gone');
        }
      }
      if (page.length < 500) return;
      afterId = page[page.length - 1]!.associationId;
    }
  }

  /** Changes made elsewhere (the API, another replica) that a resource may need to answer. */
  function onStoreChange(change: StoreChange) {
    const a = change.association;
    if (a.clusterName !== clusterName) return;
    for (const resource of known.values()) {
      const sameSubject = resource.metadata.namespace === a.namespace && resource.spec?.serviceAccount === a.serviceAccount;
      const ownsIt = a.ownerArn === ownerOf(resource);
      // A freed service account may end a Conflict; an owned association changed or deleted behind our back is put back.
      if ((change.kind === 'delete' && sameSubject) || (ownsIt && change.kind === 'upsert' && desiredFromSpec(resource).ok)) {
        enqueue(() => reconcile(known.get(resource.metadata.uid) ?? resource));
      }
    }
  }

  async function listAndReconcile(): Promise<string | undefined> {
    const res = await kube!.request('GET', COLLECTION, { timeoutMs: 30_000, maxBytes: MAX_LIST_BYTES });
    if (res.status === 404) throw new Error(`the PodIdentityAssociation CRD (${CRD_PLURAL}.${CRD_GROUP}) is not installed in cluster ${clusterName}`);
    if (res.status !== 200) throw new Error(`listing PodIdentityAssociations answered HTTP ${res.status}`);
    const list = res.body as { metadata?: { resourceVersion?: string }; items?: PodIdentityAssociationResource[] };
    known.clear();
    for (const item of list.items ?? []) known.set(item.metadata.uid, item);
    await new Promise<void>((resolve) => {
      for (const item of list.items ?? []) enqueue(() => reconcile(item));
      enqueue(async () => {
        await collectOrphans();
        resolve();
      });
    });
    return list.metadata?.resourceVersion;
  }

  async function run() {
    let backoffMs = 500;
    while (!controller.signal.aborted) {
      try {
        kube ??= kubeClientFromKubeconfig(options.kubeconfigPath);
        let resourceVersion = await listAndReconcile();
        markSynced();
        backoffMs = 500;
        // Watch until the server ends it (timeoutSeconds = the resync period) or it fails; then list again.
        let expired = false;
        const query = `?watch=true&allowWatchBookmarks=true&timeoutSeconds=${resyncSeconds}${resourceVersion ? `&resourceVersion=${encodeURIComponent(resourceVersion)}` : ''}`;
        await kube.watch(
          `${COLLECTION}${query}`,
          (line) => {
            const event = JSON.parse(line) as WatchEvent;
            if (event.object?.metadata?.resourceVersion) resourceVersion = event.object.metadata.resourceVersion;
            if (event.type === 'ERROR') {
              expired = true; // typically 410 Gone: our resourceVersion is too old
              return;
            }
            if (event.type === 'BOOKMARK') return;
            const resource = event.object;
            if (event.type === 'DELETED') {
              known.delete(resource.metadata.uid);
              enqueue(() => remove(resource));
            } else {
              known.set(resource.metadata.uid, resource);
              enqueue(() => reconcile(known.get(resource.metadata.uid) ?? resource));
            }
          },
          controller.signal,
          (resyncSeconds + 60) * 1000,
        );
        if (expired) logger.debug('watch expired; listing again');
      } catch (error) {
        if (controller.signal.aborted) break;
        logger.warn({ err: error, retryInMs: backoffMs }, 'PodIdentityAssociation watch failed; retrying');
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, backoffMs);
          controller.signal.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true });
        });
        backoffMs = Math.min(backoffMs * 2, 30_000);
      }
    }
  }

  const unsubscribe = store.onChange(onStoreChange);
  const running = run();
  logger.info('watching PodIdentityAssociation resources');

  return {
    synced,
    async stop() {
      controller.abort();
      unsubscribe();
      for (const timer of retryTimers) clearTimeout(timer);
      await running;
      await queue;
      kube?.close();
    },
  };
}
