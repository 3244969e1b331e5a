// A short probe of the GEMM cores' kernel throughput (not part of the suite; no results file):
//
//   npx tsx bench/gemm-probe.ts [--filter <substring>] [--variants a,b] [--budget-ms 600] [--rounds 1]
//
// For each case (matmul 1024^3 and 512^3, the seed CNN's conv layers and the dense layer of
// bench/cases.ts) and each variant of its op, one call compiles, then batches of calls are recorded
// back to back between syncs, so the time per call is mostly kernel time rather than the host's wait
// for the GPU. GFLOP/s are given by wall time and by CPU time (see msPerCall). Each variant gets about
// `--budget-ms` of timing (2 batches) per round, keeping the whole probe within a minute or two on
// lavapipe; slow variants are timed from a single call. The tiled variants (seconds per call on
// lavapipe) run only when named in --variants.
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import { Engine } from '../src/gpu/engine.js';
import { caseData, opCases, type KernelCase } from './kernel-cases.js';
import '../src/kernels/index.js';
import { kernels } from '../src/kernels/registry.js';
import { timeBatch } from './timing.js';

const { values: args } = parseArgs({
  options: {
    filter: { type: 'string', default: '' },
    variants: { type: 'string' },
    'budget-ms': { type: 'string', default: '600' },
    rounds: { type: 'string', default: '1' },
  },
});
const budgetMs = Number(args['budget-ms']);
const only = args.variants?.split(',');
const rounds = Number(args.rounds);

/** C [m,n] = A [m,k] B^T with B given as [n,k] (transB: both operands k-contiguous). */
function matmulTransB(m: number, n: number, k: number): KernelCase {
  return {
    op: 'matmul',
    shape: `[${m},${k}] x [${n},${k}]^T`,
    params: { m, n, k },
    flops: 2 * m * n * k,
    prepare(engine) {
      const a = engine.fromArray(caseData(m * k, 1), [m, k]);
      const b = engine.fromArray(caseData(n * k, 2), [n, k]);
      return { run: (fn) => [fn(a, b, { transB: true })], inPlace: [], dispose: () => [a, b].forEach((t) => t.dispose()) };
    },
  };
}

function probeCases(): { group: string; c: KernelCase }[] {
  const tag = (group: string, cs: KernelCase[]) => cs.map((c) => ({ group, c }));
  return [
    ...tag('matmul 1024^3', [opCases.matmul(1024, 1024, 1024)]),
    ...tag('matmul 1024^3 transB', [matmulTransB(1024, 1024, 1024)]),
    ...tag('matmul 512^3', [opCases.matmul(512, 512, 512)]),
    ...tag('matmul 512^3 transB', [matmulTransB(512, 512, 512)]),
    ...tag('seed conv1 1->32 64x64 b32', opCases.conv2d(32, 1, 32, 64, 64, 3)),
    ...tag('seed conv2 32->64 31x31 b32', opCases.conv2d(32, 32, 64, 31, 31, 3)),
    ...tag('seed conv3 64->128 14x14 b32', opCases.conv2d(32, 64, 128, 14, 14, 3)),
    ...tag('linear 3200->128 b32', opCases.linear(32, 3200, 128)),
    ...tag('dcgan convT 128->64 8->16 b32', opCases.convTranspose2d(32, 128, 64, 8, 8, 4, 2, 1)),
  ].filter(({ group, c }) => `${group} ${c.op} ${c.shape}`.toLowerCase().includes(args.filter!.toLowerCase()));
}

/**
 * Milliseconds per call: the best of two back-to-back batches sized to about budgetMs / 2 each, by the
 * wall clock and by the process's CPU time (lavapipe's threads run in this process; with the engine's
 * default 'sleep' wait the host thread adds little). On a machine shared with other work, CPU time
 * divided by the number of cores lavapipe uses estimates the unloaded wall time.
 */
async function msPerCall(engine: Engine, c: KernelCase, variant: string): Promise<{ wall: number; cpu: number }> {
  const fn = kernels.get(c.op, engine, variant);
  const prep = c.prepare(engine);
  try {
    const call = () => prep.run(fn).forEach((t) => t.dispose());
    const sync = () => engine.sync();
    call(); // compile
    await sync();
    const once = await timeBatch(call, sync, 1);
    const calls = Math.floor(budgetMs / 2 / once.wall);
    if (calls < 2) return once;
    const runs = [await timeBatch(call, sync, calls), await timeBatch(call, sync, calls)];
    return { wall: Math.min(...runs.map((r) => r.wall)), cpu: Math.min(...runs.map((r) => r.cpu)) };
  } finally {
    prep.dispose();
  }
}

const engine = await Engine.create({ subgroups: true });
/** Threads lavapipe runs kernels on (LP_NUM_THREADS, else one per core). */
const cores = Number(process.env.LP_NUM_THREADS || availableParallelism());
console.log(`adapter: ${engine.info.description}; subgroups: ${engine.device.features.has('subgroups')}`);
for (const { group, c } of probeCases()) {
  const variants = kernels.variants(c.op).filter((v) => (only ? only.includes(v) : !/tiled/.test(v))); // (tiled: seconds per call on lavapipe)
  // With --rounds > 1 the variants are timed in turn, round after round, and each keeps its best: other
  // load on the machine then affects the comparison less.
  const best = new Map(variants.map((v) => [v, { wall: Infinity, cpu: Infinity }]));
  for (let r = 0; r < rounds; r++)
    for (const v of variants) {
      const ms = await msPerCall(engine, c, v);
      const b = best.get(v)!;
      best.set(v, { wall: Math.min(b.wall, ms.wall), cpu: Math.min(b.cpu, ms.cpu) });
    }
  const gflops = (t: number) => (c.flops! / t / 1e6).toFixed(1);
  const row = variants.map((v) => {
    const ms = best.get(v)!;
    return `${v} ${gflops(ms.wall)} wall, ${gflops(ms.cpu / cores)} cpu (${ms.wall.toFixed(1)} ms)`;
  });
  console.log(`${group} | ${c.op} | ${row.join(' | ')}`);
}
engine.destroy();
