// The console's forms become the association API's own inputs and go through
// its schemas: a form the API would refuse is refused with the API's code and
// message.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createInput, tagResourceInput, updateInput, validate } from '../../src/api/eks.js';
import { createFromForm, parseForm, tagFromForm, updateFromForm } from '../../src/console/forms.js';
import { WireError } from '../../src/lib/errors.js';

const ROLE = 'arn:aws:iam::111122223333:role/app';

function refusal(run: () => unknown): { code: string; message: string } {
  try {
    run();
  } catch (error) {
    assert.ok(error instanceof WireError, String(error));
    return { code: error.code, message: error.message };
  }
  assert.fail('expected a refusal');
}

test('the create form: fields trimmed, blank optional fields left out, tags one key=value a line', () => {
  const form = parseForm(Buffer.from(new URLSearchParams({ cluster: 'demo', namespace: ' default ', serviceAccount: 'app', roleArn: ROLE, targetRoleArn: '', policy: '  ', tags: 'team=a\r\n\nempty\npath=a/b=c\n' }).toString()));
  assert.deepEqual(createFromForm(form), { namespace: 'default', serviceAccount: 'app', roleArn: ROLE, disableSessionTags: false, tags: { team: 'a', empty: '', path: 'a/b=c' } });
  assert.deepEqual(validate(createInput, createFromForm(form)).tags, { team: 'a', empty: '', path: 'a/b=c' });
  const withPolicy = new URLSearchParams({ namespace: 'n', serviceAccount: 's', roleArn: ROLE, disableSessionTags: 'on', policy: '{"Version":"2012-10-17","Statement":[]}' });
  assert.deepEqual(createFromForm(withPolicy), { namespace: 'n', serviceAccount: 's', roleArn: ROLE, disableSessionTags: true, policy: '{"Version":"2012-10-17","Statement":[]}' });
});

test('a tag named twice in the create form is refused as an invalid parameter', () => {
  const form = new URLSearchParams({ namespace: 'n', serviceAccount: 's', roleArn: ROLE, tags: 'a=1\na=2' });
  assert.deepEqual(refusal(() => createFromForm(form)), { code: 'InvalidParameterException', message: 'tags name "a" twice' });
});

test('a create form the API would refuse is refused with the API’s words', () => {
  const api = { namespace: 'default', serviceAccount: 'app', roleArn: 'not-an-arn' };
  const form = new URLSearchParams({ ...api });
  assert.deepEqual(refusal(() => validate(createInput, createFromForm(form))), refusal(() => validate(createInput, { ...api, disableSessionTags: false })));
  assert.equal(refusal(() => validate(createInput, createFromForm(form))).code, 'InvalidParameterException');
});

test('the edit form sends every field: blank target role and policy clear them', () => {
  const form = new URLSearchParams({ roleArn: ROLE, targetRoleArn: ' ', policy: '' });
  assert.deepEqual(updateFromForm(form), { roleArn: ROLE, disableSessionTags: false, targetRoleArn: '', policy: '' });
  const parsed = validate(updateInput, updateFromForm(form));
  assert.equal(parsed.roleArn, ROLE);
  const bad = refusal(() => validate(updateInput, updateFromForm(new URLSearchParams({ roleArn: 'arn:aws:iam::123:role/r' }))));
  assert.equal(bad.code, 'InvalidParameterException');
  assert.match(bad.message, /^roleArn must be an IAM role ARN/);
});

test('the add-tag form: one tag, with the API’s refusal for an aws: key', () => {
  assert.deepEqual(tagFromForm(new URLSearchParams({ key: ' team ', value: ' a b ' })), { tags: { team: 'a b' } });
  const refused = refusal(() => validate(tagResourceInput, tagFromForm(new URLSearchParams({ key: 'aws:owner', value: 'x' })), 'BadRequestException'));
  assert.equal(refused.code, 'BadRequestException');
  assert.deepEqual(refused, refusal(() => validate(tagResourceInput, { tags: { 'aws:owner': 'x' } }, 'BadRequestException')));
});
