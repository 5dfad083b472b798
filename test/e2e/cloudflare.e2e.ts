import { defineE2ESuite } from './suite.ts';
import { launchCloudflare } from '../contract/launchers.ts';

defineE2ESuite({ name: 'Cloudflare (workerd)', launch: launchCloudflare, callOnly: true });
