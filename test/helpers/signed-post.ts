// A SigV4-signed JSON POST, as the AWS SDKs send one, for tests that call the
// association or EKS Auth API without a client (fields the SDK models drop).
import assert from 'node:assert/strict';
import { signRequest } from '../../src/lib/sigv4.js';
import { ADMIN } from './server-process.js';

export interface SignedAnswer {
  status: number;
  body: Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
}

export async function signedPost(url: URL, body: unknown, credentials: { accessKeyId: string; secretAccessKey: string }, service: string): Promise<SignedAnswer> {
  const text = JSON.stringify(body);
  const headers = await signRequest({ method: 'POST', url, headers: { 'content-type': 'application/json' }, body: text }, { credentials, region: 'us-east-1', service });
  const res = await fetch(url, { method: 'POST', headers, body: text, signal: AbortSignal.timeout(10_000) });
  return { status: res.status, body: (await res.json()) as SignedAnswer['body'] };
}

/** Creates an association through the API as the test admin (fields the SDK model drops included); fails the test unless 200. */
export async function createAssociation(apiUrl: string, cluster: string, body: Record<string, unknown>): Promise<SignedAnswer['body']> {
  const created = await signedPost(new URL(`/clusters/${cluster}/pod-identity-associations`, apiUrl), body, ADMIN, 'eks');
  assert.equal(created.status, 200, JSON.stringify(created.body));
  return created.body;
}
