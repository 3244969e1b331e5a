// `wgsl-nn serve`: the HTTP inspection server (server.ts) from the command line.
// Prints `listening on <url>` on stdout once ready. SIGTERM or SIGINT stops it gracefully: no new
// connections, requests in flight finish, the GPU is released, and the process exits 0 by itself.
// A second signal kills it at once (the handlers are one-shot).
import type { Command } from 'commander';
import { integerInRange as integer, numberInRange as number } from '../cli-common.js';
import { startServer } from './server.js';

export function registerServeCommand(program: Command): void {
  program
    .command('serve')
    .description('serve a model over HTTP: POST /inspect (image body), GET /health, GET /metrics')
    .requiredOption('--model <dir>', 'model directory')
    .option('--port <port>', 'TCP port (0: any free port)', integer('--port', 0, 65535), 8080)
    .option('--host <addr>', 'address to listen on (loopback by default; the endpoints have no authentication)', '127.0.0.1')
    .option('--max-body-mb <mb>', 'largest request body in MiB (larger: 413)', number('--max-body-mb', 0.001, 4096), 20)
    .option('--max-batch <n>', 'largest GPU batch formed from concurrent requests', integer('--max-batch', 1), 16)
    .option('--max-wait-ms <ms>', 'how long a request waits for others to share its GPU batch', number('--max-wait-ms', 0, 10_000), 2)
    .option('--threshold <p>', "binary models: defect probability at or above which the decision is 'reject' (default: the model's calibrated threshold, else 0.5)", number('--threshold', 0, 1))
    .action(async (opts) => {
      const server = await startServer({
        model: opts.model,
        port: opts.port,
        host: opts.host,
        maxBodyBytes: Math.round(opts.maxBodyMb * 2 ** 20),
        maxBatch: opts.maxBatch,
        maxWaitMs: opts.maxWaitMs,
        threshold: opts.threshold,
        log: (line) => console.error(line),
      });
      console.error(`model ${opts.model} on ${server.inspector.engine.describe()}`);
      console.log(`listening on ${server.url}`);
      const stop = (signal: NodeJS.Signals) => {
        console.error(`${signal}: shutting down (finishing requests in flight)`);
        server.close().then(
          () => console.error('stopped'),
          (e: unknown) => {
            console.error(`error while stopping: ${(e as Error)?.message ?? String(e)}`);
            process.exitCode = 1;
          },
        );
      };
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
    });
}
