// HTTP routes of the EKS association API: decode (path, query, body) →
// AssociationService → encode. SigV4 with signing name `eks`, admin keys only.
import { createInput, listInput, parseJsonBody, toWireAssociation, toWireSummary, updateInput, validate } from '../../api/eks.js';
import type { ChangeContext } from '../../associations/audit.js';
import type { AssociationService } from '../../associations/service.js';
import type { Authenticator } from '../authenticate.js';
import type { RequestContext, Route } from '../router.js';

const CLUSTER = '(?<cluster>[^/]+)';
const ID = '(?<id>[^/]+)';
const COLLECTION = new RegExp(`^/clusters/${CLUSTER}/pod-identity-associations/?$`);
const ITEM = new RegExp(`^/clusters/${CLUSTER}/pod-identity-associations/${ID}$`);

/** A change through the API is the signing key's, in this request. */
export function apiChangeContext(ctx: RequestContext): ChangeContext {
  return { actor: { kind: 'access-key', accessKeyId: ctx.caller!.accessKeyId }, requestId: ctx.requestId };
}

export function associationRoutes(service: AssociationService, authenticate: Authenticator): Route[] {
  return [
    {
      operation: 'CreatePodIdentityAssociation',
      method: 'POST',
      pattern: COLLECTION,
      authenticate,
      async handle(ctx) {
        const input = validate(createInput, parseJsonBody(ctx.body));
        const association = await service.create(ctx.params.cluster!, input, apiChangeContext(ctx));
        return { status: 200, body: { association: toWireAssociation(association) } };
      },
    },
    {
      operation: 'ListPodIdentityAssociations',
      method: 'GET',
      pattern: COLLECTION,
      authenticate,
      async handle(ctx) {
        const input = validate(listInput, Object.fromEntries(ctx.query));
        const page = await service.list(ctx.params.cluster!, input);
        return { status: 200, body: { associations: page.associations.map(toWireSummary), ...(page.nextToken && { nextToken: page.nextToken }) } };
      },
    },
    {
      operation: 'DescribePodIdentityAssociation',
      method: 'GET',
      pattern: ITEM,
      authenticate,
      async handle(ctx) {
        const association = await service.describe(ctx.params.cluster!, ctx.params.id!);
        return { status: 200, body: { association: toWireAssociation(association) } };
      },
    },
    {
      operation: 'UpdatePodIdentityAssociation',
      method: 'POST',
      pattern: ITEM,
      authenticate,
      async handle(ctx) {
        const input = validate(updateInput, parseJsonBody(ctx.body));
        const association = await service.update(ctx.params.cluster!, ctx.params.id!, input, apiChangeContext(ctx));
        return { status: 200, body: { association: toWireAssociation(association) } };
      },
    },
    {
      operation: 'DeletePodIdentityAssociation',
      method: 'DELETE',
      pattern: ITEM,
      authenticate,
      async handle(ctx) {
        const association = await service.delete(ctx.params.cluster!, ctx.params.id!, apiChangeContext(ctx));
        return { status: 200, body: { association: toWireAssociation(association) } };
      },
    },
  ];
}
