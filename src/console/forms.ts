// What the console's forms submit, turned into the association API's own
// inputs (api/eks.ts), which are then validated by the same schemas as the
// API's requests: same rules, same messages. Pure: no I/O.
import { WireError } from '../lib/errors.js';

/** An HTML form body (application/x-www-form-urlencoded). */
export function parseForm(body: Buffer): URLSearchParams {
  return new URLSearchParams(body.toString('utf8'));
}

function field(form: URLSearchParams, name: string): string {
  return (form.get(name) ?? '').trim();
}

/** `key=value` lines (a line without `=` is a key with an empty value); blank lines are skipped. */
function parseTagLines(text: string): Record<string, string> | undefined {
  const tags: Record<string, string> = {};
  let any = false;
  for (const line of text.split(/\r?\n/)) {
    if (line.trim() === '') continue;
    const eq = line.indexOf('=');
    const key = (eq === -1 ? line : line.slice(0, eq)).trim();
    if (Object.hasOwn(tags, key)) throw new WireError('InvalidParameterException', `tags name ${JSON.stringify(key.slice(0, 20))} twice`);
    tags[key] = eq === -1 ? '' : line.slice(eq + 1).trim();
    any = true;
  }
  return any ? tags : undefined;
}

/** CreatePodIdentityAssociation's body from the create form (blank optional fields left out). */
export function createFromForm(form: URLSearchParams): Record<string, unknown> {
  const tags = parseTagLines(form.get('tags') ?? '');
  const targetRoleArn = field(form, 'targetRoleArn');
  const policy = field(form, 'policy');
  return {
    namespace: field(form, 'namespace'),
    serviceAccount: field(form, 'serviceAccount'),
    roleArn: field(form, 'roleArn'),
    disableSessionTags: form.get('disableSessionTags') === 'on',
    ...(targetRoleArn && { targetRoleArn }),
    ...(policy && { policy }),
    ...(tags && { tags }),
  };
}

/** UpdatePodIdentityAssociation's body from the edit form: every field is sent, a blank one removes the target role or policy. */
export function updateFromForm(form: URLSearchParams): Record<string, unknown> {
  return {
    roleArn: field(form, 'roleArn'),
    disableSessionTags: form.get('disableSessionTags') === 'on',
    targetRoleArn: field(form, 'targetRoleArn'),
    policy: field(form, 'policy'),
  };
}

/** TagResource's body from the add-tag form. */
export function tagFromForm(form: URLSearchParams): Record<string, unknown> {
  return { tags: { [field(form, 'key')]: field(form, 'value') } };
}
