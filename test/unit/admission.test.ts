// EKS Auth's overload shedding: the pure decisions (the in-flight bound, the
// share taken on and how each window moves it), and the control around them
// on a real node:http server in this process — one long stall sheds nothing,
// a loop busy with its own work sheds with the EKS Auth wire shape of
// ThrottlingException and Retry-After, and a slot is given back when its
// response closes.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, beforeEach, describe, test } from 'node:test';
import { AdmissionControl, afterWindow, BUSY_THRESHOLD, decideAdmission, isOverloaded, MIN_SHARE, RETRY_AFTER_SECONDS, type ShareState } from '../../src/server/admission.js';

const LIMITS = { maxInFlight: 3, maxQueueMs: 20 };
const ALL: ShareState = { share: 1, credit: 0, lateWindows: 0 };
/** a window whose every sample was `delayMs` late, the process on a whole core */
const late = (delayMs: number) => ({ delayMs, leastDelayMs: delayMs, busy: 1 });
const ON_TIME = { delayMs: 0.5, leastDelayMs: 0, busy: 0.5 };

test('with the whole share and fewer than maxInFlight in progress, every request is taken on', () => {
  assert.deepEqual(decideAdmission(0, ALL, LIMITS).decision, { admit: true });
  assert.deepEqual(decideAdmission(2, ALL, LIMITS).decision, { admit: true });
});

test('at maxInFlight a request is refused for in-flight, whatever the share, and the credit is left as it was', () => {
  assert.deepEqual(decideAdmission(3, ALL, LIMITS), { decision: { admit: false, reason: 'in-flight' }, credit: 0 });
  assert.deepEqual(decideAdmission(10, { share: 0.5, credit: 0.5, lateWindows: 0 }, LIMITS), { decision: { admit: false, reason: 'in-flight' }, credit: 0.5 });
});

test('a share of a quarter takes every fourth request, evenly, and refuses the others for queue', () => {
  let state: ShareState = { share: 0.25, credit: 0, lateWindows: 1 };
  const taken: boolean[] = [];
  for (let i = 0; i < 12; i++) {
    const { decision, credit } = decideAdmission(0, state, LIMITS);
    taken.push(decision.admit);
    if (!decision.admit) assert.equal(decision.reason, 'queue');
    state = { ...state, credit };
  }
  assert.deepEqual(taken, [false, false, false, true, false, false, false, true, false, false, false, true]);
});

test('a window late on average past maxQueueMs and never on time, with the process busy, is overloaded', () => {
  assert.equal(isOverloaded(late(20.5), LIMITS), true);
  assert.equal(isOverloaded({ delayMs: 1000, leastDelayMs: 900, busy: BUSY_THRESHOLD }, LIMITS), true);
  assert.equal(isOverloaded(late(20), LIMITS), false, 'at the bound, not past it');
});

test('a window with one long turn among on-time ones, or kept late by other processes, is not', () => {
  assert.equal(isOverloaded({ delayMs: 30, leastDelayMs: 1, busy: 1 }, LIMITS), false);
  assert.equal(isOverloaded({ delayMs: 200, leastDelayMs: 200, busy: 0.4 }, LIMITS), false);
});

test('from the second overloaded window in a row the share halves each window, down to MIN_SHARE; on-time ones give it back slowly, up to all', () => {
  let state = ALL;
  const shares: number[] = [];
  for (let i = 0; i < 4; i++) shares.push((state = afterWindow(state, late(50), LIMITS)).share);
  assert.deepEqual(shares, [1, 0.5, 0.25, 0.125]);
  for (let i = 0; i < 20; i++) state = afterWindow(state, late(50), LIMITS);
  assert.equal(state.share, MIN_SHARE);
  state = afterWindow(state, ON_TIME, LIMITS);
  assert.equal(state.lateWindows, 0);
  assert.ok(state.share > MIN_SHARE && state.share < 0.05, String(state.share));
  for (let i = 0; i < 200; i++) state = afterWindow(state, ON_TIME, LIMITS);
  assert.equal(state.share, 1);
  assert.equal(afterWindow(state, late(50), LIMITS).share, 1, 'one overloaded window alone (a stall) cuts nothing');
  assert.equal(afterWindow(afterWindow(afterWindow(state, late(50), LIMITS), ON_TIME, LIMITS), late(50), LIMITS).share, 1, 'nor two apart');
});

function busyWait(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until);
}

describe('AdmissionControl on a node:http server', () => {
  const shed: string[] = [];
  /** a fresh control for each test: a cut share takes seconds to come back */
  let control: AdmissionControl;
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
  });
  beforeEach(async () => {
    control?.close();
    control = new AdmissionControl(LIMITS, (reason) => shed.push(reason));
    // the first fetch loads its client (a long turn of its own); then on-time samples
    await (await fetch(`${base}/`)).arrayBuffer();
    await new Promise((r) => setTimeout(r, 120));
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
    await new Promise((r) => setTimeout(r, 60));
    const next = await fetch(`${base}/`);
    assert.equal(next.status, 200);
    await next.arrayBuffer();
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
