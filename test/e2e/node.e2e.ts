import { defineE2ESuite } from './suite.ts';
import { launchNode } from '../contract/launchers.ts';

defineE2ESuite({ name: 'Node', launch: launchNode });
