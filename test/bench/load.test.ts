/**
 * The benchmark's load generator against our Node server and the raw-ws baseline, briefly: the
 * match scenario checks the pairing invariants from the clients' side (both told of each match,
 * opposite roles, each naming the other, nobody matched twice at once or with themselves), so
 * this is a protocol test as much as a check that `npm run bench` still runs. Real servers, real
 * sockets, loopback; small sizes, no timing assertions.
 */
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchNode, launchProcess } from '../contract/launchers.ts';
import type { LaunchedServer } from '../contract/harness.ts';

const LIFTED = {
  RATE_LIMIT_PER_SECOND: '1000000',
  RATE_LIMIT_BURST: '1000000',
  MATCHES_PER_MINUTE: '100000',
};

function load(server: LaunchedServer, args: string[]): Promise<Record<string, any>> {
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      'bench/load.ts',
      '--url',
      `${server.baseUrl.replace('http', 'ws')}/ws`,
      ...args,
      '--timeout',
      '20000',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  let err = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
  return new Promise((resolve, reject) => {
    child.once('exit', (code) =>
      code === 0
        ? resolve(JSON.parse(out.trim().split('\n').at(-1)!))
        : reject(new Error(`load exited ${code}: ${err}`)),
    );
  });
}

for (const [name, launch] of [
  ['ours (Node)', () => launchNode(LIFTED)],
  [
    'raw-ws baseline',
    () => launchProcess(process.execPath, ['--import', 'tsx', 'bench/baseline-server.ts'], {}),
  ],
] as const) {
  describe(`bench load generator against ${name}`, () => {
    let server: LaunchedServer;
    beforeAll(async () => {
      server = await launch();
    });
    afterAll(() => server?.stop());

    it('cycles 60 clients through available -> request -> hangup with no invariant violation', async () => {
      const result = await load(server, ['--kind', 'match', '--clients', '60', '--ms', '800']);
      expect(result.violations).toBe(0);
      expect(result.matches).toBeGreaterThan(0);
    }, 30_000);

    it('relays DMs between pairs and delivers every chat copy', async () => {
      for (const kind of ['relay', 'chat']) {
        const result = await load(server, [
          '--kind',
          kind,
          '--pairs',
          '5',
          '--window',
          '2',
          '--ms',
          '400',
        ]);
        expect(result.delivered).toBeGreaterThan(0);
      }
    }, 30_000);
  });
}
