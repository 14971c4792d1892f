// AdmissionReview decode and encode, pure. A review we cannot read still gets a
// well-formed answer that admits the pod: the webhook never blocks a pod
// because of its own trouble.

// Only the parts of a Pod the webhook reads; everything else passes through untouched.
export interface EnvVar {
  name: string;
  [field: string]: unknown;
}
interface VolumeMount {
  name: string;
  mountPath?: string;
  [field: string]: unknown;
}
export interface Container {
  name: string;
  env?: EnvVar[] | null;
  volumeMounts?: VolumeMount[] | null;
  [field: string]: unknown;
}
export interface Pod {
  metadata?: {
    name?: string;
    generateName?: string;
    namespace?: string;
    labels?: Record<string, string> | null;
    annotations?: Record<string, string> | null;
    [field: string]: unknown;
  } | null;
  spec?: {
    serviceAccountName?: string;
    /** deprecated alias of serviceAccountName */
    serviceAccount?: string;
    nodeSelector?: Record<string, string> | null;
    containers?: Container[] | null;
    initContainers?: Container[] | null;
    volumes?: { name: string; [field: string]: unknown }[] | null;
    [field: string]: unknown;
  } | null;
  [field: string]: unknown;
}

export type PatchOperation = { op: 'add'; path: string; value: unknown };

const REVIEW_API_VERSION = 'admission.k8s.io/v1';
const REVIEW_KIND = 'AdmissionReview';

export interface AdmissionRequest {
  uid: string;
  namespace?: string;
  operation?: string;
  kind?: { group?: string; version?: string; kind?: string };
  resource?: { group?: string; version?: string; resource?: string };
  subResource?: string;
  dryRun?: boolean;
  object?: unknown;
}

/** The parts of a review echoed in its answer. */
export interface ReviewEnvelope {
  apiVersion: string;
  kind: string;
  uid: string;
}

export type DecodedReview =
  | { ok: true; envelope: ReviewEnvelope; request: AdmissionRequest }
  | { ok: false; envelope: ReviewEnvelope; problem: string };

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function decodeReview(body: Buffer): DecodedReview {
  const fallback: ReviewEnvelope = { apiVersion: REVIEW_API_VERSION, kind: REVIEW_KIND, uid: '' };
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    return { ok: false, envelope: fallback, problem: 'the body is not JSON' };
  }
  if (!isObject(parsed)) return { ok: false, envelope: fallback, problem: 'the body is not an AdmissionReview object' };
  const request = parsed.request;
  const envelope: ReviewEnvelope = {
    apiVersion: typeof parsed.apiVersion === 'string' && parsed.apiVersion ? parsed.apiVersion : REVIEW_API_VERSION,
    kind: typeof parsed.kind === 'string' && parsed.kind ? parsed.kind : REVIEW_KIND,
    uid: isObject(request) && typeof request.uid === 'string' ? request.uid : '',
  };
  if (!isObject(request)) return { ok: false, envelope, problem: 'the review has no request' };
  if (!envelope.uid) return { ok: false, envelope, problem: 'the request has no uid' };
  return { ok: true, envelope, request: request as unknown as AdmissionRequest };
}

/** Why a request is not one we mutate (not a pod CREATE), or undefined when it is. */
export function notForUs(request: AdmissionRequest): string | undefined {
  if (request.operation !== undefined && request.operation !== 'CREATE') return `operation ${request.operation}`;
  const kind = request.kind?.kind;
  if (kind !== undefined && kind !== 'Pod') return `kind ${kind}`;
  if (request.subResource) return `subresource ${request.subResource}`;
  return undefined;
}

/** Absent, null, or an object of strings: what labels and annotations are. */
function isStringMap(value: unknown): boolean {
  return value === undefined || value === null || (isObject(value) && Object.values(value).every((v) => typeof v === 'string'));
}

/**
 * The admitted pod, when the request's object looks like one: a spec object
 * whose containers are objects, and metadata whose labels and annotations are
 * string maps (the patch adds to them by path; the API server never sends
 * anything else, but nothing is assumed).
 */
export function podOf(request: AdmissionRequest): Pod | undefined {
  const object = request.object;
  if (!isObject(object) || !isObject(object.spec)) return undefined;
  const metadata = object.metadata;
  if (metadata !== undefined && metadata !== null && !(isObject(metadata) && isStringMap(metadata.labels) && isStringMap(metadata.annotations))) return undefined;
  // containers are patched by index: each must be an object
  for (const list of [object.spec.containers, object.spec.initContainers]) {
    if (list !== undefined && list !== null && !(Array.isArray(list) && list.every(isObject))) return undefined;
  }
  return object as Pod;
}

export interface AdmissionAnswer {
  apiVersion: string;
  kind: string;
  response: {
    uid: string;
    allowed: true;
    patchType?: 'JSONPatch';
    patch?: string;
    warnings?: string[];
  };
}

/** Always `allowed: true`; a patch when there is one, warnings when something went wrong. */
export function encodeAnswer(envelope: ReviewEnvelope, patch?: PatchOperation[], warnings?: string[]): AdmissionAnswer {
  return {
    apiVersion: envelope.apiVersion,
    kind: envelope.kind,
    response: {
      uid: envelope.uid,
      allowed: true,
      ...(patch && patch.length > 0 && { patchType: 'JSONPatch' as const, patch: Buffer.from(JSON.stringify(patch)).toString('base64') }),
      ...(warnings && warnings.length > 0 && { warnings }),
    },
  };
}
