// Associations as Kubernetes resources: PodIdentityAssociation objects
// (podidentity.dev/v1alpha1, deploy/helm/pod-identity/crds/) of one cluster
// reconciled into associations through the AssociationService, with the
// rules of the EKS API. Level-triggered: client-node's informer lists and
// watches the resources; every list (at start, and after the watch fell too
// far behind) and every resync period reconciles each resource and removes
// associations whose resource is gone.
//
// One replica reconciles at a time: startCrdSync elects a leader on a Lease
// (leader-election.ts), and only the leader runs a reconciler; losing the
// lease stops it at once. What a resource asks for and what its status says
// are decided in resource.ts; this file does the I/O. Nothing here throws out
// of the loop: failures are logged and retried.
import { CustomObjectsApi, makeInformer, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import type { Association } from '../../api/eks.js';
import type { Actor } from '../../associations/audit.js';
import type { AssociationService } from '../../associations/service.js';
import type { StoreChange } from '../../associations/store.js';
import { WireError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import { describeKubeError, refusedStatus, type KubeApi } from '../connect.js';
import { startLeaderElection, type LeaseTiming } from '../leader-election.js';
import {
  actorOf,
  actorOfOwnerArn,
  changesFor,
  conflictMessage,
  createInputFor,
  CRD_GROUP,
  CRD_PLURAL,
  CRD_VERSION,
  desiredFromSpec,
  leaseNameFor,
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
const RETRY_MS = 5_000;
const MAX_BACKOFF_MS = 30_000;
const MERGE_PATCH = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

/** The API server refused a status write (the association side may be fine). */
class StatusUpdateError extends Error {
  override name = 'StatusUpdateError';
}

/** Leadership was lost while a reconcile ran: it ends without writing anything more. */
class StoppedError extends Error {
  override name = 'StoppedError';
}

interface ReconcilerOptions {
  clusterName: string;
  kube: KubeApi;
  associations: AssociationService;
  /** the store's change feed: changes made elsewhere (the API, another replica) that a resource may have to answer */
  onStoreChange(listener: (change: StoreChange) => void): () => void;
  region: string;
  accountId: string;
  logger: Logger;
  /** reconcile every resource again and remove orphans this often; default 5 min */
  resyncMs?: number;
  /** counts a failure: a resource not reconciled, a status write refused, the list or watch broken, the Lease not read or written */
  onError?: (kind: CrdSyncErrorKind) => void;
  now?: () => number;
}

type CrdSyncErrorKind = 'reconcile' | 'status' | 'watch' | 'lease';

interface Reconciler {
  /** ends the watch, drops the work not started, and waits for the reconcile in progress */
  stop(): Promise<void>;
}

/** Reconciles the cluster's resources until stopped (one leadership term). */
function startReconciler(options: ReconcilerOptions): Reconciler {
  const { clusterName, associations, region, accountId } = options;
  const countError = options.onError ?? (() => undefined);
  const logger = options.logger.child({ component: 'crd-sync', cluster: clusterName });
  const now = options.now ?? Date.now;
  const prefix = ownerArnPrefix(region, accountId, clusterName);
  const objects = options.kube.client(CustomObjectsApi, { timeoutMs: 10_000 });
  const lister = options.kube.client(CustomObjectsApi, { timeoutMs: 30_000, maxBytes: MAX_LIST_BYTES });
  const crd = { group: CRD_GROUP, version: CRD_VERSION, plural: CRD_PLURAL };
  const timers = new Set<NodeJS.Timeout>();
  let active = true;
  let backoffMs = 500;
  let queue: Promise<void> = Promise.resolve();
  /** resources with a reconcile queued and not yet started, by namespace/name */
  const queued = new Set<string>();

  const ownerOf = (resource: PodIdentityAssociationResource) => ownerArnOf(region, accountId, clusterName, resource);
  const keyOf = (resource: PodIdentityAssociationResource) => `${resource.metadata.namespace}/${resource.metadata.name}`;

  function later(ms: number, job: () => void): void {
    const timer = setTimeout(() => {
      timers.delete(timer);
      if (active) job();
    }, ms);
    timer.unref();
    timers.add(timer);
  }

  function ensureActive(): void {
    if (!active) throw new StoppedError('no longer leading');
  }

  /** Runs jobs one at a time, so reconciles never race each other; none starts once stopped. */
  function enqueue(job: () => Promise<void>): void {
    queue = queue
      .then(() => (active ? job() : undefined))
      .catch((error: unknown) => {
        if (error instanceof StoppedError) return;
        countError('reconcile');
        logger.error({ err: error }, 'PodIdentityAssociation reconcile failed');
      });
  }

  /** Reconciles the resource as it is when the job runs (events for it meanwhile make no more jobs). */
  function enqueueReconcile(resource: PodIdentityAssociationResource): void {
    const key = keyOf(resource);
    if (queued.has(key)) return;
    queued.add(key);
    enqueue(async () => {
      queued.delete(key);
      const latest = informer.get(resource.metadata.name, resource.metadata.namespace);
      // gone: its DELETED event removes what it made
      if (latest) await reconcile(latest);
    });
  }

  async function writeStatus(resource: PodIdentityAssociationResource, status: ResourceStatus): Promise<void> {
    if (sameStatus(resource.status, status)) return;
    ensureActive();
    const { namespace, name } = resource.metadata;
    try {
      await objects.patchNamespacedCustomObjectStatus({ ...crd, namespace, name, body: { status } }, MERGE_PATCH);
    } catch (error) {
      if (refusedStatus(error) === 404) return; // deleted meanwhile
      throw new StatusUpdateError(`status update of ${namespace}/${name}: ${describeKubeError(error)}`, { cause: error });
    }
  }

  /** The association this resource made earlier, if it still exists and is still its own. */
  async function ownAssociation(resource: PodIdentityAssociationResource): Promise<Association | undefined> {
    const id = resource.status?.associationId;
    if (!id) return undefined;
    const found = await associations.find(clusterName, id);
    return found?.ownerArn === ownerOf(resource) ? found : undefined;
  }

  async function deleteIfThere(associationId: string, actor: Actor): Promise<void> {
    ensureActive();
    try {
      await associations.delete(clusterName, associationId, { actor });
    } catch (error) {
      if (!(error instanceof WireError && error.code === 'ResourceNotFoundException')) throw error;
    }
  }

  async function reconcile(resource: PodIdentityAssociationResource, attempt = 1): Promise<void> {
    if (resource.metadata.deletionTimestamp) return remove(resource);
    const owner = ownerOf(resource);
    const actor = actorOf(resource);
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
      if (previous && previous.serviceAccount !== desired.serviceAccount) await deleteIfThere(previous.associationId, actor);

      let current = await associations.findBySubject({ clusterName, namespace: desired.namespace, serviceAccount: desired.serviceAccount });
      if (current && current.ownerArn !== owner) {
        await writeStatus(resource, nextStatus(resource.status, generation, { ready: false, reason: 'Conflict', message: conflictMessage(desired, current, prefix) }, now()));
        return;
      }
      if (!current) {
        ensureActive();
        try {
          current = await associations.create(clusterName, createInputFor(desired), { actor }, { ownerArn: owner });
        } catch (error) {
          // An API call got there first: decide again on what is there now.
          if (error instanceof WireError && error.code === 'ResourceInUseException' && attempt < 3) return reconcile(resource, attempt + 1);
          throw error;
        }
        logger.info({ namespace: desired.namespace, serviceAccount: desired.serviceAccount, associationId: current.associationId, resource: resource.metadata.name }, 'association created from PodIdentityAssociation');
      } else {
        const changes = changesFor(current, desired);
        if (changes) {
          ensureActive();
          current = await associations.update(clusterName, current.associationId, changes, { actor });
          logger.info({ associationId: current.associationId, resource: resource.metadata.name }, 'association updated from PodIdentityAssociation');
        }
      }
      const message = `association ${current.associationId} maps ${desired.namespace}/${desired.serviceAccount} to ${desired.roleArn}`;
      await writeStatus(resource, nextStatus(resource.status, generation, { ready: true, reason: 'Synced', message, association: current }, now()));
    } catch (error) {
      if (error instanceof StoppedError) throw error;
      countError(error instanceof StatusUpdateError ? 'status' : 'reconcile');
      logger.warn({ err: error, namespace: resource.metadata.namespace, name: resource.metadata.name }, 'PodIdentityAssociation not reconciled; retrying');
      later(RETRY_MS, () => enqueueReconcile(resource));
      if (!(error instanceof StatusUpdateError)) {
        const status = nextStatus(resource.status, generation, { ready: false, reason: 'StoreError', message: 'the association store could not be updated; retrying' }, now());
        await writeStatus(resource, status).catch(() => undefined);
      }
    }
  }

  /** The resource is gone: so is every association it made. */
  async function remove(resource: PodIdentityAssociationResource): Promise<void> {
    const owner = ownerOf(resource);
    const candidates = new Set<string>();
    if (resource.status?.associationId) candidates.add(resource.status.associationId);
    const serviceAccount = resource.spec?.serviceAccount;
    if (typeof serviceAccount === 'string') {
      const bySubject = await associations.findBySubject({ clusterName, namespace: resource.metadata.namespace, serviceAccount }).catch(() => undefined);
      if (bySubject) candidates.add(bySubject.associationId);
    }
    for (const id of candidates) {
      const found = await associations.find(clusterName, id);
      if (found?.ownerArn === owner) {
        await deleteIfThere(id, actorOf(resource));
        logger.info({ associationId: id, resource: resource.metadata.name, namespace: resource.metadata.namespace }, 'association deleted with its PodIdentityAssociation');
      }
    }
  }

  /** Deletes associations made from resources not in `live` (deleted while nobody watched). */
  async function collectOrphans(live: readonly PodIdentityAssociationResource[]): Promise<void> {
    const owners = new Set(live.map(ownerOf));
    let nextToken: string | undefined;
    do {
      const page = await associations.list(clusterName, { maxResults: 100, nextToken });
      for (const a of page.associations) {
        if (a.ownerArn?.startsWith(prefix) && !owners.has(a.ownerArn)) {
          await deleteIfThere(a.associationId, actorOfOwnerArn(a.ownerArn, prefix));
          logger.info({ associationId: a.associationId, owner: a.ownerArn }, 'association deleted: its PodIdentityAssociation is gone');
        }
      }
      nextToken = page.nextToken;
    } while (nextToken);
  }

  /** A full list: every resource in it is reconciled, then what no listed resource owns is removed. */
  async function listAll() {
    let list;
    try {
      list = (await lister.listClusterCustomObject(crd)) as { metadata?: { resourceVersion?: string }; items: PodIdentityAssociationResource[] };
    } catch (error) {
      if (refusedStatus(error) === 404) throw new Error(`the PodIdentityAssociation CRD (${CRD_PLURAL}.${CRD_GROUP}) is not installed in cluster ${clusterName}`, { cause: error });
      throw new Error(`listing PodIdentityAssociations: ${describeKubeError(error)}`, { cause: error });
    }
    // stopped meanwhile: an error keeps the informer from starting a watch after all
    if (!active) throw new StoppedError('no longer leading');
    backoffMs = 500;
    // queued before the informer's add/update events for these items, which it sends once this returns
    const items = list.items ?? [];
    enqueue(() => collectOrphans(items));
    return list;
  }

  const informer = makeInformer<PodIdentityAssociationResource>(options.kube.config, COLLECTION, listAll);
  // an event means the watch works again: the next failure waits the shortest time
  const onEvent = (handle: (resource: PodIdentityAssociationResource) => void) => (resource: PodIdentityAssociationResource) => {
    backoffMs = 500;
    handle(resource);
  };
  informer.on('add', onEvent(enqueueReconcile));
  informer.on('update', onEvent(enqueueReconcile));
  informer.on('delete', onEvent((resource) => enqueue(() => remove(resource))));
  // The informer stops at an error; it starts again from its last resourceVersion, later each time.
  informer.on('error', (error: unknown) => {
    if (!active) return;
    countError('watch');
    logger.warn({ err: (error as Error)?.message ?? String(error), retryInMs: backoffMs }, 'PodIdentityAssociation watch failed; retrying');
    later(backoffMs, () => void informer.start());
    backoffMs = Math.min(backoffMs * 2, MAX_BACKOFF_MS);
  });

  function resync(): void {
    const resources = informer.list();
    for (const resource of resources) enqueueReconcile(resource);
    enqueue(() => collectOrphans(resources));
    later(options.resyncMs ?? 300_000, resync);
  }
  later(options.resyncMs ?? 300_000, resync);

  /** Changes made elsewhere (the API, another replica) that a resource may need to answer. */
  const unsubscribe = options.onStoreChange((change) => {
    const a = change.association;
    if (a.clusterName !== clusterName) return;
    for (const resource of informer.list()) {
      const sameSubject = resource.metadata.namespace === a.namespace && resource.spec?.serviceAccount === a.serviceAccount;
      const ownsIt = a.ownerArn === ownerOf(resource);
      // A freed service account may end a Conflict; an owned association changed or deleted behind our back is put back.
      if ((change.kind === 'delete' && sameSubject) || (ownsIt && change.kind === 'upsert' && desiredFromSpec(resource).ok)) enqueueReconcile(resource);
    }
  });

  void informer.start();
  logger.info('watching PodIdentityAssociation resources');

  return {
    async stop() {
      active = false;
      unsubscribe();
      for (const timer of timers) clearTimeout(timer);
      await informer.stop();
      await queue;
      logger.info('stopped watching PodIdentityAssociation resources');
    },
  };
}

export interface CrdSyncOptions extends ReconcilerOptions {
  /** where the Lease lives (the server's own namespace) */
  leaseNamespace: string;
  /** this replica's name among those that sync the same cluster */
  identity: string;
  leaseTiming?: LeaseTiming;
}

export interface CrdSync {
  isLeading(): boolean;
  /** stops reconciling and releases the lease, so that another replica takes over at once */
  stop(): Promise<void>;
}

/** Reconciles the cluster's resources whenever this replica holds the cluster's Lease. */
export function startCrdSync(options: CrdSyncOptions): CrdSync {
  let reconciler: Reconciler | undefined;
  const election = startLeaderElection({
    kube: options.kube,
    namespace: options.leaseNamespace,
    name: leaseNameFor(options.clusterName),
    identity: options.identity,
    logger: options.logger.child({ component: 'crd-sync', cluster: options.clusterName }),
    timing: options.leaseTiming,
    now: options.now,
    onFailedAttempt: () => options.onError?.('lease'),
    onStartedLeading() {
      reconciler = startReconciler(options);
    },
    async onStoppedLeading() {
      await reconciler?.stop();
      reconciler = undefined;
    },
  });
  return { isLeading: () => election.isLeading(), stop: () => election.stop() };
}
