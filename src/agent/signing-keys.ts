// The keys that sign the agent's EKS Auth calls, found as the AWS default
// chain finds them (the AWS agent does the same). On a node they are almost
// always in the environment (a Secret in the DaemonSet), the chain's first
// source: then only the environment provider is loaded. Otherwise the whole
// chain (shared files, SSO, web identity, ECS, IMDS) is loaded on first use
// and kept. @aws-sdk/credential-providers would load every provider's code at
// start, several MiB of resident memory on every node for sources unused.
import { fromEnv } from '@aws-sdk/credential-provider-env';
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider } from '@smithy/types';

/** Whether the environment holds a key pair (what the chain's environment source reads). */
function environmentHasKeys(env: NodeJS.ProcessEnv): boolean {
  return Boolean(env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY);
}

/** The AWS default credential chain, its environment source loaded eagerly and the rest only when needed. */
export function signingKeysProvider(env: NodeJS.ProcessEnv = process.env): AwsCredentialIdentityProvider {
  if (environmentHasKeys(env)) return fromEnv();
  let chain: Promise<AwsCredentialIdentityProvider> | undefined;
  return async (): Promise<AwsCredentialIdentity> => {
    chain ??= import('@aws-sdk/credential-provider-node').then(({ defaultProvider }) => defaultProvider());
    return (await chain)();
  };
}
