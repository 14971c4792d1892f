// Node binding, which EKS does not have: a node may only exchange tokens of
// pods scheduled on it. The token's node claim (Kubernetes 1.30+) and the
// request's eksNodeName must agree when both are present; a cluster with
// requireNodeBinding insists on both.
import { invalidToken, refused } from './claims.js';

export interface NodeBindingInput {
  /** the token's kubernetes.io node name claim */
  tokenNode?: string;
  /** eksNodeName from the request */
  requestNode?: string;
  required: boolean;
}

export function checkNodeBinding({ tokenNode, requestNode, required }: NodeBindingInput): void {
  if (required) {
    if (requestNode === undefined) throw refused('InvalidRequestException', 'node_name_missing', 'This cluster requires node binding: the request must name eksNodeName.');
    if (tokenNode === undefined) throw invalidToken('not_node_bound', 'token is not bound to a node (the cluster requires node binding)');
  }
  if (tokenNode !== undefined && requestNode !== undefined && tokenNode !== requestNode) {
    throw refused('AccessDeniedException', 'node_mismatch', `The token's pod runs on another node than ${requestNode}.`, 400);
  }
}
