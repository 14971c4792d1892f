// The test node's cluster DNS (kubelet's clusterDNS), run inside its network
// namespace by node-cluster.ts with Node's type stripping (no imports but
// node:). A small authoritative responder for the cluster domain, in place of
// CoreDNS: `<service>.<namespace>.svc.<domain>` answers the Service's
// ClusterIP (read from the API server on each query, cached 2 s); other names
// in the domain answer NXDOMAIN (so resolvers walk their search list), names
// outside it REFUSED: nothing is ever forwarded off the node. IPv4 only: AAAA
// queries for a Service answer no records.
//
//   node node-dns.ts LISTEN_ADDRESS API_URL CA_FILE TOKEN_FILE [DOMAIN]
import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { request } from 'node:https';

const [address, apiUrl, caFile, tokenFile, domainArg] = process.argv.slice(2);
if (!address || !apiUrl || !caFile || !tokenFile) {
  console.error('usage: node node-dns.ts LISTEN_ADDRESS API_URL CA_FILE TOKEN_FILE [DOMAIN]');
  process.exit(2);
}
const domain = (domainArg ?? 'cluster.local').toLowerCase();
const ca = readFileSync(caFile, 'utf8');
const token = readFileSync(tokenFile, 'utf8').trim();

const TYPE_A = 1;
const TYPE_AAAA = 28;
const NOERROR = 0;
const FORMERR = 1;
const NXDOMAIN = 3;
const NOTIMP = 4;
const REFUSED = 5;

const cache = new Map<string, { ip: string | undefined; until: number }>();

/** The Service's ClusterIP, or undefined when it does not exist (or is headless). */
function serviceIp(namespace: string, name: string): Promise<string | undefined> {
  const key = `${namespace}/${name}`;
  const hit = cache.get(key);
  if (hit && hit.until > Date.now()) return Promise.resolve(hit.ip);
  return new Promise((resolve) => {
    const req = request(
      `${apiUrl}/api/v1/namespaces/${encodeURIComponent(namespace)}/services/${encodeURIComponent(name)}`,
      { ca, headers: { authorization: `Bearer ${token}`, accept: 'application/json' }, timeout: 2_000 },
      (res) => {
        let body = '';
        res.on('data', (chunk: Buffer) => (body += chunk.toString()));
        res.on('end', () => {
          let ip: string | undefined;
          if (res.statusCode === 200) {
            const clusterIP = (JSON.parse(body) as { spec?: { clusterIP?: string } }).spec?.clusterIP;
            if (clusterIP && /^\d+\.\d+\.\d+\.\d+$/.test(clusterIP)) ip = clusterIP;
          }
          cache.set(key, { ip, until: Date.now() + 2_000 });
          resolve(ip);
        });
      },
    );
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(undefined));
    req.end();
  });
}

interface Question {
  name: string;
  type: number;
  /** offset just past the question */
  end: number;
}

function parseQuestion(msg: Buffer): Question | undefined {
  if (msg.length < 12 || msg.readUInt16BE(4) !== 1) return undefined;
  const labels: string[] = [];
  let offset = 12;
  for (;;) {
    if (offset >= msg.length) return undefined;
    const length = msg[offset]!;
    offset += 1;
    if (length === 0) break;
    if (length > 63 || offset + length > msg.length) return undefined;
    labels.push(msg.subarray(offset, offset + length).toString('latin1'));
    offset += length;
  }
  if (offset + 4 > msg.length) return undefined;
  return { name: labels.join('.').toLowerCase(), type: msg.readUInt16BE(offset), end: offset + 4 };
}

function answer(query: Buffer, question: Question | undefined, rcode: number, ip?: string): Buffer {
  const header = Buffer.alloc(12);
  query.copy(header, 0, 0, 2); // id
  const rd = query.length > 2 ? query[2]! & 0x01 : 0;
  header[2] = 0x80 | 0x04 | rd; // QR, AA, RD echoed
  header[3] = 0x80 | rcode; // RA, rcode
  if (!question) return header;
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(ip ? 1 : 0, 6);
  const parts = [header, query.subarray(12, question.end)];
  if (ip) {
    const record = Buffer.alloc(16);
    record.writeUInt16BE(0xc00c, 0); // the question's name
    record.writeUInt16BE(TYPE_A, 2);
    record.writeUInt16BE(1, 4); // IN
    record.writeUInt32BE(5, 6); // TTL
    record.writeUInt16BE(4, 10);
    ip.split('.').forEach((octet, i) => (record[12 + i] = Number(octet)));
    parts.push(record);
  }
  return Buffer.concat(parts);
}

async function resolveQuery(query: Buffer): Promise<Buffer> {
  const question = parseQuestion(query);
  if (!question) return answer(query, undefined, FORMERR);
  const { name, type } = question;
  if (name !== domain && !name.endsWith(`.${domain}`)) return answer(query, question, REFUSED);
  const labels = name.slice(0, -(domain.length + 1)).split('.');
  const ip = labels.length === 3 && labels[2] === 'svc' ? await serviceIp(labels[1]!, labels[0]!) : undefined;
  if (!ip) return answer(query, question, NXDOMAIN);
  if (type === TYPE_A) return answer(query, question, NOERROR, ip);
  if (type === TYPE_AAAA) return answer(query, question, NOERROR);
  return answer(query, question, type === 255 ? NOTIMP : NOERROR);
}

const socket = createSocket('udp4');
socket.on('message', (query, peer) => {
  resolveQuery(query).then(
    (reply) => socket.send(reply, peer.port, peer.address),
    () => socket.send(answer(query, parseQuestion(query), 2), peer.port, peer.address),
  );
});
socket.bind(53, address, () => console.log(`dns listening on ${address}:53 for ${domain}`));
for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => process.exit(0));
