import { gatewayOf } from '../../src/core/shard.ts';
import { launchCloudflare } from '../contract/launchers.ts';
import { defineE2ESuite } from './suite.ts';

// Four gateways, and the two callers on different ones: the call crosses objects.
const SHARDS = 4;
const callers = ['caller-a', 'caller-b'] as const;
if (gatewayOf(callers[0], SHARDS) === gatewayOf(callers[1], SHARDS))
  throw new Error('the callers must be on different gateways');

defineE2ESuite({
  name: 'Cloudflare (workerd)',
  launch: (env) => launchCloudflare({ GATEWAY_SHARDS: String(SHARDS), ...env }),
  callOnly: true,
  callers,
});
