// Tags of an association after create, and EKS's input limits, as Terraform,
// `aws eks tag-resource` and every SDK use them: TagResource, UntagResource
// and ListTagsForResource on association ARNs with @aws-sdk/client-eks, boto3
// and the AWS CLI, against a started server; both sides of every limit.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  CreatePodIdentityAssociationCommand,
  DescribePodIdentityAssociationCommand,
  EKSClient,
  ListTagsForResourceCommand,
  TagResourceCommand,
  UntagResourceCommand,
  UpdatePodIdentityAssociationCommand,
} from '@aws-sdk/client-eks';
import { rejectsWith } from '../helpers/aws-errors.js';
import { ADMIN, startServerProcess, type ServerProcess } from '../helpers/server-process.js';
import { pythonPeersMissingReason, runAwsCli, runPython } from '../peers/python.js';
import { requirePeer } from '../peers/require.js';

const ROLE = 'arn:aws:iam::111122223333:role/app-role';
const pythonSkip = requirePeer('boto3 and the AWS CLI', pythonPeersMissingReason);

const manyTags = (n: number, prefix = 'k') => Object.fromEntries(Array.from({ length: n }, (_, i) => [`${prefix}${i}`, `v${i}`]));

describe('association tags and EKS input limits', () => {
  let server: ServerProcess;
  let eks: EKSClient;
  let serviceAccounts = 0;
  const create = (input: Partial<ConstructorParameters<typeof CreatePodIdentityAssociationCommand>[0]> = {}) =>
    eks.send(new CreatePodIdentityAssociationCommand({ clusterName: 'demo', namespace: 'shop', serviceAccount: `sa-${++serviceAccounts}`, roleArn: ROLE, ...input }));
  const describeTags = async (arn: string) => {
    const id = arn.split('/').pop()!;
    return (await eks.send(new DescribePodIdentityAssociationCommand({ clusterName: 'demo', associationId: id }))).association!.tags;
  };

  before(async () => {
    server = await startServerProcess();
    eks = new EKSClient({ endpoint: server.apiUrl, region: 'us-east-1', credentials: { ...ADMIN }, maxAttempts: 1 });
  });
  after(async () => {
    eks?.destroy();
    await server?.stop();
  });

  test('TagResource, UntagResource and ListTagsForResource with @aws-sdk/client-eks change what Describe returns, idempotently', async () => {
    const { association } = await create({ tags: { team: 'shop' } });
    const arn = association!.associationArn!;
    const modifiedAt = association!.modifiedAt;
    await eks.send(new TagResourceCommand({ resourceArn: arn, tags: { env: 'prod', cost: 'a/b:c=d+e-f@g_h.i' } }));
    await eks.send(new TagResourceCommand({ resourceArn: arn, tags: { env: 'prod', cost: 'a/b:c=d+e-f@g_h.i' } }));
    assert.deepEqual(await describeTags(arn), { team: 'shop', env: 'prod', cost: 'a/b:c=d+e-f@g_h.i' });
    assert.deepEqual((await eks.send(new ListTagsForResourceCommand({ resourceArn: arn }))).tags, { team: 'shop', env: 'prod', cost: 'a/b:c=d+e-f@g_h.i' });
    await eks.send(new TagResourceCommand({ resourceArn: arn, tags: { env: 'staging' } }));
    await eks.send(new UntagResourceCommand({ resourceArn: arn, tagKeys: ['team', 'never-there'] }));
    await eks.send(new UntagResourceCommand({ resourceArn: arn, tagKeys: ['team'] }));
    assert.deepEqual(await describeTags(arn), { env: 'staging', cost: 'a/b:c=d+e-f@g_h.i' });
    // Tags are metadata: tagging does not count as modifying the association.
    const after = await eks.send(new DescribePodIdentityAssociationCommand({ clusterName: 'demo', associationId: association!.associationId! }));
    assert.deepEqual(after.association!.modifiedAt, modifiedAt);
  });

  test('errors as EKS has them: an ARN we do not hold is 404 NotFoundException; a malformed ARN or bad tags 400 BadRequestException', async () => {
    const { association } = await create();
    const arn = association!.associationArn!;
    const unknown = arn.replace(/a-[a-z0-9]{17}$/, 'a-00000000000000000');
    await rejectsWith(eks.send(new ListTagsForResourceCommand({ resourceArn: unknown })), 'NotFoundException', 404);
    await rejectsWith(eks.send(new TagResourceCommand({ resourceArn: unknown, tags: { a: 'b' } })), 'NotFoundException', 404);
    await rejectsWith(eks.send(new UntagResourceCommand({ resourceArn: unknown, tagKeys: ['a'] })), 'NotFoundException', 404);
    await rejectsWith(eks.send(new ListTagsForResourceCommand({ resourceArn: arn.replace(':us-east-1:', ':eu-west-1:') })), 'NotFoundException', 404);
    await rejectsWith(eks.send(new ListTagsForResourceCommand({ resourceArn: 'arn:aws:eks:us-east-1:000000000000:cluster/demo' })), 'NotFoundException', 404);
    await rejectsWith(eks.send(new ListTagsForResourceCommand({ resourceArn: 'not-an-arn' })), 'BadRequestException', 400);
    await rejectsWith(eks.send(new TagResourceCommand({ resourceArn: arn, tags: { 'aws:reserved': 'x' } })), 'BadRequestException', 400);
    await rejectsWith(eks.send(new TagResourceCommand({ resourceArn: arn, tags: { ok: 'no!' } })), 'BadRequestException', 400);
    await rejectsWith(eks.send(new TagResourceCommand({ resourceArn: arn, tags: {} })), 'BadRequestException', 400);
    assert.deepEqual(await describeTags(arn), {}, 'a refused request changes nothing');
  });

  test('both sides of every limit: 50 tags, key 128, value 256, the character set, policy 2048, clientRequestToken 64', async () => {
    await create({ tags: manyTags(50) });
    await rejectsWith(create({ tags: manyTags(51) }), 'InvalidParameterException', 400);
    await create({ tags: { ['k'.repeat(128)]: 'v'.repeat(256) } });
    await rejectsWith(create({ tags: { ['k'.repeat(129)]: 'v' } }), 'InvalidParameterException', 400);
    await rejectsWith(create({ tags: { k: 'v'.repeat(257) } }), 'InvalidParameterException', 400);
    await create({ tags: { 'équipe Ünïcödé 42': 'ça va _.:/=+-@' } });
    for (const bad of ['nul\u0000', 'line\nbreak', 'lone\ud800surrogate', 'semi;colon', 'star*']) {
      const e = await rejectsWith(create({ tags: { key: bad } }), 'InvalidParameterException', 400);
      assert.match(e.message, /letters, digits, spaces and _ \. : \/ = \+ - @/);
    }
    await rejectsWith(create({ tags: { 'AWS:x': 'v' } }), 'InvalidParameterException', 400);

    // TagResource: the merged set may reach 50, never 51.
    const { association } = await create({ tags: manyTags(49) });
    const arn = association!.associationArn!;
    await eks.send(new TagResourceCommand({ resourceArn: arn, tags: { extra: '1' } }));
    await eks.send(new TagResourceCommand({ resourceArn: arn, tags: { extra: '2' } })); // an existing key: still 50
    const over = await rejectsWith(eks.send(new TagResourceCommand({ resourceArn: arn, tags: { one: 'too many' } })), 'BadRequestException', 400);
    assert.match(over.message, /at most 50 tags/);
    await rejectsWith(eks.send(new TagResourceCommand({ resourceArn: arn, tags: manyTags(51, 'n') })), 'BadRequestException', 400);
    await rejectsWith(eks.send(new UntagResourceCommand({ resourceArn: arn, tagKeys: Array.from({ length: 51 }, (_, i) => `k${i}`) })), 'BadRequestException', 400);
    await eks.send(new UntagResourceCommand({ resourceArn: arn, tagKeys: Array.from({ length: 50 }, (_, i) => `k${i}`) }));
    assert.deepEqual(await describeTags(arn), { extra: '2' });
    await rejectsWith(eks.send(new TagResourceCommand({ resourceArn: arn, tags: { ['k'.repeat(129)]: 'v' } })), 'BadRequestException', 400);
    await eks.send(new TagResourceCommand({ resourceArn: arn, tags: { ['k'.repeat(128)]: 'v'.repeat(256) } }));

    const policy = (length: number) => {
      const base = '{"Version":"2012-10-17","Statement":[],"Sid":""}';
      return base.slice(0, -2) + 'x'.repeat(length - base.length) + '"}';
    };
    assert.equal(policy(2048).length, 2048);
    await create({ disableSessionTags: true, policy: policy(2048) });
    await rejectsWith(create({ disableSessionTags: true, policy: policy(2049) }), 'InvalidParameterException', 400);
    const id = association!.associationId!;
    await eks.send(new UpdatePodIdentityAssociationCommand({ clusterName: 'demo', associationId: id, disableSessionTags: true, policy: policy(2048) }));
    await rejectsWith(eks.send(new UpdatePodIdentityAssociationCommand({ clusterName: 'demo', associationId: id, policy: policy(2049) })), 'InvalidParameterException', 400);

    await create({ clientRequestToken: 't'.repeat(64) });
    await rejectsWith(create({ clientRequestToken: 't'.repeat(65) }), 'InvalidParameterException', 400);
    await rejectsWith(eks.send(new UpdatePodIdentityAssociationCommand({ clusterName: 'demo', associationId: id, clientRequestToken: 't'.repeat(65) })), 'InvalidParameterException', 400);
  });

  test('boto3 and the AWS CLI: tag-resource, untag-resource, list-tags-for-resource, errors included', { skip: pythonSkip }, async () => {
    const { association } = await create({ tags: { team: 'shop' } });
    const arn = association!.associationArn!;
    const env = { AWS_ACCESS_KEY_ID: ADMIN.accessKeyId, AWS_SECRET_ACCESS_KEY: ADMIN.secretAccessKey, AWS_DEFAULT_REGION: 'us-east-1' };
    const boto = await runPython(
      `
import json, sys, boto3, botocore
eks = boto3.client('eks', endpoint_url=sys.argv[1], region_name='us-east-1')
arn = sys.argv[2]
eks.tag_resource(resourceArn=arn, tags={'env': 'prod'})
listed = eks.list_tags_for_resource(resourceArn=arn)['tags']
eks.untag_resource(resourceArn=arn, tagKeys=['team'])
after = eks.list_tags_for_resource(resourceArn=arn)['tags']
errors = []
for call in (lambda: eks.list_tags_for_resource(resourceArn=arn[:-17] + '0' * 17), lambda: eks.tag_resource(resourceArn='nope', tags={'a': 'b'})):
    try:
        call()
    except botocore.exceptions.ClientError as e:
        errors.append([e.response['Error']['Code'], e.response['ResponseMetadata']['HTTPStatusCode']])
print(json.dumps({'listed': listed, 'after': after, 'errors': errors}))
`,
      [server.apiUrl, arn],
      { env },
    );
    assert.deepEqual(JSON.parse(boto.stdout), { listed: { team: 'shop', env: 'prod' }, after: { env: 'prod' }, errors: [['NotFoundException', 404], ['BadRequestException', 400]] });

    await runAwsCli(['eks', 'tag-resource', '--endpoint-url', server.apiUrl, '--resource-arn', arn, '--tags', 'owner=platform,tier=1'], { env });
    await runAwsCli(['eks', 'untag-resource', '--endpoint-url', server.apiUrl, '--resource-arn', arn, '--tag-keys', 'env'], { env });
    const listed = await runAwsCli(['eks', 'list-tags-for-resource', '--endpoint-url', server.apiUrl, '--resource-arn', arn, '--output', 'json'], { env });
    assert.deepEqual(JSON.parse(listed.stdout), { tags: { owner: 'platform', tier: '1' } });
    const bad = await runAwsCli(['eks', 'tag-resource', '--endpoint-url', server.apiUrl, '--resource-arn', arn, '--tags', 'aws:x=1'], { env, allowFailure: true });
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /BadRequestException/);
    const missing = await runAwsCli(['eks', 'list-tags-for-resource', '--endpoint-url', server.apiUrl, '--resource-arn', arn.replace(/a-[a-z0-9]{17}$/, 'a-00000000000000000')], { env, allowFailure: true });
    assert.match(missing.stderr, /NotFoundException/);
  });
});
