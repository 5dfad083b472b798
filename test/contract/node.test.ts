import { defineContractSuite } from './suite.ts';
import { defineHistorySuite } from './history.ts';
import { defineHostileSuite } from './hostile.ts';
import { launchNode } from './launchers.ts';

const target = {
  name: 'Node',
  capabilities: {
    serverHeartbeat: true,
    signalDrain: true,
    slowConsumerClose: true,
    closeHandshakeUnderFlood: true,
    processMemory: true,
    serverPing: true,
  },
  launch: launchNode,
};

defineContractSuite(target);
defineHostileSuite(target);
defineHistorySuite(target);
