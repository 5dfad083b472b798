import { defineE2ESuite } from './suite.ts';
import { launchDeno } from '../contract/launchers.ts';

defineE2ESuite({ name: 'Deno', launch: launchDeno, callOnly: true });
