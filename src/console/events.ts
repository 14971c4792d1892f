// The live feed over server-sent events: decisions that match the page's
// filter, first those the page missed (after its last one, or the
// Last-Event-ID a reconnecting browser sends), then each as it is decided.
// A comment every 15 s keeps proxies and port-forwards from closing an idle
// stream; the stream ends when the session does.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ConsoleDecision } from './client/decision.js';
import { matchesFilter, type DecisionFilter } from './decisions.js';
import type { DecisionFeed } from './feed.js';

const HEARTBEAT_MS = 15_000;

function eventOf(d: ConsoleDecision): string {
  return `id: ${d.seq}\nevent: decision\ndata: ${JSON.stringify(d)}\n\n`;
}

/** The open streams, so that a stopping console can end them instead of waiting on them. */
export class EventStreams {
  private readonly open = new Set<ServerResponse>();

  constructor(private readonly feed: DecisionFeed) {}

  serve(req: IncomingMessage, res: ServerResponse, filter: DecisionFilter, after: number, endsAt: number): void {
    const lastEventId = Number(req.headers['last-event-id']);
    const resumeAfter = Number.isSafeInteger(lastEventId) && lastEventId > 0 ? lastEventId : after;
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', 'x-accel-buffering': 'no' });
    res.write('retry: 2000\n\n');
    for (const d of this.feed.latest(filter, 500, resumeAfter).reverse()) res.write(eventOf(d));
    const unsubscribe = this.feed.subscribe((d) => {
      if (matchesFilter(d, filter)) res.write(eventOf(d));
    });
    const heartbeat = setInterval(() => res.write(': keep-alive\n\n'), HEARTBEAT_MS);
    const expiry = setTimeout(() => res.end(), Math.max(0, endsAt - Date.now()));
    this.open.add(res);
    res.once('close', () => {
      unsubscribe();
      clearInterval(heartbeat);
      clearTimeout(expiry);
      this.open.delete(res);
    });
  }

  endAll(): void {
    for (const res of this.open) res.end();
  }
}
