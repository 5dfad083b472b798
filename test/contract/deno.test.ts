import { defineContractSuite } from './suite.ts';
import { defineHistorySuite } from './history.ts';
import { defineHostileSuite } from './hostile.ts';
import { launchDeno } from './launchers.ts';

const target = {
  name: 'Deno',
  capabilities: {
    serverHeartbeat: true,
    signalDrain: true,
    slowConsumerClose: true,
    closeHandshakeUnderFlood: false,
    processMemory: true,
    serverPing: true,
  },
  launch: launchDeno,
};

defineContractSuite(target);
defineHostileSuite(target);
defineHistorySuite(target);
