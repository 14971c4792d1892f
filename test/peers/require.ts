// Peer availability. On a developer machine a missing peer skips the tests
// that need it, with a line naming the script that installs it; in CI
// (CI=true) it fails the run, since a green run that skipped its peers proves
// nothing.
export type PeerCheck = () => string | undefined;

/**
 * Answers the `skip` option for node:test (`false` when the peer is there).
 * `check` answers why the peer cannot run (naming its install script), or
 * undefined when it can. Throws when CI=true and the peer is missing.
 *
 *   const skip = requirePeer('kube-apiserver', kubeMissingReason);
 *   describe('…', { skip }, () => { … });
 */
export function requirePeer(name: string, check: PeerCheck): string | false {
  const reason = check();
  if (reason === undefined) return false;
  const message = `peer ${name} unavailable: ${reason}`;
  if (process.env.CI === 'true') throw new Error(`${message} (CI=true: a missing peer fails the run; .ci/run must install it)`);
  console.error(`# skipping tests that need ${name}: ${reason}`);
  return message;
}
