/**
 * The whole contract, unchanged, against a cluster: one Node and one Deno process sharing a real
 * `redis-server`, each test's clients alternating between the two (see `cluster-launcher.ts`).
 */
import { launchCluster } from './cluster-launcher.ts';
import { defineHistorySuite } from './history.ts';
import { defineHostileSuite } from './hostile.ts';
import { defineContractSuite } from './suite.ts';

const target = {
  name: 'a cluster (Node + Deno + Redis)',
  capabilities: {
    serverHeartbeat: true,
    signalDrain: true,
    slowConsumerClose: true,
    // One of the two nodes is Deno (see harness.ts).
    closeHandshakeUnderFlood: false,
    processMemory: true,
    serverPing: true,
  },
  launch: (env: Record<string, string>) => launchCluster(env),
};

defineContractSuite(target);
defineHostileSuite(target);
defineHistorySuite(target);
