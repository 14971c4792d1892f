// The SQLite store's change feed reaches only the process that made the
// change. When several processes share one SQLite file (the server's API
// workers), each wraps its store in a relay: its own changes go out through
// `send`, and changes made elsewhere come in through `receive`, so every
// in-memory cache (association resolver, webhook, CRD sync) hears of every
// change within the IPC round trip. PostgreSQL needs none: it notifies every
// connection itself.
import type { AssociationStore, StoreChange } from './store.js';

export interface RelayedStore extends AssociationStore {
  /** a change made by another process: tell this process's listeners */
  receive(change: StoreChange): void;
}

export function relayChanges(store: AssociationStore, send: (change: StoreChange) => void): RelayedStore {
  const remoteListeners = new Set<(change: StoreChange) => void>();
  const stopSending = store.onChange(send);
  return {
    create: (association, requestToken) => store.create(association, requestToken),
    get: (clusterName, associationId) => store.get(clusterName, associationId),
    findBySubject: (subject) => store.findBySubject(subject),
    findCandidates: (subject) => store.findCandidates(subject),
    list: (clusterName, query) => store.list(clusterName, query),
    listAll: (afterKey, limit) => store.listAll(afterKey, limit),
    update: (clusterName, associationId, changes) => store.update(clusterName, associationId, changes),
    delete: (clusterName, associationId) => store.delete(clusterName, associationId),
    countByCluster: () => store.countByCluster(),
    ping: () => store.ping(),
    onChange(listener) {
      const stopLocal = store.onChange(listener);
      remoteListeners.add(listener);
      return () => {
        stopLocal();
        remoteListeners.delete(listener);
      };
    },
    receive(change) {
      for (const listener of remoteListeners) listener(change);
    },
    close() {
      stopSending();
      return store.close();
    },
  };
}
