// Slow sockets are closed at the header timeout (issue 25, item 8), not at
// Node's next 30-second check. Real clients on real sockets: one that opens a
// connection and sends nothing, and one that drips a header byte a second
// (each byte well inside any idle timeout), against the agent process (5 s
// header timeout) and the server's API listener (10 s).
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { startAgentProcess, startControlPlane, type AgentProcess, type ControlPlane } from './agent-harness.js';

interface Closed {
  seconds: number;
  /** the status line the listener answered with before closing, if any */
  status: string;
}

/** Connects, sends `head` then one more header byte each `dripMs` (never the blank line), and times the close. */
function slowClient(port: number, head: string, dripMs: number): Promise<Closed> {
  return new Promise((resolve) => {
    const started = performance.now();
    const socket = connect(port, '127.0.0.1');
    let answer = '';
    let drip: NodeJS.Timeout | undefined;
    socket.on('connect', () => {
      if (head) socket.write(head);
      if (dripMs > 0) drip = setInterval(() => socket.write('a'), dripMs);
    });
    socket.on('data', (chunk) => (answer += chunk.toString()));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearInterval(drip);
      resolve({ seconds: (performance.now() - started) / 1000, status: answer.split('\r\n', 1)[0] ?? '' });
    });
  });
}

describe('slow sockets are closed at the header timeout', { timeout: 60_000 }, () => {
  let cp: ControlPlane;
  let agent: AgentProcess;

  before(async () => {
    cp = await startControlPlane();
    agent = await startAgentProcess({ endpoint: cp.server.apiUrl });
  });
  after(async () => {
    await agent?.stop();
    await cp?.stop();
  });

  test('agent (5 s) and server API (10 s): silent and dripping clients are cut off within 1 s of the timeout', async (t) => {
    const apiPort = Number(new URL(cp.server.apiUrl).port);
    const drippedHead = (host: string) => `GET /v1/credentials HTTP/1.1\r\nHost: ${host}\r\nX-Slow: `;
    const [agentSilent, agentDrip, apiSilent, apiDrip] = await Promise.all([
      slowClient(agent.port, '', 0),
      slowClient(agent.port, drippedHead(`127.0.0.1:${agent.port}`), 1000),
      slowClient(apiPort, '', 0),
      slowClient(apiPort, drippedHead(`127.0.0.1:${apiPort}`), 1000),
    ]);
    t.diagnostic(
      `agent: silent closed after ${agentSilent.seconds.toFixed(2)} s, dripping after ${agentDrip.seconds.toFixed(2)} s (${agentDrip.status}); ` +
        `server API: silent ${apiSilent.seconds.toFixed(2)} s, dripping ${apiDrip.seconds.toFixed(2)} s (${apiDrip.status})`,
    );
    for (const [what, closed, timeout] of [
      ['agent, silent', agentSilent, 5],
      ['agent, dripping', agentDrip, 5],
      ['server API, silent', apiSilent, 10],
      ['server API, dripping', apiDrip, 10],
    ] as const) {
      assert.ok(closed.seconds >= timeout - 0.1 && closed.seconds < timeout + 1, `${what}: closed after ${closed.seconds.toFixed(2)} s (header timeout ${timeout} s)`);
    }
    assert.match(agentDrip.status, /^HTTP\/1\.1 408/, 'the agent says why (408, JSON body)');
  });
});
