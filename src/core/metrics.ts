/**
 * Operator metrics in the Prometheus text exposition format (version 0.0.4), small enough to run
 * on every runtime (prom-client is Node-only): labelled counters, one histogram, and gauges read
 * at scrape time.
 */

/** Upper bounds (seconds) of the time-to-match histogram. */
export const MATCH_BUCKETS = [0.1, 0.5, 1, 2, 5, 10, 30, 60, 300] as const;

const COUNTERS = {
  aleatoria_messages_in_total:
    'Frames received, by message type ("invalid" when they did not parse).',
  aleatoria_messages_out_total: 'Messages delivered to sockets, by message type.',
  aleatoria_errors_total: 'error and error_response messages sent, by code.',
  aleatoria_closes_total: 'Connections the server closed, by reason.',
  aleatoria_matches_total: 'Random matches made.',
  aleatoria_relays_to_unknown_total:
    'Signaling or direct messages addressed to a user who is not connected.',
  aleatoria_state_failures_total:
    'Answers from shared state (users, rooms, pool elsewhere) that failed; the operation was dropped.',
  aleatoria_call_resumes_total:
    'Calls kept for a user whose socket dropped (CALL_RESUME_MS), by outcome (held, resumed, expired).',
  aleatoria_takeover_probes_total:
    'Old sockets probed for a newcomer without their token, by outcome (alive, silent, gone; unknown where the runtime cannot ping).',
} as const;

const GAUGES = {
  aleatoria_connections: 'Connected users.',
  aleatoria_rooms: 'Rooms with at least one member.',
  aleatoria_pool_size: 'Users available for a random match.',
  aleatoria_pairs: 'Matched pairs in a call.',
  aleatoria_cluster_nodes: 'Nodes of the cluster alive, as this node last counted them.',
  aleatoria_redis_up: 'Whether this node reaches Redis now (1) or not (0).',
} as const;

export type CounterName = keyof typeof COUNTERS;
export type GaugeName = keyof typeof GAUGES;
/** Gauges of a store shared between processes (a cluster's). */
export type SharedGaugeName = 'aleatoria_cluster_nodes' | 'aleatoria_redis_up';

export interface Metrics {
  inc(name: CounterName, label?: string, by?: number): void;
  /** Records one time-to-match, in seconds. */
  observeMatch(seconds: number): void;
  /** The exposition, with the gauges given (one absent is not this process's to say). */
  render(gauges: Partial<Record<GaugeName, number>>): string;
}

/** Label values are client-influenced (message types are not: they are validated first); escape anyway. */
const escapeLabel = (value: string) =>
  value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

/** The label each counter takes, if any. */
const LABELS: Partial<Record<CounterName, string>> = {
  aleatoria_messages_in_total: 'type',
  aleatoria_messages_out_total: 'type',
  aleatoria_errors_total: 'code',
  aleatoria_closes_total: 'reason',
  aleatoria_takeover_probes_total: 'outcome',
  aleatoria_call_resumes_total: 'outcome',
};

/** One labelled series' count, a cell so that counting is one lookup and an add. */
interface Cell {
  value: number;
}

export function createMetrics(): Metrics {
  // Every frame counts twice (in and out): a series is found once by its label and counted in
  // place, never looked up again to be written back.
  const counters = new Map<CounterName, Map<string, Cell>>(
    (Object.keys(COUNTERS) as CounterName[]).map((name) => [name, new Map()]),
  );
  const buckets: number[] = MATCH_BUCKETS.map(() => 0);
  let matchCount = 0;
  let matchSum = 0;

  return {
    inc(name, label = '', by = 1) {
      const series = counters.get(name)!;
      const cell = series.get(label);
      if (cell) cell.value += by;
      else series.set(label, { value: by });
    },
    observeMatch(seconds) {
      matchCount++;
      matchSum += seconds;
      for (let i = 0; i < MATCH_BUCKETS.length; i++)
        if (seconds <= MATCH_BUCKETS[i]!) buckets[i]!++;
    },
    render(gauges) {
      const lines: string[] = [];
      for (const [name, help] of Object.entries(GAUGES) as [GaugeName, string][]) {
        const value = gauges[name];
        if (value !== undefined)
          lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`, `${name} ${value}`);
      }
      for (const [name, help] of Object.entries(COUNTERS) as [CounterName, string][]) {
        lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} counter`);
        const series = counters.get(name);
        const label = LABELS[name];
        if (!label) lines.push(`${name} ${series?.get('')?.value ?? 0}`);
        else
          for (const [value, cell] of series ?? [])
            lines.push(`${name}{${label}="${escapeLabel(value)}"} ${cell.value}`);
      }
      const histogram = 'aleatoria_time_to_match_seconds';
      lines.push(
        `# HELP ${histogram} Seconds a user waited in the pool before being matched.`,
        `# TYPE ${histogram} histogram`,
      );
      for (const [i, bound] of MATCH_BUCKETS.entries()) {
        lines.push(`${histogram}_bucket{le="${bound}"} ${buckets[i]}`);
      }
      lines.push(
        `${histogram}_bucket{le="+Inf"} ${matchCount}`,
        `${histogram}_sum ${matchSum}`,
        `${histogram}_count ${matchCount}`,
      );
      return `${lines.join('\n')}\n`;
    },
  };
}
