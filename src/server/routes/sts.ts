// The local issuer's STS: GetCallerIdentity in the AWS Query protocol (POST /
// with a form body `Action=GetCallerIdentity&Version=2011-06-15`, or the same
// in the query string), answered in STS's XML, so the AWS CLI and SDKs can ask
// who they are. Only credentials the local issuer minted and that have not
// expired are accepted (SigV4, signing name `sts`, session token required).
import type { LocalIssuer, LocalSession } from '../../auth/issuers/local.js';
import { verifySigV4 } from '../../lib/sigv4.js';
import type { RequestContext, Route } from '../router.js';

const STS_NAMESPACE = 'https://sts.amazonaws.com/doc/2011-06-15/';

function queryParams(ctx: RequestContext): URLSearchParams {
  const type = String(ctx.req.headers['content-type'] ?? '');
  if (ctx.req.method === 'POST' && (type === '' || type.startsWith('application/x-www-form-urlencoded'))) {
    return new URLSearchParams(ctx.body.toString('utf8'));
  }
  return ctx.query;
}

function escapeXml(text: string): string {
  return text.replace(/[<>&'"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[c]!);
}

function getCallerIdentityXml(session: Pick<LocalSession, 'arn' | 'userId' | 'accountId'>, requestId: string): string {
  return (
    `<GetCallerIdentityResponse xmlns="${STS_NAMESPACE}">\n` +
    '  <GetCallerIdentityResult>\n' +
    `    <Arn>${escapeXml(session.arn)}</Arn>\n` +
    `    <UserId>${escapeXml(session.userId)}</UserId>\n` +
    `    <Account>${escapeXml(session.accountId)}</Account>\n` +
    '  </GetCallerIdentityResult>\n' +
    '  <ResponseMetadata>\n' +
    `    <RequestId>${requestId}</RequestId>\n` +
    '  </ResponseMetadata>\n' +
    '</GetCallerIdentityResponse>\n'
  );
}

export function stsRoutes(issuer: LocalIssuer, region: string): Route[] {
  const sessions = new WeakMap<RequestContext, LocalSession>();
  const route = (method: string): Route => ({
    operation: 'GetCallerIdentity',
    method,
    pattern: /^\/$/,
    errors: 'aws-query',
    bodyLimit: 16 * 1024,
    accepts: (ctx) => queryParams(ctx).get('Action') === 'GetCallerIdentity',
    authenticate(ctx) {
      const header = ctx.req.headers['x-amz-security-token'];
      const sessionToken = Array.isArray(header) ? header[0] : header;
      const raw = ctx.req.url ?? '/';
      const q = raw.indexOf('?');
      return verifySigV4(
        { method: ctx.req.method ?? 'POST', path: q === -1 ? raw : raw.slice(0, q), query: ctx.query, headers: ctx.req.headers, body: ctx.body },
        {
          service: 'sts',
          region,
          // Only minted credentials: the session token proves the session, the secret follows from it.
          lookup(accessKeyId) {
            const session = issuer.identify(accessKeyId, sessionToken);
            sessions.set(ctx, session);
            return { accessKeyId, secretAccessKey: session.secretAccessKey, sessionToken: sessionToken! };
          },
        },
      );
    },
    async handle(ctx) {
      const session = sessions.get(ctx)!;
      return { status: 200, raw: { contentType: 'text/xml', text: getCallerIdentityXml(session, ctx.requestId) } };
    },
  });
  return [route('POST'), route('GET')];
}
