// The admission decision, pure: (pod, association or none, options) → RFC 6902
// patch that gives the pod what EKS's webhook gives it (DESIGN §3.4): the
// projected token volume, the container-credentials variables (with the
// region and regional-STS ones when they apply) and the mount in every
// container and initContainer, and the pod-identity label. Nothing already in
// the pod is overwritten, so applying the patch twice (the API server's
// reinvocation) changes nothing the second time. Two deliberate differences
// from AWS's webhook: names in skip-containers are trimmed, and a pod we
// cannot decode is admitted (webhook/review.ts).
import type { Container, EnvVar, PatchOperation, Pod } from '../api/admission.js';
import type { Association } from '../api/eks.js';

const TOKEN_AUDIENCE = 'pods.eks.amazonaws.com';
const VOLUME_NAME = 'eks-pod-identity-token';
const TOKEN_PATH = 'eks-pod-identity-token';
const MOUNT_PATH = '/var/run/secrets/pods.eks.amazonaws.com/serviceaccount';
const TOKEN_FILE = `${MOUNT_PATH}/${TOKEN_PATH}`;
/** What AWS's webhook injects for Windows pods: the same path, drive-qualified, with backslashes. */
const WINDOWS_TOKEN_FILE = `C:${TOKEN_FILE.replaceAll('/', '\\')}`;
const FULL_URI_IPV4 = 'http://169.254.170.23/v1/credentials';
const FULL_URI_IPV6 = 'http://[fd00:ec2::23]/v1/credentials';

const ENV_FULL_URI = 'AWS_CONTAINER_CREDENTIALS_FULL_URI';
const ENV_TOKEN_FILE = 'AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE';

const LABEL_POD_IDENTITY = 'eks.amazonaws.com/pod-identity';
export const LABEL_SKIP = 'eks.amazonaws.com/skip-pod-identity-webhook';
const ANNOTATION_SKIP_CONTAINERS = 'eks.amazonaws.com/skip-containers';
const ANNOTATION_TOKEN_EXPIRATION = 'eks.amazonaws.com/token-expiration';
const ANNOTATION_STS_REGIONAL_ENDPOINTS = 'eks.amazonaws.com/sts-regional-endpoints';
const ENV_STS_REGIONAL_ENDPOINTS = 'AWS_STS_REGIONAL_ENDPOINTS';

const DEFAULT_TOKEN_EXPIRATION_SECONDS = 86400;
/** kube-apiserver refuses projected tokens shorter than 10 minutes. */
const MIN_TOKEN_EXPIRATION_SECONDS = 600;
/** The default lifetime becomes a random one from here to the default, so a node's pods do not all renew at once (AWS's jitter). */
const JITTER_FLOOR_SECONDS = 79200;

export interface MutationOptions {
  /** IPv6 cluster: inject the fd00:ec2::23 URI */
  ipv6?: boolean;
  /** inject AWS_REGION and AWS_DEFAULT_REGION (unless a container sets either) */
  region?: string;
  /** the ServiceAccount's annotations, when it could be read */
  serviceAccountAnnotations?: Readonly<Record<string, string>>;
  /** the lifetime of the projected token when no annotation sets one (webhook.tokenExpirationSeconds, default 86400) */
  defaultTokenExpirationSeconds?: number;
  /** inject AWS_STS_REGIONAL_ENDPOINTS=regional unless the ServiceAccount's annotation says otherwise (webhook.stsRegionalEndpoints) */
  stsRegionalEndpoints?: boolean;
  /** a uniform random integer in [min, max], for the jitter (tests pass their own) */
  randomInt?: (min: number, max: number) => number;
}

type SkipReason = 'no-association' | 'no-service-account' | 'skip-label' | 'already-injected' | 'not-a-pod';

export type MutationResult = { mutated: true; patch: PatchOperation[] } | { mutated: false; reason: SkipReason };

/**
 * The service account the pod runs as. The ServiceAccount admission plugin
 * fills "default" before webhooks run; a pod without one (the plugin turned
 * off) is left alone, as AWS's webhook leaves it.
 */
export function podServiceAccount(pod: Pod): string | undefined {
  return pod.spec?.serviceAccountName || undefined;
}

/** True when the pod opted out with the skip label (any value, as the objectSelector's DoesNotExist). */
export function hasSkipLabel(pod: Pod): boolean {
  const labels = pod.metadata?.labels;
  return labels !== null && labels !== undefined && Object.hasOwn(labels, LABEL_SKIP);
}

/** Strict base-10 integer, as Go's strconv.ParseInt reads it; anything else is ignored. */
function parseSeconds(value: string | undefined): number | undefined {
  if (value === undefined || !/^[+-]?\d{1,15}$/.test(value)) return undefined;
  return Number(value);
}

/** Go's strconv.ParseBool: the words it knows, else undefined. */
function parseBool(value: string | undefined): boolean | undefined {
  if (value === undefined) return undefined;
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(value)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(value)) return false;
  return undefined;
}

/**
 * The pod's annotation if it parses, else the ServiceAccount's if it parses,
 * else the default; never below the 10-minute floor. (Jitter comes after.)
 */
export function tokenExpirationSeconds(pod: Pod, serviceAccountAnnotation?: string, defaultSeconds = DEFAULT_TOKEN_EXPIRATION_SECONDS): number {
  const chosen = parseSeconds(pod.metadata?.annotations?.[ANNOTATION_TOKEN_EXPIRATION]) ?? parseSeconds(serviceAccountAnnotation) ?? defaultSeconds;
  return Math.max(chosen, MIN_TOKEN_EXPIRATION_SECONDS);
}

function randomIntInclusive(min: number, max: number): number {
  return min + Math.floor(Math.random() * (max - min + 1));
}

/** Names listed in the comma-separated `skip-containers` annotation. */
function containersToSkip(pod: Pod): Set<string> {
  const value = pod.metadata?.annotations?.[ANNOTATION_SKIP_CONTAINERS];
  if (!value) return new Set();
  return new Set(value.split(',').map((name) => name.trim().replace(/^"|"$/g, '')).filter(Boolean));
}

function isWindows(pod: Pod): boolean {
  const selector = pod.spec?.nodeSelector;
  return selector?.['kubernetes.io/os'] === 'windows' || selector?.['beta.kubernetes.io/os'] === 'windows';
}

/** JSON Pointer escaping (RFC 6901) of one path segment. */
function pointerSegment(segment: string): string {
  return segment.replaceAll('~', '~0').replaceAll('/', '~1');
}

/** Appends `items` to the array at `path`, creating it when absent or null. */
function appendAll(patch: PatchOperation[], path: string, existing: unknown[] | null | undefined, items: unknown[]): void {
  if (items.length === 0) return;
  if (!Array.isArray(existing)) {
    patch.push({ op: 'add', path, value: items });
    return;
  }
  for (const item of items) patch.push({ op: 'add', path: `${path}/-`, value: item });
}

interface ContainerPlan {
  fullUri: string;
  tokenFile: string;
  region?: string;
  regionalSts: boolean;
}

function patchContainer(patch: PatchOperation[], path: string, container: Container, plan: ContainerPlan): void {
  const env = Array.isArray(container.env) ? container.env : [];
  const has = (name: string) => env.some((e) => e?.name === name);
  const hasCredentials = has(ENV_FULL_URI) || has(ENV_TOKEN_FILE);
  const hasRegion = has('AWS_REGION') || has('AWS_DEFAULT_REGION');
  const hasRegionalSts = has(ENV_STS_REGIONAL_ENDPOINTS);
  // Set up to the last variable by its owner: AWS leaves such a container alone, mount included.
  if (hasCredentials && hasRegion && hasRegionalSts) return;
  const additions: EnvVar[] = [];
  if (plan.regionalSts && !hasRegionalSts) additions.push({ name: ENV_STS_REGIONAL_ENDPOINTS, value: 'regional' });
  if (plan.region && !hasRegion) {
    additions.push({ name: 'AWS_DEFAULT_REGION', value: plan.region }, { name: 'AWS_REGION', value: plan.region });
  }
  // Either credential variable already set means the pod chose its own credentials: add neither.
  if (!hasCredentials) {
    additions.push({ name: ENV_FULL_URI, value: plan.fullUri }, { name: ENV_TOKEN_FILE, value: plan.tokenFile });
  }
  appendAll(patch, `${path}/env`, container.env, additions);

  const mounts = Array.isArray(container.volumeMounts) ? container.volumeMounts : [];
  if (!mounts.some((m) => m?.name === VOLUME_NAME)) {
    appendAll(patch, `${path}/volumeMounts`, container.volumeMounts, [{ name: VOLUME_NAME, readOnly: true, mountPath: MOUNT_PATH }]);
  }
}

/**
 * The patch for a pod at admission. `association` is the pod's
 * (cluster, namespace, service account) association, or undefined when it has none.
 */
export function mutatePod(pod: Pod, association: Association | undefined, options: MutationOptions = {}): MutationResult {
  if (!pod.spec || typeof pod.spec !== 'object') return { mutated: false, reason: 'not-a-pod' };
  if (hasSkipLabel(pod)) return { mutated: false, reason: 'skip-label' };
  if (podServiceAccount(pod) === undefined) return { mutated: false, reason: 'no-service-account' };
  if (!association) return { mutated: false, reason: 'no-association' };
  const serviceAccount = options.serviceAccountAnnotations ?? {};

  const patch: PatchOperation[] = [];

  const labels = pod.metadata?.labels;
  if (!pod.metadata) {
    patch.push({ op: 'add', path: '/metadata', value: { labels: { [LABEL_POD_IDENTITY]: 'enabled' } } });
  } else if (!labels) {
    patch.push({ op: 'add', path: '/metadata/labels', value: { [LABEL_POD_IDENTITY]: 'enabled' } });
  } else if (labels[LABEL_POD_IDENTITY] !== 'enabled') {
    patch.push({ op: 'add', path: `/metadata/labels/${pointerSegment(LABEL_POD_IDENTITY)}`, value: 'enabled' });
  }

  const volumes = pod.spec?.volumes;
  if (!Array.isArray(volumes) || !volumes.some((v) => v?.name === VOLUME_NAME)) {
    let expirationSeconds = tokenExpirationSeconds(pod, serviceAccount[ANNOTATION_TOKEN_EXPIRATION], options.defaultTokenExpirationSeconds);
    if (expirationSeconds === DEFAULT_TOKEN_EXPIRATION_SECONDS) expirationSeconds = (options.randomInt ?? randomIntInclusive)(JITTER_FLOOR_SECONDS, DEFAULT_TOKEN_EXPIRATION_SECONDS);
    const volume = {
      name: VOLUME_NAME,
      projected: {
        sources: [
          {
            serviceAccountToken: {
              audience: TOKEN_AUDIENCE,
              expirationSeconds,
              path: TOKEN_PATH,
            },
          },
        ],
      },
    };
    // EKS puts its volume first; keep the same order so the stored pods look alike.
    if (Array.isArray(volumes) && volumes.length > 0) patch.push({ op: 'add', path: '/spec/volumes/0', value: volume });
    else patch.push({ op: 'add', path: '/spec/volumes', value: [volume] });
  }

  const plan: ContainerPlan = {
    fullUri: options.ipv6 ? FULL_URI_IPV6 : FULL_URI_IPV4,
    tokenFile: isWindows(pod) ? WINDOWS_TOKEN_FILE : TOKEN_FILE,
    region: options.region,
    regionalSts: parseBool(serviceAccount[ANNOTATION_STS_REGIONAL_ENDPOINTS]) ?? options.stsRegionalEndpoints ?? false,
  };
  const skip = containersToSkip(pod);
  // initContainers include native sidecars (restartPolicy: Always); ephemeral containers are never touched.
  for (const field of ['initContainers', 'containers'] as const) {
    const list = pod.spec?.[field];
    if (!Array.isArray(list)) continue;
    list.forEach((container, i) => {
      if (!container || typeof container !== 'object' || skip.has(container.name)) return;
      patchContainer(patch, `/spec/${field}/${i}`, container, plan);
    });
  }

  if (patch.length === 0) return { mutated: false, reason: 'already-injected' };
  return { mutated: true, patch };
}
