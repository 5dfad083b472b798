/**
 * `npm run start:cloudflare`: the Worker and its Durable Object under `wrangler dev` (workerd),
 * configured from the same environment variables as `npm start`, fully offline. Prints the Go
 * server's start-up line once workerd is ready, and stops wrangler on SIGTERM/SIGINT.
 */
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { CONFIG_VARIABLES } from '../src/core/config.ts';

/** A free TCP port on `host` (wrangler has no "port 0"). */
function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, host, () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}

const host = process.env.HOST && process.env.HOST !== '0.0.0.0' ? process.env.HOST : '127.0.0.1';
const port =
  process.env.PORT && process.env.PORT !== '0' ? Number(process.env.PORT) : await freePort(host);
const args = [
  'dev',
  '--ip',
  host,
  '--port',
  String(port),
  '--inspector-port',
  String(await freePort('127.0.0.1')),
  '--show-interactive-dev-session=false',
];
for (const name of CONFIG_VARIABLES) {
  const value = process.env[name];
  if (value !== undefined && name !== 'PORT' && name !== 'HOST')
    args.push('--var', `${name}:${value}`);
}
if (process.env.WRANGLER_PERSIST_TO) args.push('--persist-to', process.env.WRANGLER_PERSIST_TO);

const child = spawn('node_modules/.bin/wrangler', args, {
  env: { ...process.env, WRANGLER_SEND_METRICS: 'false', CLOUDFLARE_CF_FETCH_ENABLED: 'false' },
  stdio: ['ignore', 'pipe', 'inherit'],
});
let announced = false;
child.stdout.on('data', (chunk: Buffer) => {
  process.stdout.write(chunk);
  if (!announced && /Ready on /.test(chunk.toString())) {
    announced = true;
    process.stdout.write(`HTTP server started on :${port}\n`);
  }
});
for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => child.kill(signal));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 0 : 1)));
