/**
 * The operator page's figures of a Node or Deno process, alone or one node of a cluster. It
 * watches the hub through its seams: `host` hands over the sessions (whose rooms give the rooms'
 * sizes) and, where history is kept in memory, `history` is the very store the hub would have made,
 * kept here to read its size. With `ADMIN_TOKEN` unset nothing is watched or written.
 */
import type { Config } from '../core/config.ts';
import type { HubSeams } from '../core/hub-api.ts';
import { createMemoryHistory, type MemoryHistory } from '../core/memory-history.ts';
import type { HubHost } from '../core/seams.ts';
import type { ClusterAdmin } from './cluster.ts';
import { type AdminSnapshot, roomMembers, topRooms } from './figures.ts';

export interface ProcessAdmin {
  /** The seams to build the hub with. */
  readonly seams: HubSeams | undefined;
  /** Once the hub exists: its exposition, which a cluster node then writes at every heartbeat. */
  attach(exposition: () => string): void;
  /** For `AppOptions.admin`. */
  snapshot(): AdminSnapshot | Promise<AdminSnapshot>;
}

export function createProcessAdmin(
  config: Config,
  seams: HubSeams | undefined,
  cluster: ClusterAdmin | undefined,
): ProcessAdmin {
  let host: HubHost | undefined;
  let memory: MemoryHistory | undefined;
  let exposition = () => '';
  const on = config.adminToken !== undefined;
  const watched: HubSeams | undefined = !on
    ? seams
    : {
        ...seams,
        host(hub) {
          host = hub;
          seams?.host?.(hub);
        },
        // A shared store's size is not this process's to say.
        history: seams?.history ?? ((options) => (memory = createMemoryHistory(options))),
      };

  /** This process's rooms by their members here (all of them, for a process alone). */
  const localRooms = () => topRooms(roomMembers(host?.sessions() ?? []));

  return {
    seams: watched,
    attach(hubExposition) {
      exposition = hubExposition;
      if (on) cluster?.start(hubExposition);
    },
    async snapshot() {
      const history = memory && {
        messages: memory.messages,
        conversations: memory.conversations,
        bytes: memory.bytes,
      };
      if (cluster) return { ...(await cluster.snapshot(exposition())), history };
      return { metrics: exposition(), rooms: localRooms(), history };
    },
  };
}
