// A one-node Kubernetes cluster for the real-node end-to-end test (root only):
// etcd, kube-apiserver, kube-controller-manager, kube-scheduler, containerd
// (runc, the bridge CNI plugin), kubelet, kube-proxy (iptables) and a cluster
// DNS responder, every one inside namespaces this fixture creates:
//
// - a network namespace, "the node": its address sits on an empty bridge
//   `node0` inside it, pods get their addresses from the bridge plugin on
//   `cni0` inside it, Services are kube-proxy's rules inside it. Nothing is
//   added to the machine's own interfaces and nothing routes out of it: the
//   namespace has no default route. The test process reaches the node through
//   a relay (node-relay.ts) on a unix socket, as 127.0.0.1:<port>.
// - a private mount namespace shared by the node's processes, where /var/lib,
//   /var/log and /run are overlays whose writes land in the run's directory
//   (kubelet's /var/log/pods, containerd's shim sockets under /run/containerd,
//   the CNI cache and leases under /var/lib/cni), with /var/lib/kubelet and
//   /var/lib/containerd bind-mounted from it on a real file system (overlay
//   snapshots cannot sit on an overlay): the machine's own directories are
//   never written, and no mount point is made on them.
// - one cgroup tree (`pi-node-<id>` in every hierarchy; kubelet's cgroupRoot),
//   holding every process of the node, containerd's shims and the pods'
//   containers included, so teardown finds and kills them all.
//
// Teardown (stop(), or processes.ts' watchdog when the test process dies) runs
// one generated script: freeze and kill the cgroup tree, remove it, delete the
// network namespace (its bridges and iptables rules go with it), restore the
// machine-wide sysctls kubelet and kube-proxy change, remove the run's
// directory (the mount namespace went with its last process). stop() then checks that nothing
// is left and answers what is.
import { execFile, execFileSync } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { eventually, GiveUp } from '../helpers/eventually.js';
import { httpsJson } from './https.js';
import type { KubeConnection } from './kube.js';
import { imagesDir, kubeBinDir } from './paths.js';
import { registerCleanupScript, spawnPeer, tail, waitUntil, type PeerProcess } from './processes.js';
import { createCertificateAuthority, issueCertificate } from './tls.js';

const INSTALL_NODE_PEERS = 'scripts/install-node-peers.sh';
const HERE = dirname(fileURLToPath(import.meta.url));

/** Inside the node's network namespace only. */
export const NODE_IP = '10.241.0.2';
const POD_SUBNET = '10.244.0.0/24';
const SERVICE_CIDR = '10.96.0.0/16';
const KUBERNETES_SERVICE_IP = '10.96.0.1';
const CLUSTER_DOMAIN = 'cluster.local';
const SERVICE_ACCOUNT_ISSUER = `https://kubernetes.default.svc.${CLUSTER_DOMAIN}`;
const API_PORT = 6443;

/** Directories the node's programs write below, overlaid in the node's mount namespace (writes go to the run's directory). */
const OVERLAID = ['/var/lib', '/var/log', '/run'];
/** Below those, directories that must be a real file system (containerd's overlay snapshots, kubelet's volumes). */
const BOUND = ['/var/lib/kubelet', '/var/lib/containerd'];

/**
 * Machine-wide sysctls the node's programs change (kubelet's kernel tunables;
 * kube-proxy's conntrack limit and bridge-netfilter), restored at teardown.
 * Everything else they set belongs to the node's network namespace.
 */
const HOST_SYSCTLS = [
  'vm.overcommit_memory',
  'vm.panic_on_oom',
  'kernel.panic',
  'kernel.panic_on_oops',
  'kernel.keys.root_maxkeys',
  'kernel.keys.root_maxbytes',
  'net.netfilter.nf_conntrack_max',
  'net.bridge.bridge-nf-call-iptables',
  'net.bridge.bridge-nf-call-ip6tables',
  'net.ipv4.ip_forward',
  'net.ipv4.conf.all.route_localnet',
];

const PAUSE_IMAGE = 'localhost/pod-identity/pause:1';

interface NodeCommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface NodeCluster extends KubeConnection {
  /** kubeconfig for kubectl and helm in the test process (through the relay) */
  kubeconfigPath: string;
  nodeName: string;
  /** the node's address, reachable from pods and the node's processes only */
  nodeIp: string;
  serviceAccountIssuer: string;
  /** the run's directory (certificates, configurations, the private paths' contents) */
  dir: string;
  /** milliseconds from start until the node was Ready */
  startMs: number;
  /** a long-running process on the node (its namespaces and cgroup), stopped by stop() */
  spawn(name: string, command: string, args: string[], env?: NodeJS.ProcessEnv): PeerProcess;
  /** a command on the node, run to completion; never throws for a non-zero exit */
  exec(argv: string[], timeoutMs?: number): Promise<NodeCommandResult>;
  /** a port on the test's loopback whose connections reach host:port from inside the node */
  forward(host: string, port: number): Promise<number>;
  /** `ctr images import` into the CRI's image store */
  importImage(archive: string): Promise<void>;
  /** a file as the node's processes see it (through the node's mount namespace) */
  readNodeFile(path: string): string;
  /** the node's components, by name, for their logs */
  components: ReadonlyMap<string, PeerProcess>;
  /** tears everything down; answers what is left (empty when nothing) */
  stop(): Promise<string[]>;
}

function binary(name: string): string {
  return join(kubeBinDir(), name);
}

/** Why the node cannot start here, or undefined when it can. */
export function nodeClusterMissingReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'the real node needs root (namespaces, cgroups, mounts)';
  const controlPlane = ['etcd', 'kube-apiserver', 'kubectl', 'helm'].filter((name) => !existsSync(binary(name)));
  if (controlPlane.length > 0) return `${controlPlane.join(', ')} not found in ${kubeBinDir()}; run scripts/install-k8s.sh, then ${INSTALL_NODE_PEERS}`;
  const missing = ['kubelet', 'kube-controller-manager', 'kube-scheduler', 'kube-proxy'].filter((name) => !existsSync(binary(name)));
  for (const path of ['/usr/bin/containerd', '/usr/bin/ctr', '/usr/sbin/runc', '/usr/lib/cni/bridge', '/usr/lib/cni/host-local', '/usr/bin/buildah', '/usr/sbin/iptables', '/usr/bin/nsenter']) {
    if (!existsSync(path)) missing.push(path);
  }
  // cgroup v1 (kubelet's failCgroupV1: false), with the freezer hierarchy the teardown uses
  if (!existsSync('/sys/fs/cgroup/freezer/freezer.state') && !existsSync('/sys/fs/cgroup/freezer/tasks')) {
    return 'the real node needs cgroup v1 with the freezer hierarchy (/sys/fs/cgroup/freezer); this machine has none';
  }
  if (!existsSync(join(imagesDir(), 'pause.tar'))) missing.push('the pause image');
  if (missing.length > 0) return `${missing.join(', ')} not found; run ${INSTALL_NODE_PEERS}`;
  return undefined;
}

function sh(script: string): string {
  return execFileSync('sh', ['-c', script], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function readSysctls(): Map<string, string> {
  const values = new Map<string, string>();
  for (const key of HOST_SYSCTLS) {
    const path = `/proc/sys/${key.replace(/\./g, '/')}`;
    if (existsSync(path)) values.set(key, readFileSync(path, 'utf8').trim());
  }
  return values;
}

/** Every cgroup hierarchy mounted under /sys/fs/cgroup (v1 controllers, named ones, the v2 one). */
function cgroupHierarchies(): string[] {
  return readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map((line) => line.split(' '))
    .filter(([, mountPoint, type]) => (type === 'cgroup' || type === 'cgroup2') && mountPoint!.startsWith('/sys/fs/cgroup'))
    .map(([, mountPoint]) => mountPoint!);
}

/** A TCP listener on 127.0.0.1 whose connections go through the node's relay socket to host:port. */
function listenForward(relaySocket: string, host: string, port: number): Promise<Server> {
  const server = createServer((client) => {
    const upstream = connect(relaySocket);
    upstream.once('connect', () => {
      upstream.write(`${host} ${port}\n`);
      client.pipe(upstream);
      upstream.pipe(client);
    });
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  return new Promise((resolvePromise, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolvePromise(server));
  });
}

/**
 * Run as the node's mount-namespace holder ($1 the run's fs directory, $2 the
 * overlays' name, $3 the overlaid directories, $4 the bound ones): overlay,
 * bind, then wait.
 */
const HOLDER = `set -eu
root=$1 name=$2
for d in $3; do
  mkdir -p "$root/overlay$d/upper" "$root/overlay$d/work"
  mount -t overlay "$name" -o "lowerdir=$d,upperdir=$root/overlay$d/upper,workdir=$root/overlay$d/work" "$d"
done
for d in $4; do
  mkdir -p "$root/real$d" "$d"
  mount --bind "$root/real$d" "$d"
done
echo "node mount namespace ready"
exec sleep infinity
`;

/** Puts the shell into the node's cgroups ($1, space-separated cgroup.procs files), then execs the rest in the node's namespaces ($2 netns, $3 mount ns). */
const LAUNCH = `for f in $1; do echo $$ >"$f"; done
net=$2; mnt=$3; shift 3
exec nsenter --net="$net" --mount="$mnt" -- "$@"`;

export async function startNodeCluster(options: { nodeName?: string; readyTimeoutMs?: number } = {}): Promise<NodeCluster> {
  const missing = nodeClusterMissingReason();
  if (missing) throw new Error(missing);
  const started = Date.now();
  const nodeName = options.nodeName ?? 'node-1';
  const id = randomBytes(3).toString('hex');
  const name = `pi-node-${process.pid}-${id}`;
  const cgroupName = `pi-node-${id}`;
  const dir = mkdtempSync('/tmp/pi-node-');
  const fsRoot = join(dir, 'fs');
  const netnsPath = `/run/netns/${name}`;
  const sysctlsBefore = readSysctls();
  const linksBefore = sh('ip -o link show | cut -d: -f2').split('\n').map((l) => l.trim()).filter(Boolean).sort();
  const hierarchies = cgroupHierarchies();
  const freezer = hierarchies.find((h) => h.endsWith('/freezer'));
  if (!freezer) throw new Error('no freezer cgroup hierarchy: the node needs cgroup v1 with freezer (cgroup v2 is not handled)');

  // one teardown, used by stop() and by the watchdog of a test process that died
  const teardownPath = join('/tmp', `${name}.teardown.sh`);
  const restore = [...sysctlsBefore].map(([key, value]) => `sysctl -qw ${key}=${JSON.stringify(value)} 2>/dev/null || true`);
  writeFileSync(
    teardownPath,
    [
      '#!/bin/sh',
      `# teardown of the test node ${name} (test/peers/node-cluster.ts)`,
      `tree=${freezer}/${cgroupName}`,
      'if [ -d "$tree" ]; then',
      '  echo FROZEN >"$tree/freezer.state" 2>/dev/null',
      '  for i in $(seq 1 50); do',
      '    pids=$(find "$tree" -name cgroup.procs -exec cat {} + 2>/dev/null)',
      '    [ -z "$pids" ] && break',
      '    kill -9 $pids 2>/dev/null',
      '    echo THAWED >"$tree/freezer.state" 2>/dev/null',
      '    sleep 0.1',
      '  done',
      'fi',
      ...hierarchies.map((h) => `[ -d ${h}/${cgroupName} ] && find ${h}/${cgroupName} -depth -type d -exec rmdir {} + 2>/dev/null`),
      `ip netns del ${name} 2>/dev/null`,
      ...restore,
      `rm -rf ${dir}`,
      `rm -f ${teardownPath}`,
      'exit 0',
      '',
    ].join('\n'),
    { mode: 0o700 },
  );
  const forgetTeardown = registerCleanupScript(teardownPath);

  const components = new Map<string, PeerProcess>();
  const forwards: Server[] = [];
  let holderPid: number | undefined;
  let procsFiles = '';

  const stop = async (): Promise<string[]> => {
    for (const server of forwards) server.close();
    // a gentle stop for the node's own programs, then the sweep kills what is left (containers, shims)
    await Promise.all([...components.values()].reverse().map((peer) => peer.stop(2_000)));
    try {
      execFileSync('sh', [teardownPath], { stdio: 'ignore', timeout: 60_000 });
    } catch {
      // checked below
    }
    forgetTeardown();
    return leftovers();
  };

  const leftovers = (): string[] => {
    const found: string[] = [];
    if (sh('ip netns list').split('\n').some((line) => line.startsWith(`${name} `) || line === name)) found.push(`network namespace ${name}`);
    // links the node's programs make (bridges, pod veths, the agent's link), should one reach the machine's namespace;
    // other new links on a shared machine are someone else's
    const linksAfter = sh('ip -o link show | cut -d: -f2').split('\n').map((l) => l.trim()).filter(Boolean).sort();
    const newLinks = linksAfter.filter((l) => !linksBefore.includes(l) && /^(veth|cni|node0|pod-id-link)/.test(l));
    if (newLinks.length > 0) found.push(`links on the machine: ${newLinks.join(', ')}`);
    for (const h of hierarchies) if (existsSync(join(h, cgroupName))) found.push(`cgroup ${join(h, cgroupName)}`);
    const mounts = readFileSync('/proc/self/mounts', 'utf8').split('\n').filter((line) => line.includes(dir) || line.startsWith(`${cgroupName} `) || [...OVERLAID, ...BOUND].includes(line.split(' ')[1]!));
    if (mounts.length > 0) found.push(`mounts: ${mounts.join('; ')}`);
    const processes = sh(`ps -eo pid=,args= | grep -F -e ${dir} -e ${cgroupName} | grep -v grep || true`).trim();
    if (processes) found.push(`processes: ${processes}`);
    const sysctlsAfter = readSysctls();
    for (const [key, value] of sysctlsBefore) if (sysctlsAfter.get(key) !== value) found.push(`sysctl ${key} is ${sysctlsAfter.get(key)}, was ${value}`);
    if (existsSync(dir)) found.push(`directory ${dir}`);
    return found;
  };

  try {
    // --- the node's network namespace: loopback and the node's address, no route out
    execFileSync('ip', ['netns', 'add', name]);
    const ipn = (...args: string[]) => execFileSync('ip', ['-n', name, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    ipn('link', 'set', 'lo', 'up');
    ipn('link', 'add', 'node0', 'type', 'bridge');
    ipn('addr', 'add', `${NODE_IP}/32`, 'dev', 'node0');
    ipn('link', 'set', 'node0', 'up');
    // the node's own connections to ClusterIPs need a route before kube-proxy's
    // DNAT sends them on to a pod; it leads onto the portless bridge, so a
    // Service without endpoints goes nowhere
    ipn('route', 'add', SERVICE_CIDR, 'dev', 'node0');

    // --- the node's cgroup tree, one level for its programs (`node`) and kubelet's below it
    const procs: string[] = [];
    for (const h of hierarchies) {
      const base = join(h, cgroupName);
      mkdirSync(join(base, 'node'), { recursive: true });
      if (h.endsWith('/cpuset') || existsSync(join(h, 'cpuset.cpus'))) {
        for (const file of ['cpuset.cpus', 'cpuset.mems']) {
          const value = readFileSync(join(h, file), 'utf8').trim();
          writeFileSync(join(base, file), value);
          writeFileSync(join(base, 'node', file), value);
        }
      }
      procs.push(join(base, 'node', 'cgroup.procs'));
    }
    procsFiles = procs.join(' ');

    // --- the mount namespace holder
    const holderScript = join(dir, 'holder.sh');
    writeFileSync(holderScript, HOLDER);
    const holder = spawnPeer('node mount namespace', 'sh', ['-c', 'for f in $1; do echo $$ >"$f"; done; shift; exec unshare --mount --propagation private -- sh "$@"', 'sh', procsFiles, holderScript, fsRoot, cgroupName, OVERLAID.join(' '), BOUND.join(' ')]);
    components.set('holder', holder);
    await waitUntil(holder, 'its mounts', 10_000, async () => holder.logs().includes('node mount namespace ready'));
    // the holder's shell execs sleep: its pid is the process in the namespace
    holderPid = holder.child.pid!;
    const mntnsPath = `/proc/${holderPid}/ns/mnt`;

    const spawnOnNode = (label: string, command: string, args: string[], env?: NodeJS.ProcessEnv): PeerProcess => {
      const peer = spawnPeer(label, 'sh', ['-c', LAUNCH, 'sh', procsFiles, netnsPath, mntnsPath, command, ...args], { env: env ?? { PATH: process.env.PATH, HOME: dir } });
      components.set(label, peer);
      return peer;
    };
    const exec = (argv: string[], timeoutMs = 120_000): Promise<NodeCommandResult> =>
      new Promise((resolvePromise) => {
        execFile('sh', ['-c', LAUNCH, 'sh', procsFiles, netnsPath, mntnsPath, ...argv], { timeout: timeoutMs, maxBuffer: 32 * 1024 * 1024, env: { PATH: process.env.PATH, HOME: dir } }, (error, stdout, stderr) => {
          resolvePromise({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
        });
      });
    const mustExec = async (argv: string[], timeoutMs?: number): Promise<string> => {
      const result = await exec(argv, timeoutMs);
      if (result.code !== 0) throw new Error(`on the node: ${argv.join(' ')} failed (${result.code}): ${result.stderr || result.stdout}`);
      return result.stdout;
    };

    // --- the relay: the test process's way into the node
    const relaySocket = join(dir, 'relay.sock');
    const relay = spawnOnNode('relay', process.execPath, [join(HERE, 'node-relay.ts'), relaySocket]);
    await waitUntil(relay, 'its socket', 10_000, async () => existsSync(relaySocket));
    const forward = async (host: string, port: number): Promise<number> => {
      const server = await listenForward(relaySocket, host, port);
      forwards.push(server);
      return (server.address() as { port: number }).port;
    };

    // --- certificates, keys, tokens, kubeconfigs
    const pki = join(dir, 'pki');
    mkdirSync(pki);
    const ca = await createCertificateAuthority(pki, 'kube');
    const serving = await issueCertificate(ca, {
      name: 'apiserver',
      commonName: 'kube-apiserver',
      ips: [NODE_IP, '127.0.0.1', KUBERNETES_SERVICE_IP],
      dnsNames: ['localhost', 'kubernetes', 'kubernetes.default', 'kubernetes.default.svc', `kubernetes.default.svc.${CLUSTER_DOMAIN}`],
    });
    const saKeys = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const saKey = join(pki, 'sa.key');
    const saPub = join(pki, 'sa.pub');
    writeFileSync(saKey, saKeys.privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    writeFileSync(saPub, saKeys.publicKey.export({ type: 'spki', format: 'pem' }));
    // one system:masters token for the test and the node's programs: the cluster's RBAC is not under test
    const adminToken = randomBytes(24).toString('hex');
    const tokenFile = join(pki, 'tokens.csv');
    writeFileSync(tokenFile, `${adminToken},admin,admin-uid,"system:masters"\n`, { mode: 0o600 });
    const adminTokenFile = join(pki, 'admin.token');
    writeFileSync(adminTokenFile, adminToken, { mode: 0o600 });
    const kubeconfig = (server: string) =>
      stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'node', cluster: { server, 'certificate-authority-data': Buffer.from(ca.certPem).toString('base64') } }],
        users: [{ name: 'admin', user: { token: adminToken } }],
        contexts: [{ name: 'node', context: { cluster: 'node', user: 'admin', namespace: 'default' } }],
        'current-context': 'node',
      });
    const nodeKubeconfig = join(dir, 'node.kubeconfig');
    writeFileSync(nodeKubeconfig, kubeconfig(`https://${NODE_IP}:${API_PORT}`), { mode: 0o600 });

    // --- etcd and kube-apiserver
    const etcd = spawnOnNode('etcd', binary('etcd'), [
      '--name=node',
      `--data-dir=${join(dir, 'etcd')}`,
      '--listen-client-urls=http://127.0.0.1:2379',
      '--advertise-client-urls=http://127.0.0.1:2379',
      '--listen-peer-urls=http://127.0.0.1:2380',
      '--initial-advertise-peer-urls=http://127.0.0.1:2380',
      '--initial-cluster=node=http://127.0.0.1:2380',
      '--unsafe-no-fsync',
      '--log-level=warn',
    ]);
    const apiserver = spawnOnNode('kube-apiserver', binary('kube-apiserver'), [
      '--etcd-servers=http://127.0.0.1:2379',
      '--bind-address=0.0.0.0',
      `--advertise-address=${NODE_IP}`,
      `--secure-port=${API_PORT}`,
      `--cert-dir=${join(dir, 'apiserver-certs')}`,
      `--tls-cert-file=${serving.certPath}`,
      `--tls-private-key-file=${serving.keyPath}`,
      `--client-ca-file=${ca.certPath}`,
      `--token-auth-file=${tokenFile}`,
      '--authorization-mode=RBAC',
      `--service-account-issuer=${SERVICE_ACCOUNT_ISSUER}`,
      `--service-account-key-file=${saPub}`,
      `--service-account-signing-key-file=${saKey}`,
      `--service-cluster-ip-range=${SERVICE_CIDR}`,
      '--kubelet-preferred-address-types=InternalIP,Hostname',
      '--allow-privileged=true',
      '--profiling=false',
    ]);
    const apiPort = await forward(NODE_IP, API_PORT);
    const url = `https://127.0.0.1:${apiPort}`;
    etcd.exited.then(() => apiserver.stop(0)).catch(() => undefined); // no etcd, no API server: fail the wait below at once
    await waitUntil(apiserver, 'kube-apiserver /readyz', 120_000, async () => (await httpsJson(`${url}/readyz`, { ca: ca.certPem, token: adminToken, timeoutMs: 2_000 })).status === 200);
    const kubeconfigPath = join(dir, 'test.kubeconfig');
    writeFileSync(kubeconfigPath, kubeconfig(url), { mode: 0o600 });

    // --- controllers and scheduler
    spawnOnNode('kube-controller-manager', binary('kube-controller-manager'), [
      `--kubeconfig=${nodeKubeconfig}`,
      '--leader-elect=false',
      '--use-service-account-credentials=false',
      `--root-ca-file=${ca.certPath}`,
      `--service-account-private-key-file=${saKey}`,
      `--service-cluster-ip-range=${SERVICE_CIDR}`,
      '--secure-port=0',
      '--controllers=*,-nodeipam,-service-lb-controller,-cloud-node-lifecycle-controller,-persistentvolume-expander,-csrsigning',
    ]);
    spawnOnNode('kube-scheduler', binary('kube-scheduler'), [`--kubeconfig=${nodeKubeconfig}`, '--leader-elect=false', '--secure-port=0']);

    // --- containerd with the bridge CNI plugin
    const cniConf = {
      cniVersion: '0.4.0',
      name: 'pod-identity-test',
      plugins: [
        {
          type: 'bridge',
          bridge: 'cni0',
          isGateway: true,
          ipMasq: false,
          hairpinMode: true,
          ipam: { type: 'host-local', ranges: [[{ subnet: POD_SUBNET, gateway: '10.244.0.1' }]], routes: [{ dst: '0.0.0.0/0' }] },
        },
      ],
    };
    const cniConfDir = join(dir, 'cni-net.d');
    mkdirSync(cniConfDir);
    writeFileSync(join(cniConfDir, '10-pod-identity-test.conflist'), JSON.stringify(cniConf, null, 2));
    const containerdConfig = join(dir, 'containerd.toml');
    writeFileSync(
      containerdConfig,
      [
        'version = 2',
        'root = "/var/lib/containerd"',
        'state = "/run/containerd"',
        'disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]',
        '[grpc]',
        '  address = "/run/containerd/containerd.sock"',
        '[ttrpc]',
        '  address = "/run/containerd/containerd.sock.ttrpc"',
        '[debug]',
        '  level = "warn"',
        '[plugins."io.containerd.internal.v1.opt"]',
        '  path = "/var/lib/containerd/opt"',
        '[plugins."io.containerd.grpc.v1.cri"]',
        `  sandbox_image = "${PAUSE_IMAGE}"`,
        // this VM lacks CAP_SYS_RESOURCE: without it every sandbox fails ("can't get final child's PID from pipe")
        '  restrict_oom_score_adj = true',
        '  netns_mounts_under_state_dir = true',
        '  disable_apparmor = true',
        '  stream_server_address = "127.0.0.1"',
        '  stream_server_port = "0"',
        '  [plugins."io.containerd.grpc.v1.cri".containerd]',
        '    snapshotter = "overlayfs"',
        '    default_runtime_name = "runc"',
        '    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]',
        '      runtime_type = "io.containerd.runc.v2"',
        '      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]',
        '        SystemdCgroup = false',
        '  [plugins."io.containerd.grpc.v1.cri".cni]',
        '    bin_dir = "/usr/lib/cni"',
        `    conf_dir = "${cniConfDir}"`,
        '',
      ].join('\n'),
    );
    const containerd = spawnOnNode('containerd', '/usr/bin/containerd', ['--config', containerdConfig]);
    await waitUntil(containerd, 'its socket', 30_000, async () => (await exec(['ctr', '--address', '/run/containerd/containerd.sock', 'version'], 5_000)).code === 0);
    const importImage = async (archive: string) => {
      await mustExec(['ctr', '--address', '/run/containerd/containerd.sock', '-n', 'k8s.io', 'images', 'import', '--no-unpack=false', archive], 300_000);
    };
    await importImage(join(imagesDir(), 'pause.tar'));

    // --- kubelet
    const resolvConf = join(dir, 'resolv.conf');
    writeFileSync(resolvConf, '# the node resolves nothing outside the cluster\n');
    const kubeletConfig = join(dir, 'kubelet.yaml');
    writeFileSync(
      kubeletConfig,
      stringify({
        apiVersion: 'kubelet.config.k8s.io/v1beta1',
        kind: 'KubeletConfiguration',
        address: NODE_IP,
        readOnlyPort: 0,
        healthzBindAddress: '127.0.0.1',
        authentication: { anonymous: { enabled: true }, webhook: { enabled: false } },
        authorization: { mode: 'AlwaysAllow' },
        // cgroup v1 on this kind of machine, and no systemd
        failCgroupV1: false,
        cgroupDriver: 'cgroupfs',
        cgroupRoot: `/${cgroupName}`,
        failSwapOn: false,
        containerRuntimeEndpoint: 'unix:///run/containerd/containerd.sock',
        clusterDomain: CLUSTER_DOMAIN,
        clusterDNS: [NODE_IP],
        resolvConf,
        // a busy shared disk must not evict the test's pods, nor collect its images
        evictionHard: { 'memory.available': '50Mi', 'nodefs.available': '1%', 'imagefs.available': '1%', 'nodefs.inodesFree': '1%' },
        imageGCHighThresholdPercent: 100,
        imageGCLowThresholdPercent: 99,
        serializeImagePulls: false,
        nodeStatusUpdateFrequency: '4s',
        syncFrequency: '10s',
        shutdownGracePeriod: '0s',
      }),
    );
    spawnOnNode('kubelet', binary('kubelet'), [`--config=${kubeletConfig}`, `--kubeconfig=${nodeKubeconfig}`, `--hostname-override=${nodeName}`, `--node-ip=${NODE_IP}`, '--v=1']);

    // --- kube-proxy (iptables), without touching conntrack limits or route_localnet
    const proxyConfig = join(dir, 'kube-proxy.yaml');
    writeFileSync(
      proxyConfig,
      stringify({
        apiVersion: 'kubeproxy.config.k8s.io/v1alpha1',
        kind: 'KubeProxyConfiguration',
        mode: 'iptables',
        clientConnection: { kubeconfig: nodeKubeconfig },
        hostnameOverride: nodeName,
        clusterCIDR: POD_SUBNET,
        healthzBindAddress: '127.0.0.1:10256',
        metricsBindAddress: '127.0.0.1:10249',
        conntrack: { maxPerCore: 0, min: 0, tcpEstablishedTimeout: '0s', tcpCloseWaitTimeout: '0s' },
        iptables: { localhostNodePorts: false },
      }),
    );
    spawnOnNode('kube-proxy', binary('kube-proxy'), [`--config=${proxyConfig}`]);

    // --- cluster DNS
    spawnOnNode('dns', process.execPath, [join(HERE, 'node-dns.ts'), NODE_IP, `https://127.0.0.1:${API_PORT}`, ca.certPath, adminTokenFile, CLUSTER_DOMAIN]);

    // --- ready: the node is Ready and the default service account exists
    const connection: KubeConnection = { url, caPem: ca.certPem, token: adminToken, kubeconfigPath };
    const kubelet = components.get('kubelet')!;
    let conditions = '';
    await eventually(
      `node ${nodeName} Ready`,
      async () => {
        if (!kubelet.running()) throw new GiveUp(`kubelet exited (${String(await kubelet.exited)})`);
        const node = await httpsJson<{ status?: { conditions?: { type: string; status: string }[] } }>(`${url}/api/v1/nodes/${nodeName}`, { ca: ca.certPem, token: adminToken });
        const sa = await httpsJson(`${url}/api/v1/namespaces/default/serviceaccounts/default`, { ca: ca.certPem, token: adminToken });
        conditions = JSON.stringify(node.body.status?.conditions ?? node.text);
        return node.status === 200 && node.body.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') && sa.status === 200;
      },
      { timeoutMs: options.readyTimeoutMs ?? 180_000, intervalMs: 500, context: () => `${conditions}\n--- kubelet\n${tail(kubelet.logs())}\n--- containerd\n${tail(containerd.logs())}` },
    );

    return {
      ...connection,
      kubeconfigPath,
      nodeName,
      nodeIp: NODE_IP,
      serviceAccountIssuer: SERVICE_ACCOUNT_ISSUER,
      dir,
      startMs: Date.now() - started,
      spawn: spawnOnNode,
      exec,
      forward,
      importImage,
      readNodeFile: (path) => readFileSync(`/proc/${holderPid}/root${path}`, 'utf8'),
      components,
      stop,
    };
  } catch (error) {
    const left = await stop();
    if (left.length > 0) console.error(`# node teardown after a failed start left: ${left.join(' | ')}`);
    throw error;
  }
}

/** The names of the node's components' logs, for diagnostics. */
export function componentLogs(cluster: NodeCluster, names: string[] = [...cluster.components.keys()], lines = 30): string {
  return names.map((n) => `--- ${n}\n${tail(cluster.components.get(n)?.logs() ?? '', lines)}`).join('\n');
}
