// The server's configuration file, as one zod schema (DESIGN §4): every key,
// its default and the rules that span keys. Only the processes (server/,
// dev/, cli/) read it; the cores take options of their own.
import { z } from 'zod';

const listenAddress = z.string().regex(/^(\[[^\]]+\]|[^:]*):\d{1,5}$/, 'expected host:port');
const clusterName = z
  .string()
  .min(1)
  .max(100)
  .regex(/^[0-9A-Za-z][A-Za-z0-9\-_]*$/, 'cluster names are 1-100 characters of [0-9A-Za-z-_], starting alphanumeric');

const accessKey = z.object({
  accessKeyId: z.string().min(1),
  secretAccessKey: z.string().min(1),
});

const rateLimit = z.object({
  /** sustained requests per second */
  rate: z.number().positive(),
  /** bucket size (burst) */
  burst: z.number().int().positive(),
});

const cluster = z
  .object({
    name: clusterName,
    /** expected `iss` of service-account tokens */
    issuer: z.string().min(1).optional(),
    jwksFile: z.string().min(1).optional(),
    jwksUri: z.string().url().optional(),
    /** API access: TokenReview mode, and pod liveness checks in JWKS mode */
    kubeconfig: z.string().min(1).optional(),
    /** true: verify by TokenReview; false: verify locally (the API server's JWKS when no jwksFile/jwksUri); unset: TokenReview when a kubeconfig is the only key source */
    tokenReview: z.boolean().optional(),
    requireNodeBinding: z.boolean().default(false),
    /** the longest `exp - iat` a service-account token may have (default 48 h); Kubernetes' own minimum is 600 */
    maxTokenLifetimeSeconds: z.number().int().min(600).optional(),
    /** IPv6 cluster: the webhook injects the fd00:ec2::23 URI */
    ipv6: z.boolean().default(false),
    /** reconcile the cluster's PodIdentityAssociation resources (podidentity.dev) into the store; needs kubeconfig */
    syncCrds: z.boolean().default(false),
  })
  .strict()
  .refine((c) => c.jwksFile || c.jwksUri || c.kubeconfig || c.issuer, {
    message: 'a cluster needs jwksFile, jwksUri, issuer (OIDC discovery) or kubeconfig',
  })
  .refine((c) => c.tokenReview !== true || c.kubeconfig, { message: 'tokenReview needs a kubeconfig', path: ['tokenReview'] })
  .refine((c) => !c.syncCrds || c.kubeconfig, { message: 'syncCrds needs a kubeconfig', path: ['syncCrds'] });

/** The cluster the webhook serves: the one named, else the only cluster there is. */
export function webhookClusterOf<C extends { name: string }>(clusters: readonly C[], clusterName: string | undefined): C | undefined {
  if (clusterName) return clusters.find((c) => c.name === clusterName);
  return clusters.length === 1 ? clusters[0] : undefined;
}

export const serverConfigSchema = z
  .object({
    listen: listenAddress.default('127.0.0.1:8080'),
    webhookListen: listenAddress.default('127.0.0.1:9443'),
    metricsListen: listenAddress.default('127.0.0.1:9090'),
    /** the admin console (browser); off unless set. HTTPS when `tls` is set, with the API's certificate */
    consoleListen: listenAddress.optional(),
    region: z.string().min(1).default('us-east-1'),
    accountId: z.string().regex(/^\d{12}$/, 'expected a 12-digit account id').default('000000000000'),
    dataDir: z.string().min(1).default('./data'),
    databaseUrl: z.string().regex(/^postgres(ql)?:\/\//, 'expected postgres://…').optional(),
    logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    /** API worker processes behind the one API listener (node:cluster): a number, or auto for one per core */
    workers: z.union([z.literal('auto'), z.coerce.number().int().min(1).max(64)]).default(1),
    /** HTTPS for the API listener (plain HTTP when absent): certificate files, or without them a CA and certificate generated into <dataDir>/api-tls */
    tls: z
      .object({
        certFile: z.string().min(1).optional(),
        keyFile: z.string().min(1).optional(),
        /** extra DNS names / IPs for the generated serving certificate (e.g. pod-identity.pod-identity.svc) */
        certHosts: z.array(z.string().min(1)).default([]),
      })
      .strict()
      .optional(),
    admins: z.array(accessKey.strict()).default([]),
    nodes: z.array(accessKey.extend({ clusters: z.array(clusterName).optional() }).strict()).default([]),
    clusters: z.array(cluster).default([]),
    issuer: z
      .object({
        type: z.enum(['local', 'aws-sts']).default('local'),
        stsEndpoint: z.string().url().optional(),
        /** IAM endpoint for reading roles' trust policies (pod-identity doctor); defaults to stsEndpoint when that is set (emulators serve both) */
        iamEndpoint: z.string().url().optional(),
        /** STS region; defaults to the server's region */
        region: z.string().min(1).optional(),
        durationSeconds: z.number().int().min(900).max(43200).default(3600),
        /** local issuer: HMAC key file (hex) shared by replicas; default <dataDir>/local-issuer.key, made on first start */
        localKeyFile: z.string().min(1).optional(),
      })
      .strict()
      .default({ type: 'local', durationSeconds: 3600 }),
    webhook: z
      .object({
        certFile: z.string().min(1).optional(),
        keyFile: z.string().min(1).optional(),
        /** inject AWS_REGION / AWS_DEFAULT_REGION into mutated pods */
        injectRegion: z.boolean().default(true),
        timeoutSeconds: z.number().int().min(1).max(30).default(10),
        /** the cluster whose associations the webhook applies; defaults to the only configured cluster */
        clusterName: clusterName.optional(),
        /** extra DNS names / IPs for the generated serving certificate (e.g. pod-identity.pod-identity.svc) */
        certHosts: z.array(z.string().min(1)).default([]),
        /** the generated CA and certificate kept in a Secret of the webhook cluster (through its kubeconfig), the CA published in a ConfigMap and the webhook configuration's caBundle */
        certificateSecret: z
          .object({
            namespace: z.string().min(1),
            secretName: z.string().min(1),
            caConfigMap: z.string().min(1),
            webhookConfiguration: z.string().min(1),
          })
          .strict()
          .optional(),
        /** inject AWS_STS_REGIONAL_ENDPOINTS=regional (a ServiceAccount's eks.amazonaws.com/sts-regional-endpoints annotation decides for its pods) */
        stsRegionalEndpoints: z.boolean().default(false),
        /** lifetime of the projected token when no pod or ServiceAccount annotation sets one; 86400 is jittered down to 79200-86400 as AWS does */
        tokenExpirationSeconds: z.number().int().min(600).max(2 ** 32).default(86400),
      })
      .strict()
      .default({ injectRegion: true, timeoutSeconds: 10, certHosts: [], stsRegionalEndpoints: false, tokenExpirationSeconds: 86400 }),
    throttle: z
      .object({
        perCluster: rateLimit.optional(),
        perServiceAccount: rateLimit.optional(),
      })
      .strict()
      .default({}),
    audit: z.object({ file: z.string().min(1).optional() }).strict().default({}),
    associations: z
      .object({
        /** whether an association's namespace or service account may be a pattern (`*`, `build-*`); false refuses them with InvalidParameterException */
        allowPatterns: z.boolean().default(true),
      })
      .strict()
      .default({ allowPatterns: true }),
    /** EKS Auth overload shedding per API process (server/admission.ts): refused requests get 429 ThrottlingException with Retry-After */
    admission: z
      .object({
        /** AssumeRoleForPodIdentity requests in progress at once */
        maxInFlight: z.number().int().min(1).max(100_000).default(256),
        /** mean event-loop delay (how long an arrived request waits to be read) past which, with the process busy, only a share of new requests is taken on, ms */
        maxQueueMs: z.number().int().min(1).max(60_000).default(20),
      })
      .strict()
      .default({ maxInFlight: 256, maxQueueMs: 20 }),
    console: z
      .object({
        /** how long a console sign-in lasts; it is not extended by use */
        sessionSeconds: z.number().int().min(60).max(43_200).default(900),
      })
      .strict()
      .default({ sessionSeconds: 900 }),
  })
  .strict()
  .superRefine((config, ctx) => {
    const names = new Set<string>();
    config.clusters.forEach((c, i) => {
      if (names.has(c.name)) ctx.addIssue({ code: 'custom', path: ['clusters', i, 'name'], message: `duplicate cluster "${c.name}"` });
      names.add(c.name);
    });
    const keys = new Set<string>();
    [...config.admins, ...config.nodes].forEach((k) => {
      if (keys.has(k.accessKeyId)) ctx.addIssue({ code: 'custom', path: ['nodes'], message: `access key ${k.accessKeyId} is listed twice` });
      keys.add(k.accessKeyId);
    });
    if (config.webhook.clusterName !== undefined && !names.has(config.webhook.clusterName)) {
      ctx.addIssue({ code: 'custom', path: ['webhook', 'clusterName'], message: `"${config.webhook.clusterName}" is not one of the configured clusters` });
    }
    if (config.tls && (config.tls.certFile === undefined) !== (config.tls.keyFile === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['tls', 'certFile'], message: 'tls.certFile and tls.keyFile go together' });
    }
    if (config.webhook.certificateSecret && config.webhook.certFile) {
      ctx.addIssue({ code: 'custom', path: ['webhook', 'certificateSecret'], message: 'webhook.certificateSecret and webhook.certFile: give the certificate one way' });
    }
    if (config.webhook.certificateSecret) {
      if (!webhookClusterOf(config.clusters, config.webhook.clusterName)?.kubeconfig) ctx.addIssue({ code: 'custom', path: ['webhook', 'certificateSecret'], message: "needs the webhook's cluster (webhook.clusterName, or the only cluster) to have a kubeconfig" });
    }
    if ((config.webhook.certFile === undefined) !== (config.webhook.keyFile === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['webhook', 'certFile'], message: 'webhook.certFile and webhook.keyFile go together' });
    }
  });

export type ServerConfig = z.infer<typeof serverConfigSchema>;
export type ClusterConfig = ServerConfig['clusters'][number];
