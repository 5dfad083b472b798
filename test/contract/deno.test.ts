import { defineContractSuite } from './suite.ts';
import { launchDeno } from './launchers.ts';

defineContractSuite({
  name: 'Deno',
  capabilities: { serverHeartbeat: true, signalDrain: true, slowConsumerClose: true, closeHandshakeUnderFlood: false },
  launch: launchDeno,
});
