// EKS Auth's overload shedding: the pure decision (in-flight bound, then the
// event loop's delay), and the control around it on a real node:http server
// in this process — one long stall sheds nothing, a loop busy with its own work sheds
// with the EKS Auth wire shape of ThrottlingException and Retry-After, and a
// slot is given back when its response closes.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { AdmissionControl, BUSY_THRESHOLD, decideAdmission, RETRY_AFTER_SECONDS } from '../../src/server/admission.js';

const LIMITS = { maxInFlight: 3, maxQueueMs: 20 };

const busy = (delayMs: number) => ({ delayMs, busy: 1 });

test('a request is taken on while fewer than maxInFlight are in progress and the loop is on time', () => {
  assert.deepEqual(decideAdmission(0, busy(0), LIMITS), { admit: true });
  assert.deepEqual(decideAdmission(2, busy(20), LIMITS), { admit: true });
});

test('at maxInFlight a request is refused for in-flight, whatever the loop does', () => {
  assert.deepEqual(decideAdmission(3, busy(0), LIMITS), { admit: false, reason: 'in-flight' });
  assert.deepEqual(decideAdmission(10, { delayMs: 500, busy: 0.1 }, LIMITS), { admit: false, reason: 'in-flight' });
});

test('a loop late past maxQueueMs all through the window, with the process busy, refuses for queue', () => {
  assert.deepEqual(decideAdmission(0, busy(20.5), LIMITS), { admit: false, reason: 'queue' });
  assert.deepEqual(decideAdmission(2, { delayMs: 1000, busy: BUSY_THRESHOLD }, LIMITS), { admit: false, reason: 'queue' });
});

test('a loop kept late by other processes (this one not busy) refuses nothing', () => {
  assert.deepEqual(decideAdmission(0, { delayMs: 200, busy: 0.4 }, LIMITS), { admit: true });
});

function busyWait(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until);
}

describe('AdmissionControl on a node:http server', () => {
  const shed: string[] = [];
  const control = new AdmissionControl(LIMITS, (reason) => shed.push(reason));
  /** responses the handler holds open, so that their slots stay taken */
  const held: (() => void)[] = [];
  let server: Server;
  let base: string;

  before(async () => {
    server = createServer((req, res) => {
      // /stall: the loop is busy for 60 ms once before this request is looked at
      if (req.url === '/stall') busyWait(60);
      if (!control.admit(res, 'request-1')) return;
      if (req.url === '/hold') held.push(() => res.end('held'));
      else res.end('ok');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    // the first fetch loads its client (a long turn of its own); then on-time samples
    await (await fetch(`${base}/`)).arrayBuffer();
    await new Promise((r) => setTimeout(r, 50));
    shed.length = 0;
  });
  after(() => {
    control.close();
    server.closeAllConnections();
    server.close();
  });

  test('one 60 ms stall sheds nothing: the request after it is taken on', async () => {
    const res = await fetch(`${base}/stall`);
    assert.equal(res.status, 200);
    await res.arrayBuffer();
    assert.deepEqual(shed, []);
  });

  test('while every loop turn is 30 ms of work, a request is refused with ThrottlingException, Retry-After and the EKS Auth error shape', async () => {
    // a busy loop: turn after turn of 30 ms of work, for 500 ms (two full windows before the request)
    const until = performance.now() + 500;
    const hog = () => {
      busyWait(30);
      if (performance.now() < until) setImmediate(hog);
    };
    await new Promise((r) => setTimeout(r, 10));
    const cpuBefore = process.cpuUsage();
    const wallBefore = performance.now();
    setImmediate(hog);
    await new Promise((r) => setTimeout(r, 300));
    const cpu = process.cpuUsage(cpuBefore);
    const share = (cpu.user + cpu.system) / 1000 / (performance.now() - wallBefore);
    const res = await fetch(`${base}/`);
    const text = await res.text();
    while (performance.now() < until) await new Promise((r) => setTimeout(r, 10));
    if (share < BUSY_THRESHOLD + 0.05) {
      // the machine's other work kept this process from a whole core: the loop was late, but not from its own queue
      if (share < BUSY_THRESHOLD - 0.05) assert.equal(res.status, 200, `this process had ${share.toFixed(2)} of a core: nothing shed`);
      return;
    }
    assert.equal(res.status, 429);
    assert.equal(res.headers.get('retry-after'), String(RETRY_AFTER_SECONDS));
    assert.equal(res.headers.get('x-amzn-errortype'), 'ThrottlingException');
    assert.equal(res.headers.get('x-amzn-requestid'), 'request-1');
    const body = JSON.parse(text) as Record<string, unknown>;
    assert.equal(body.__type, 'ThrottlingException');
    assert.equal(typeof body.message, 'string');
    assert.ok(shed.length >= 1 && shed.every((r) => r === 'queue'), shed.join(','));
  });

  test('with maxInFlight responses open the next request is refused; once one closes, a request is taken again', async () => {
    // a full window of an idle loop after the busy one
    await new Promise((r) => setTimeout(r, 250));
    shed.length = 0;
    const holding = Array.from({ length: LIMITS.maxInFlight }, () => fetch(`${base}/hold`));
    while (held.length < LIMITS.maxInFlight) {
      assert.deepEqual(shed, [], 'the held requests were taken on');
      await new Promise((r) => setTimeout(r, 5));
    }
    const refused = await fetch(`${base}/`);
    assert.equal(refused.status, 429);
    await refused.arrayBuffer();
    assert.deepEqual(shed, ['in-flight']);
    held.shift()!();
    assert.equal((await holding[0]!).status, 200);
    const taken = await fetch(`${base}/`);
    assert.equal(taken.status, 200);
    assert.equal(await taken.text(), 'ok');
    for (const release of held.splice(0)) release();
    await Promise.all(holding.map(async (p) => (await p).arrayBuffer()));
  });
});
