// Runs inside the test node's network namespace (started by node-cluster.ts,
// executed by Node's type stripping: no imports but node:). Listens on a unix
// socket, whose file the test process reaches across network namespaces; each
// connection starts with one line "HOST PORT\n", after which its bytes are
// piped to a TCP connection to HOST:PORT made from inside the namespace
// (so kube-proxy's Service rules apply, as for any process on the node). The
// test process thus reaches the node's API server, moto and Services through
// 127.0.0.1 without any address or route on the machine's own interfaces.
//
//   node node-relay.ts SOCKET_PATH
import { connect, createServer, type Socket } from 'node:net';
import { rmSync } from 'node:fs';

const socketPath = process.argv[2];
if (!socketPath) {
  console.error('usage: node node-relay.ts SOCKET_PATH');
  process.exit(2);
}
rmSync(socketPath, { force: true });

const server = createServer((client: Socket) => {
  let head = Buffer.alloc(0);
  const onData = (chunk: Buffer) => {
    head = Buffer.concat([head, chunk]);
    const newline = head.indexOf(0x0a);
    if (newline < 0) {
      if (head.length > 512) client.destroy();
      return;
    }
    client.off('data', onData);
    client.pause();
    const [host, port] = head.subarray(0, newline).toString('utf8').trim().split(' ');
    const rest = head.subarray(newline + 1);
    const upstream = connect({ host: host!, port: Number(port), timeout: 10_000 });
    upstream.once('connect', () => {
      upstream.setTimeout(0);
      if (rest.length > 0) upstream.write(rest);
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
    });
    upstream.once('timeout', () => upstream.destroy(new Error('connect timeout')));
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  };
  client.on('data', onData);
  client.on('error', () => client.destroy());
});
server.listen(socketPath, () => console.log(`relay listening on ${socketPath}`));
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    server.close();
    rmSync(socketPath, { force: true });
    process.exit(0);
  });
}
