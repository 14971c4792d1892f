// An AWS SDK program as any team would write it: no credentials, region or
// endpoint in the code. The SDK's default chain finds the container
// credentials (AWS_CONTAINER_CREDENTIALS_FULL_URI and
// AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE, injected by the webhook), the
// region and the STS endpoint (AWS_ENDPOINT_URL_STS) in the environment.
//
// Prints one JSON line per call. With REPEAT_EVERY_MS it calls again and
// again, each time with a new client, so each call fetches its credentials
// anew (a new default chain has no cached credentials).
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';

const every = Number(process.env.REPEAT_EVERY_MS ?? 0);
let stopping = false;
process.on('SIGTERM', () => {
  stopping = true;
  process.exit(0);
});

function tokenSha256() {
  const file = process.env.AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE;
  if (!file) return undefined;
  try {
    return createHash('sha256').update(readFileSync(file)).digest('hex');
  } catch {
    return undefined;
  }
}

for (let attempt = 1; !stopping; attempt++) {
  const at = new Date().toISOString();
  const sts = new STSClient({});
  try {
    const identity = await sts.send(new GetCallerIdentityCommand({}));
    const credentials = await sts.config.credentials();
    console.log(JSON.stringify({ attempt, at, ok: true, arn: identity.Arn, account: identity.Account, accessKeyId: credentials.accessKeyId, tokenSha256: tokenSha256() }));
  } catch (error) {
    console.log(JSON.stringify({ attempt, at, ok: false, name: error.name, message: error.message, tokenSha256: tokenSha256() }));
  } finally {
    sts.destroy();
  }
  if (!every) break;
  await new Promise((resolve) => setTimeout(resolve, every));
}
