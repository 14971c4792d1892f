// Key sources over HTTP against the built server: jwksUri and OIDC discovery
// (issuer only), served by a small issuer the test controls, with key
// rotation (a new kid is fetched on first sight; refetches are rate-limited).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createAssociation, signedPost } from '../helpers/signed-post.js';
import { NODE, startServerProcess, type ServerProcess } from '../helpers/server-process.js';
import { jwksOf, podClaims, testSigner, type TestSigner } from '../helpers/sa-tokens.js';

interface Issuer {
  url: string;
  server: Server;
  keys: TestSigner[];
  jwksFetches: number;
}

function startIssuer(): Promise<Issuer> {
  const issuer: Issuer = { url: '', server: undefined as unknown as Server, keys: [], jwksFetches: 0 };
  issuer.server = createServer((req, res) => {
    if (req.url === '/.well-known/openid-configuration') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ issuer: issuer.url, jwks_uri: `${issuer.url}/openid/v1/jwks`, response_types_supported: ['id_token'], id_token_signing_alg_values_supported: ['RS256', 'ES256'] }));
    } else if (req.url === '/openid/v1/jwks') {
      issuer.jwksFetches++;
      res.writeHead(200, { 'content-type': 'application/jwk-set+json' });
      res.end(JSON.stringify(jwksOf(...issuer.keys)));
    } else {
      res.writeHead(404).end();
    }
  });
  return new Promise((resolve) =>
    issuer.server.listen(0, '127.0.0.1', () => {
      issuer.url = `http://127.0.0.1:${(issuer.server.address() as { port: number }).port}`;
      resolve(issuer);
    }),
  );
}

describe('EKS Auth with keys over HTTP (jwksUri, OIDC discovery)', { timeout: 120_000 }, () => {
  let dir: string;
  let issuer: Issuer;
  let server: ServerProcess;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'eks-auth-jwks-'));
    issuer = await startIssuer();
    issuer.keys = [await testSigner('RS256', 'key-1')];
    server = await startServerProcess({
      config: {
        clusters: [
          { name: 'by-uri', issuer: issuer.url, jwksUri: `${issuer.url}/openid/v1/jwks` },
          { name: 'by-discovery', issuer: issuer.url },
        ],
      },
    });
    for (const cluster of ['by-uri', 'by-discovery']) {
      await createAssociation(server.apiUrl, cluster, { namespace: 'default', serviceAccount: 'app', roleArn: 'arn:aws:iam::111122223333:role/app' });
    }
  });

  after(async () => {
    await server?.stop();
    issuer?.server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const exchange = (cluster: string, token: string) => signedPost(new URL(`/clusters/${cluster}/assume-role-for-pod-identity`, server.apiUrl), { token }, NODE, 'eks-auth');

  it('verifies tokens with keys from jwksUri and from OIDC discovery', async () => {
    for (const cluster of ['by-uri', 'by-discovery']) {
      const answer = await exchange(cluster, await issuer.keys[0]!.sign(podClaims({ issuer: issuer.url })));
      assert.equal(answer.status, 200, `${cluster}: ${JSON.stringify(answer.body)}`);
    }
  });

  it('follows rotation: a new kid is fetched on first sight, a flood of unknown kids is not', async () => {
    const rotated = await testSigner('ES256', 'key-2');
    issuer.keys = [issuer.keys[0]!, rotated];
    // Refetches are spaced by a 5 s cooldown; the keys were fetched moments ago.
    await new Promise((r) => setTimeout(r, 5_500));
    const before = issuer.jwksFetches;
    const answer = await exchange('by-uri', await rotated.sign(podClaims({ issuer: issuer.url })));
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.equal(issuer.jwksFetches, before + 1);

    const forger = await testSigner('RS256', 'forged');
    const afterRotation = issuer.jwksFetches;
    for (let i = 0; i < 10; i++) {
      const refused = await exchange('by-uri', await forger.sign(podClaims({ issuer: issuer.url })));
      assert.equal(refused.status, 400);
      assert.equal(refused.body.__type, 'InvalidTokenException');
      assert.match(refused.body.message as string, /kid/);
    }
    assert.ok(issuer.jwksFetches <= afterRotation + 1, `unknown kids caused ${issuer.jwksFetches - afterRotation} fetches`);
  });

  it('refuses tokens of another issuer', async () => {
    const answer = await exchange('by-discovery', await issuer.keys[0]!.sign(podClaims({ issuer: 'https://elsewhere' })));
    assert.equal(answer.status, 400);
    assert.equal(answer.body.__type, 'InvalidTokenException');
    assert.match(answer.body.message as string, /issuer/);
  });
});
