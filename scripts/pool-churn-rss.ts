// Probe: does a capped buffer pool that keeps destroying and remaking buffers of varying sizes grow host RSS?
// On a software adapter (lavapipe) GPU buffers are host memory, so RSS moves with them; this isolates that
// from any model: rounds of four tensors of random sizes (0.1-8 MiB), written, read once and released, under
// an engine with maxPooledBytes. Prints RSS, bytes allocated and bytes in use every 300 rounds.
//
//   npx tsx scripts/pool-churn-rss.ts [cap MiB, default 64] [rounds, default 3000]
//   MALLOC_MMAP_THRESHOLD_=131072 npx tsx scripts/pool-churn-rss.ts 64 1500   # glibc: large blocks always mmap'd
import { Engine } from '../src/gpu/engine.js';
import { Rng } from '../src/util/rng.js';

const cap = Number(process.argv[2] ?? 64) * 2 ** 20;
const rounds = Number(process.argv[3] ?? 3000);
if (!(cap > 0) || !Number.isInteger(rounds) || rounds < 1) throw new Error('usage: pool-churn-rss.ts [cap MiB > 0] [rounds >= 1]');
const engine = await Engine.create({ maxPooledBytes: cap });
const rng = new Rng(3);
const mib = (b: number) => (b / 2 ** 20).toFixed(1);
try {
  for (let i = 0; i <= rounds; i++) {
    const live = [];
    for (let j = 0; j < 4; j++) {
      const n = Math.floor(25_000 + rng.next() * 2_000_000);
      live.push(engine.fromArray(new Float32Array(n).fill(1), [n]));
    }
    await live[0].toArray();
    for (const t of live) t.dispose();
    if (i % 300 === 0) {
      await engine.sync();
      const m = engine.memory();
      console.log(`round ${i}\tRSS ${mib(process.memoryUsage().rss)} MiB\tallocated ${mib(m.bytesAllocated)} MiB\tin use ${mib(m.bytesInUse)} MiB`);
    }
  }
} finally {
  engine.destroy();
}
