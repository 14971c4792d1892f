// The shape of one EKS Auth decision as the console shows it: built on the
// server (decisions.ts), rendered there (pages.ts) and sent to the page's
// script as a live-feed event (console.ts). Types only, so the script's build
// and the server's share it without any code crossing over.

export type Outcome = 'allowed' | 'denied' | 'failed';

export interface ConsoleDecision {
  /** increasing in the process that serves the console: the live feed resumes after the last one a page has */
  seq: number;
  /** ISO 8601 */
  time: string;
  cluster: string;
  namespace?: string;
  serviceAccount?: string;
  pod?: string;
  node?: string;
  roleArn?: string;
  outcome: Outcome;
  /** the wire error name when refused */
  errorType?: string;
  /** which check refused it (auth/reasons.ts) */
  reason?: string;
  requestId: string;
  /** the server replica that decided: its host name (a pod's name in Kubernetes) */
  replica: string;
  /** the API worker of that replica that decided (when it runs `workers` above 1) */
  worker?: number;
}
