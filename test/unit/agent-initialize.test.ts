// Planning `pod-identity initialize` from the node's state (pure), and the
// permission check. Running it for real is test/integration/agent-netns.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AGENT_LINK, hasNetAdmin, initializeLink, IpCommandError, planInitialize, InitializeError, type LinkState } from '../../src/agent/initialize.js';

const EMPTY: LinkState = { exists: false, up: false, addresses: [], ipv4RouteDevices: [], ipv6RouteDevices: [] };
const DONE: LinkState = {
  exists: true,
  up: true,
  addresses: ['169.254.170.23/32', 'fd00:ec2::23/128', 'fe80::1/64'],
  ipv4RouteDevices: [AGENT_LINK],
  ipv6RouteDevices: [AGENT_LINK],
};

test('a fresh node gets the interface, both addresses, up, and both routes, in that order', () => {
  const plan = planInitialize(EMPTY);
  assert.deepEqual(
    plan.steps.map((s) => s.args.join(' ')),
    [
      'link add pod-id-link0 type dummy',
      '-4 addr add 169.254.170.23/32 dev pod-id-link0',
      '-6 addr add fd00:ec2::23/128 dev pod-id-link0 nodad',
      'link set pod-id-link0 up',
      '-4 route replace 169.254.170.23/32 dev pod-id-link0',
      '-6 route replace fd00:ec2::23/128 dev pod-id-link0',
    ],
  );
  assert.deepEqual(plan.steps[0]!.fallback, ['link', 'add', AGENT_LINK, 'type', 'bridge']);
  assert.deepEqual(
    plan.steps.map((s) => s.optional),
    [false, false, true, false, false, true],
  );
  assert.deepEqual(plan.warnings, []);
});

test('a configured node needs nothing (idempotent)', () => {
  assert.deepEqual(planInitialize(DONE), { steps: [], warnings: [] });
});

test('only the missing pieces are planned', () => {
  const plan = planInitialize({ ...DONE, up: false, addresses: ['169.254.170.23/32'], ipv6RouteDevices: [] });
  assert.deepEqual(
    plan.steps.map((s) => s.description),
    ['add fd00:ec2::23/128', 'bring pod-id-link0 up', 'route fd00:ec2::23/128 to pod-id-link0'],
  );
});

test('without IPv6 only IPv4 is configured, with a warning', () => {
  const plan = planInitialize({ ...EMPTY, ipv6RouteDevices: undefined });
  assert.ok(plan.steps.every((s) => !s.args.includes('-6')));
  assert.match(plan.warnings[0]!, /IPv6 is not available/);
});

test('a route to 169.254.170.23 through another interface is an error that says what to do', () => {
  assert.throws(() => planInitialize({ ...EMPTY, ipv4RouteDevices: ['eth0'] }), (e: Error) => e instanceof InitializeError && /through eth0.*ip route del/.test(e.message));
  const plan = planInitialize({ ...DONE, ipv6RouteDevices: ['eth0'] });
  assert.deepEqual(plan.steps, []);
  assert.match(plan.warnings[0]!, /IPv6 route left alone/);
});

test('CAP_NET_ADMIN is read from the effective capability set', () => {
  assert.equal(hasNetAdmin('Name:\tnode\nCapEff:\t000001fffeffffff\n'), true);
  assert.equal(hasNetAdmin('CapEff:\t0000000000001000\n'), true);
  assert.equal(hasNetAdmin('CapEff:\t0000000000000000\n'), false);
  assert.equal(hasNetAdmin('CapEff:\t00000000a80425fb\n'), false, "Docker's default set has no NET_ADMIN");
});

test('without NET_ADMIN initialize stops before running anything, with a clear error', async () => {
  const ran: string[][] = [];
  await assert.rejects(
    initializeLink({
      procStatus: 'CapEff:\t0000000000000000\n',
      run: async (args) => {
        ran.push(args);
        return '[]';
      },
    }),
    (e: Error) => e instanceof InitializeError && /NET_ADMIN/.test(e.message),
  );
  assert.deepEqual(ran, []);
});

test('a kernel without the dummy driver gets a bridge; IPv6 failures are warnings, IPv4 ones are errors', async () => {
  const ran: string[] = [];
  const fails = new Set(['link add pod-id-link0 type dummy', '-6 addr add fd00:ec2::23/128 dev pod-id-link0 nodad', '-6 route replace fd00:ec2::23/128 dev pod-id-link0']);
  const run = async (args: string[]) => {
    const line = args.join(' ');
    if (args[0] === '-j') return '[]';
    ran.push(line);
    if (fails.has(line)) throw new IpCommandError(args, 'Error: Unknown device type.', 2);
    return '';
  };
  const result = await initializeLink({ procStatus: 'CapEff:\t000001ffffffffff\n', run });
  assert.deepEqual(ran, [
    'link add pod-id-link0 type dummy',
    'link add pod-id-link0 type bridge',
    '-4 addr add 169.254.170.23/32 dev pod-id-link0',
    '-6 addr add fd00:ec2::23/128 dev pod-id-link0 nodad',
    'link set pod-id-link0 up',
    '-4 route replace 169.254.170.23/32 dev pod-id-link0',
    '-6 route replace fd00:ec2::23/128 dev pod-id-link0',
  ]);
  assert.deepEqual(result.done, ['create interface pod-id-link0', 'add 169.254.170.23/32', 'bring pod-id-link0 up', 'route 169.254.170.23/32 to pod-id-link0']);
  assert.equal(result.warnings.length, 3);
  assert.match(result.warnings[0]!, /used `ip link add pod-id-link0 type bridge`/);

  fails.add('-4 addr add 169.254.170.23/32 dev pod-id-link0');
  await assert.rejects(initializeLink({ procStatus: 'CapEff:\t000001ffffffffff\n', run }), IpCommandError);
  fails.clear();
  fails.add('link add pod-id-link0 type dummy');
  const denied = async (args: string[]) => {
    if (args[0] === '-j') return '[]';
    throw new IpCommandError(args, 'RTNETLINK answers: Operation not permitted', 2);
  };
  await assert.rejects(initializeLink({ procStatus: 'CapEff:\t000001ffffffffff\n', run: denied }), (e: Error) => e instanceof InitializeError && /NET_ADMIN/.test(e.message));
});
