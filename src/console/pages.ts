// The console's pages, rendered on the server from plain data: one layout
// (skip link, header with navigation, main landmark) and one function per
// page. Forms work without script; the script (client/console.ts) adds the
// live feed and the chart's refresh. Every change form carries the session's
// CSRF token. Pure: data in, markup out.
import type { Association } from '../api/eks.js';
import { renderChart } from './chart.js';
import type { ConsoleDecision } from './client/decision.js';
import type { DecisionFilter } from './decisions.js';
import type { MinuteCount, ServiceAccountState } from './feed.js';
import { html, type Html } from './html.js';

/** Who is signed in, as a page needs it. */
export interface PageSession {
  accessKeyId: string;
  csrf: string;
}

export interface ClusterInfo {
  name: string;
  arn: string;
  issuer?: string;
  /** how its tokens are verified, in words */
  verification: string;
}

type Section = 'clusters' | 'associations' | 'decisions' | 'service-accounts';

const NAV: readonly [Section, string, string][] = [
  ['clusters', '/clusters', 'Clusters'],
  ['associations', '/associations', 'Associations'],
  ['decisions', '/decisions', 'Live decisions'],
  ['service-accounts', '/service-accounts', 'Service accounts'],
];

/** A notice after a change, or an error; errors are announced (role=alert). */
export interface Notice {
  kind: 'done' | 'error';
  text: string;
}

function notice(n: Notice | undefined): Html {
  if (!n) return html``;
  return n.kind === 'error' ? html`<div class="notice error" role="alert" id="notice">${n.text}</div>` : html`<div class="notice done" role="status" id="notice">${n.text}</div>`;
}

function csrfField(session: PageSession): Html {
  return html`<input type="hidden" name="csrf" value="${session.csrf}">`;
}

function layout(title: string, body: Html, options: { session?: PageSession; section?: Section; notice?: Notice }): string {
  const { session, section } = options;
  const nav = session
    ? html`<nav aria-label="Console"><ul>${NAV.map(([id, href, label]) => html`<li><a href="${href}"${id === section ? html` aria-current="page"` : ''}>${label}</a></li>`)}</ul></nav>
<form method="post" action="/sign-out" class="sign-out">${csrfField(session)}<span>Signed in as <strong>${session.accessKeyId}</strong></span> <button type="submit">Sign out</button></form>`
    : '';
  return `<!doctype html>\n${html`<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} · pod-identity console</title>
<link rel="stylesheet" href="/assets/console.css">
<script type="module" src="/assets/console.js"></script></head>
<body>
<a class="skip" href="#main">Skip to content</a>
<header><span class="brand">pod-identity</span>${nav}</header>
<main id="main" tabindex="-1"><h1>${title}</h1>${notice(options.notice)}${body}</main>
</body></html>`}`;
}

function when(iso: string | undefined): Html {
  if (!iso) return html`—`;
  return html`<time datetime="${iso}">${iso.replace('T', ' ').slice(0, 19)}Z</time>`;
}

function orDash(value: string | undefined): string {
  return value === undefined || value === '' ? '—' : value;
}

export function signInPage(options: { error?: string; accessKeyId?: string } = {}): string {
  return layout(
    'Sign in',
    html`<p>Sign in with an admin access key of this server (one of its <code>admins</code>).</p>
<form method="post" action="/sign-in" class="stack">
<label for="accessKeyId">Access key ID</label>
<input id="accessKeyId" name="accessKeyId" autocomplete="username" required autofocus value="${options.accessKeyId ?? ''}">
<label for="secretAccessKey">Secret access key</label>
<input id="secretAccessKey" name="secretAccessKey" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button>
</form>`,
    { ...(options.error && { notice: { kind: 'error', text: options.error } }) },
  );
}

export function clustersPage(session: PageSession, clusters: readonly ClusterInfo[], counts: Record<string, number>): string {
  const rows = clusters.map(
    (c) => html`<tr><th scope="row"><a href="/associations?cluster=${encodeURIComponent(c.name)}">${c.name}</a></th><td><code>${c.arn}</code></td><td>${orDash(c.issuer)}</td><td>${c.verification}</td><td class="num">${counts[c.name] ?? 0}</td></tr>`,
  );
  return layout(
    'Clusters',
    clusters.length
      ? html`<table><caption>The clusters this server serves</caption><thead><tr><th scope="col">Name</th><th scope="col">ARN</th><th scope="col">Issuer</th><th scope="col">Token verification</th><th scope="col">Associations</th></tr></thead><tbody>${rows}</tbody></table>`
      : html`<p>No cluster is configured (<code>clusters</code> in the server's configuration).</p>`,
    { session, section: 'clusters' },
  );
}

export interface AssociationListView {
  clusters: readonly string[];
  filter: { cluster?: string; namespace?: string; serviceAccount?: string };
  associations: readonly Association[];
  /** a further page of the one cluster shown */
  nextToken?: string;
  /** what the create form shows again after a refused create */
  createForm?: URLSearchParams;
}

function clusterSelect(id: string, clusters: readonly string[], selected: string | undefined, anyLabel?: string): Html {
  return html`<select id="${id}" name="cluster">${anyLabel ? html`<option value="">${anyLabel}</option>` : ''}${clusters.map((c) => html`<option${c === selected ? html` selected` : ''}>${c}</option>`)}</select>`;
}

function tagList(tags: Record<string, string>): Html {
  const entries = Object.entries(tags);
  return entries.length ? html`<ul class="tags">${entries.map(([k, v]) => html`<li><code>${k}=${v}</code></li>`)}</ul>` : html`—`;
}

export function associationsPage(session: PageSession, view: AssociationListView, n?: Notice): string {
  const { filter, clusters } = view;
  const form = view.createForm;
  const value = (name: string) => form?.get(name) ?? '';
  const rows = view.associations.map(
    (a) =>
      html`<tr data-association="${a.associationId}"><td>${a.clusterName}</td><td>${a.namespace}</td><td>${a.serviceAccount}</td><td><code>${a.roleArn}</code></td><td>${tagList(a.tags)}</td><td>${when(new Date(a.createdAt).toISOString())}</td><td><a href="/associations/${encodeURIComponent(a.clusterName)}/${encodeURIComponent(a.associationId)}" aria-label="Open ${a.namespace}/${a.serviceAccount}">${a.associationId}</a></td></tr>`,
  );
  const next = view.nextToken
    ? html`<p><a href="/associations?${new URLSearchParams({ ...(filter.cluster && { cluster: filter.cluster }), ...(filter.namespace && { namespace: filter.namespace }), ...(filter.serviceAccount && { serviceAccount: filter.serviceAccount }), nextToken: view.nextToken }).toString()}">Next page</a></p>`
    : '';
  return layout(
    'Associations',
    html`<form method="get" action="/associations" class="filters" role="search" aria-label="Filter associations">
<label for="f-cluster">Cluster</label>${clusterSelect('f-cluster', clusters, filter.cluster, 'All clusters')}
<label for="f-namespace">Namespace</label><input id="f-namespace" name="namespace" value="${filter.namespace ?? ''}">
<label for="f-sa">Service account</label><input id="f-sa" name="serviceAccount" value="${filter.serviceAccount ?? ''}">
<button type="submit">Filter</button>
</form>
<table id="associations"><caption>${view.associations.length} association${view.associations.length === 1 ? '' : 's'}</caption>
<thead><tr><th scope="col">Cluster</th><th scope="col">Namespace</th><th scope="col">Service account</th><th scope="col">Role</th><th scope="col">Tags</th><th scope="col">Created</th><th scope="col">ID</th></tr></thead>
<tbody>${rows}</tbody></table>${next}
<section aria-labelledby="create-heading"><h2 id="create-heading">Create an association</h2>
<form method="post" action="/associations" class="stack" id="create">${csrfField(session)}
<label for="c-cluster">Cluster</label>${clusterSelect('c-cluster', clusters, form?.get('cluster') ?? filter.cluster)}
<label for="c-namespace">Namespace</label><input id="c-namespace" name="namespace" required value="${value('namespace')}">
<label for="c-sa">Service account</label><input id="c-sa" name="serviceAccount" required value="${value('serviceAccount')}">
<label for="c-role">Role ARN</label><input id="c-role" name="roleArn" required placeholder="arn:aws:iam::111122223333:role/name" value="${value('roleArn')}">
<label for="c-target">Target role ARN (optional)</label><input id="c-target" name="targetRoleArn" value="${value('targetRoleArn')}">
<label class="check"><input type="checkbox" name="disableSessionTags"${form?.get('disableSessionTags') === 'on' ? html` checked` : ''}> Disable session tags</label>
<label for="c-policy">Session policy (JSON, optional; needs session tags disabled)</label><textarea id="c-policy" name="policy" rows="3">${value('policy')}</textarea>
<label for="c-tags">Tags (one <code>key=value</code> a line, optional)</label><textarea id="c-tags" name="tags" rows="3">${value('tags')}</textarea>
<button type="submit">Create</button>
</form></section>`,
    { session, section: 'associations', ...(n && { notice: n }) },
  );
}

export function associationPage(session: PageSession, a: Association, n?: Notice): string {
  const base = `/associations/${encodeURIComponent(a.clusterName)}/${encodeURIComponent(a.associationId)}`;
  const tags = Object.entries(a.tags).map(
    ([k, v]) =>
      html`<tr><td><code>${k}</code></td><td><code>${v}</code></td><td><form method="post" action="${base}/untag">${csrfField(session)}<input type="hidden" name="key" value="${k}"><button type="submit" aria-label="Remove tag ${k}">Remove</button></form></td></tr>`,
  );
  return layout(
    `${a.namespace}/${a.serviceAccount}`,
    html`<p><a href="/associations?cluster=${encodeURIComponent(a.clusterName)}">All associations of ${a.clusterName}</a></p>
<dl class="facts">
<dt>Cluster</dt><dd>${a.clusterName}</dd>
<dt>Association ID</dt><dd><code>${a.associationId}</code></dd>
<dt>ARN</dt><dd><code>${a.associationArn}</code></dd>
<dt>Role</dt><dd><code>${a.roleArn}</code></dd>
<dt>Target role</dt><dd>${a.targetRoleArn ? html`<code>${a.targetRoleArn}</code>` : '—'}</dd>
<dt>External ID</dt><dd>${orDash(a.externalId)}</dd>
<dt>Session tags</dt><dd>${a.disableSessionTags ? 'disabled' : 'enabled'}</dd>
<dt>Owner</dt><dd>${orDash(a.ownerArn)}</dd>
<dt>Created</dt><dd>${when(new Date(a.createdAt).toISOString())}</dd>
<dt>Modified</dt><dd>${when(new Date(a.modifiedAt).toISOString())}</dd>
</dl>
<section aria-labelledby="edit-heading"><h2 id="edit-heading">Edit</h2>
<form method="post" action="${base}/update" class="stack">${csrfField(session)}
<label for="e-role">Role ARN</label><input id="e-role" name="roleArn" required value="${a.roleArn}">
<label for="e-target">Target role ARN (blank: none)</label><input id="e-target" name="targetRoleArn" value="${a.targetRoleArn ?? ''}">
<label class="check"><input type="checkbox" name="disableSessionTags"${a.disableSessionTags ? html` checked` : ''}> Disable session tags</label>
<label for="e-policy">Session policy (JSON; blank: none)</label><textarea id="e-policy" name="policy" rows="3">${a.policy ?? ''}</textarea>
<button type="submit">Save</button>
</form></section>
<section aria-labelledby="tags-heading"><h2 id="tags-heading">Tags</h2>
${tags.length ? html`<table id="tags"><caption>${tags.length} tag${tags.length === 1 ? '' : 's'}</caption><thead><tr><th scope="col">Key</th><th scope="col">Value</th><th scope="col"><span class="visually-hidden">Action</span></th></tr></thead><tbody>${tags}</tbody></table>` : html`<p>No tags.</p>`}
<form method="post" action="${base}/tags" class="inline">${csrfField(session)}
<label for="t-key">Key</label><input id="t-key" name="key" required>
<label for="t-value">Value</label><input id="t-value" name="value">
<button type="submit">Add tag</button>
</form></section>
<section aria-labelledby="delete-heading"><h2 id="delete-heading">Delete</h2>
<form method="post" action="${base}/delete" data-confirm="Delete the association of ${a.namespace}/${a.serviceAccount}? Its pods stop getting credentials.">${csrfField(session)}
<button type="submit" class="danger">Delete association</button>
</form></section>`,
    { session, section: 'associations', ...(n && { notice: n }) },
  );
}

const OUTCOME_LABEL = { allowed: 'issued', denied: 'refused', failed: 'failed' } as const;

/** One row of the live feed; client/console.ts builds the same cells from an event. */
function decisionRow(d: ConsoleDecision): Html {
  return html`<tr data-seq="${d.seq}" data-outcome="${d.outcome}"><td>${when(d.time)}</td><td>${d.cluster}</td><td>${orDash(d.namespace)}</td><td>${orDash(d.serviceAccount)}</td><td>${orDash(d.pod)}</td><td>${orDash(d.node)}</td><td>${d.roleArn ? html`<code>${d.roleArn}</code>` : '—'}</td><td><span class="outcome ${d.outcome}">${OUTCOME_LABEL[d.outcome]}</span></td><td>${d.reason ? html`<code>${d.reason}</code>${d.errorType ? ` (${d.errorType})` : ''}` : '—'}</td><td>${d.worker === undefined ? d.replica : `${d.replica} · worker ${d.worker}`}</td></tr>`;
}

function decisionFilterForm(action: string, clusters: readonly string[], filter: DecisionFilter, withOutcome: boolean): Html {
  return html`<form method="get" action="${action}" class="filters" role="search" aria-label="Filter decisions">
<label for="d-cluster">Cluster</label>${clusterSelect('d-cluster', clusters, filter.cluster, 'All clusters')}
<label for="d-namespace">Namespace</label><input id="d-namespace" name="namespace" value="${filter.namespace ?? ''}">
<label for="d-sa">Service account</label><input id="d-sa" name="serviceAccount" value="${filter.serviceAccount ?? ''}">
${withOutcome ? html`<label for="d-outcome">Outcome</label><select id="d-outcome" name="outcome"><option value="">Any</option>${(['allowed', 'denied', 'failed'] as const).map((o) => html`<option value="${o}"${filter.outcome === o ? html` selected` : ''}>${OUTCOME_LABEL[o]}</option>`)}</select>` : ''}
<button type="submit">Filter</button>
</form>`;
}

export function chartFigure(minutes: readonly MinuteCount[]): Html {
  return html`${renderChart(minutes)}<p class="legend"><span class="key issued"></span> issued <span class="key refused"></span> refused (per minute, last 30 minutes)</p>`;
}

/** Whose decisions the feed holds: this replica's, or every replica's merged through the store. */
export interface FeedScope {
  /** the replica serving this page */
  replica: string;
  merged: boolean;
}

function scopeText(scope: FeedScope): Html {
  return scope.merged
    ? html`of every replica that serves a console (merged through PostgreSQL; this page comes from <code>${scope.replica}</code>)`
    : html`of this replica, <code>${scope.replica}</code> (each replica shows its own: reach another through <code>kubectl port-forward pod/&lt;name&gt;</code>)`;
}

export interface DecisionsView {
  scope: FeedScope;
  clusters: readonly string[];
  filter: DecisionFilter;
  decisions: readonly ConsoleDecision[];
  /** the feed resumes after this decision */
  lastSeq: number;
  minutes: readonly MinuteCount[];
}

export function decisionsPage(session: PageSession, view: DecisionsView): string {
  const query = new URLSearchParams(Object.entries(view.filter).filter(([, v]) => v !== undefined) as [string, string][]).toString();
  return layout(
    'Live decisions',
    html`<p id="scope">Every AssumeRoleForPodIdentity decision ${scopeText(view.scope)}, newest first, as it happens.</p>
${decisionFilterForm('/decisions', view.clusters, view.filter, true)}
<section aria-labelledby="chart-heading"><h2 id="chart-heading">Credentials per minute</h2>
<figure id="chart" data-src="/chart">${chartFigure(view.minutes)}</figure></section>
<section aria-labelledby="feed-heading"><h2 id="feed-heading">Decisions</h2>
<p id="live-status" role="status">Live updates need JavaScript; reload the page to see new decisions.</p>
<table id="feed" data-events="/events?${query}" data-after="${view.lastSeq}"><caption class="visually-hidden">Decisions, newest first</caption>
<thead><tr><th scope="col">Time (UTC)</th><th scope="col">Cluster</th><th scope="col">Namespace</th><th scope="col">Service account</th><th scope="col">Pod</th><th scope="col">Node</th><th scope="col">Role</th><th scope="col">Outcome</th><th scope="col">Reason</th><th scope="col">Replica</th></tr></thead>
<tbody>${view.decisions.map(decisionRow)}</tbody></table></section>`,
    { session, section: 'decisions' },
  );
}

export function serviceAccountsPage(session: PageSession, scope: FeedScope, clusters: readonly string[], filter: DecisionFilter, states: readonly ServiceAccountState[]): string {
  const rows = states.map(
    (s) =>
      html`<tr><td>${s.cluster}</td><td>${s.namespace}</td><td>${s.serviceAccount}</td><td>${when(s.lastSuccess?.time)}</td><td>${s.lastSuccess?.roleArn ? html`<code>${s.lastSuccess.roleArn}</code>` : '—'}</td><td>${when(s.lastFailure?.time)}</td><td>${s.lastFailure ? html`<code>${orDash(s.lastFailure.reason)}</code>${s.lastFailure.errorType ? ` (${s.lastFailure.errorType})` : ''}` : '—'}</td></tr>`,
  );
  return layout(
    'Service accounts',
    html`<p id="scope">Each service account's last credentials issued and last refusal ${scopeText(scope)}, since this console started.</p>
${decisionFilterForm('/service-accounts', clusters, filter, false)}
<table id="service-accounts"><caption>${states.length} service account${states.length === 1 ? '' : 's'}</caption>
<thead><tr><th scope="col">Cluster</th><th scope="col">Namespace</th><th scope="col">Service account</th><th scope="col">Last success</th><th scope="col">Role</th><th scope="col">Last failure</th><th scope="col">Reason</th></tr></thead>
<tbody>${rows}</tbody></table>`,
    { session, section: 'service-accounts' },
  );
}

/** A page for a refused request that is not a form's (a missing CSRF token, a foreign origin, throttling). */
export function problemPage(title: string, text: string): string {
  return layout(title, html`<p role="alert">${text}</p><p><a href="/">Back to the console</a></p>`, {});
}
