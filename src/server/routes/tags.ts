// The tag operations of the EKS API on association ARNs (DESIGN §3.1), the
// way Terraform's AWS provider and `aws eks tag-resource` change tags after
// create: TagResource, UntagResource, ListTagsForResource on
// /tags/{resourceArn} (the ARN URL-encoded). Admin keys, SigV4 `eks`. Bad
// input is BadRequestException and an ARN we do not hold NotFoundException,
// as EKS's model lists for them.
import { parseJsonBody, tagResourceInput, untagResourceInput, validate } from '../../api/eks.js';
import type { AssociationService } from '../../associations/service.js';
import type { Authenticator } from '../authenticate.js';
import type { Route } from '../router.js';
import { apiChangeContext } from './associations.js';

const RESOURCE = /^\/tags\/(?<arn>.+)$/;

export function tagRoutes(service: AssociationService, authenticate: Authenticator): Route[] {
  return [
    {
      operation: 'TagResource',
      method: 'POST',
      pattern: RESOURCE,
      authenticate,
      async handle(ctx) {
        const { tags } = validate(tagResourceInput, parseJsonBody(ctx.body), 'BadRequestException');
        await service.tagResource(ctx.params.arn!, tags, apiChangeContext(ctx));
        return { status: 200, body: {} };
      },
    },
    {
      operation: 'UntagResource',
      method: 'DELETE',
      pattern: RESOURCE,
      authenticate,
      async handle(ctx) {
        const { tagKeys } = validate(untagResourceInput, { tagKeys: ctx.query.getAll('tagKeys') }, 'BadRequestException');
        await service.untagResource(ctx.params.arn!, tagKeys, apiChangeContext(ctx));
        return { status: 200, body: {} };
      },
    },
    {
      operation: 'ListTagsForResource',
      method: 'GET',
      pattern: RESOURCE,
      authenticate,
      async handle(ctx) {
        return { status: 200, body: { tags: await service.listTagsForResource(ctx.params.arn!) } };
      },
    },
  ];
}
