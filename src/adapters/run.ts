/**
 * The process around a server, the same on Node and Deno: configuration from the environment, the
 * logger, the start-up line scripts wait for, and one drain on SIGTERM/SIGINT. The runtime hands
 * in its few primitives, so this file imports no runtime itself.
 */
import { ConfigError, parseConfig, type Config, type Env } from '../core/config.ts';
import type { ClusterAdmin } from '../admin/cluster.ts';
import type { HubSeams } from '../core/hub-api.ts';
import { createLogger, type Logger } from '../core/log.ts';

/** What the runner needs of a started server. */
export interface RunnableServer {
  readonly port: number;
  readonly bridge: { readonly size: number };
  /** Stops accepting and closes every socket; resolves once they are gone or the drain window ends. */
  shutdown(): Promise<void>;
}

export interface Runtime {
  /** Its name in the `server_started` log line. */
  name: string;
  /** The environment as a plain record (`process.env`, `Deno.env.toObject()`). */
  env: Env;
  /** Writes one line to standard output (the log, the start-up line). */
  writeLine(line: string): void;
  /** Writes one line to standard error. */
  errorLine(line: string): void;
  exit(code: number): never;
  onSignal(signal: 'SIGTERM' | 'SIGINT', listener: () => void): void;
  /**
   * Starts the server; `seams` is where its state lives when this process is a cluster node, and
   * `cluster` what the operator page sees of the cluster.
   */
  start(
    config: Config,
    log: Logger,
    seams: HubSeams | undefined,
    cluster: ClusterAdmin | undefined,
  ): RunnableServer | Promise<RunnableServer>;
}

/** Runs a server as `npm start` / `npm run start:deno` do. A bad configuration exits with 1. */
export async function runServer(runtime: Runtime): Promise<void> {
  let config: Config;
  let log: Logger;
  let server: RunnableServer;
  let cluster: { close(): Promise<void> } | undefined;
  try {
    config = parseConfig(runtime.env);
    log = createLogger(config.logLevel, runtime.writeLine);
    // The Redis client is loaded only by a process that is one node of a cluster.
    const node = config.cluster
      ? await (await import('../cluster/join.ts')).joinCluster(config, log)
      : undefined;
    cluster = node;
    server = await runtime.start(config, log, node?.seams, node?.admin);
  } catch (error) {
    const reason =
      error instanceof ConfigError
        ? error.message
        : `failed to start: ${error instanceof Error ? error.message : String(error)}`;
    runtime.errorLine(`aleatoria: ${reason}`);
    return runtime.exit(1);
  }
  // The Go server's start-up line, kept verbatim for scripts that wait for it.
  runtime.writeLine(`HTTP server started on :${server.port}`);
  log.info('server_started', { runtime: runtime.name, host: config.host, port: server.port });

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info('shutdown_started', { signal, sockets: server.bridge.size });
    // The drain ends on its own deadline; this is the backstop should anything hang past it.
    const backstop = setTimeout(() => runtime.exit(0), config.shutdownTimeoutMs + 1000);
    server
      .shutdown()
      .then(() => cluster?.close())
      .then(
        () => {
          clearTimeout(backstop);
          log.info('shutdown_complete', {});
          runtime.exit(0);
        },
        (error: unknown) => {
          clearTimeout(backstop);
          log.error('shutdown_failed', {
            error: error instanceof Error ? error.message : String(error),
          });
          runtime.exit(1);
        },
      );
  };
  runtime.onSignal('SIGTERM', () => stop('SIGTERM'));
  runtime.onSignal('SIGINT', () => stop('SIGINT'));
}
