import { defineContractSuite } from './suite.ts';
import { launchNode } from './launch-node.ts';

defineContractSuite({
  name: 'Node',
  capabilities: { serverHeartbeat: true, signalDrain: true, slowConsumerClose: true },
  launch: launchNode,
});
