import { defineContractSuite } from './suite.ts';
import { launchNode } from './launchers.ts';

defineContractSuite({
  name: 'Node',
  capabilities: { serverHeartbeat: true, signalDrain: true, slowConsumerClose: true, closeHandshakeUnderFlood: true },
  launch: launchNode,
});
