// `npm run autotune -- [--quick] [--ops op1,op2] [--cache <file>]`: measures every variant of the
// tunable ops on this adapter per shape bucket (bench/tuner.ts), records the fastest correct one per
// op and bucket in the cache (src/kernels/tuning-cache.ts: default ~/.cache/wgsl-nn/variants.json or
// $WGSL_NN_TUNE_CACHE) and prints the table.
import { parseArgs } from 'node:util';
import { Engine } from '../src/gpu/engine.js';
import { defaultCacheFile } from '../src/kernels/tuning-cache.js';
import { autotune, TUNABLE_OPS, type VariantTiming } from './tuner.js';

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    ops: { type: 'string' },
    cache: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

if (args.help) {
  console.log(`usage: npm run autotune -- [--quick] [--ops op1,op2] [--cache <file>]
  ops (default all): ${TUNABLE_OPS.join(', ')}`);
  process.exit(0);
}

const engine = await Engine.create();
const cacheFile = args.cache ?? defaultCacheFile();
console.log(`adapter: ${engine.describe()}`);
console.log(`tuning ${args.quick ? '(quick) ' : ''}into ${cacheFile}\n`);
const rows: VariantTiming[] = [];
const t0 = Date.now();
const chosen = await autotune(engine, {
  ops: args.ops?.split(',').map((s) => s.trim()).filter(Boolean),
  cacheFile,
  quick: args.quick,
  onResult: (r) => {
    rows.push(r);
    const ms = r.ms === null ? '-' : r.ms.toFixed(3);
    console.log(`  ${r.op.padEnd(32)} ${r.bucket.padEnd(30)} ${r.variant.padEnd(18)} ${ms.padStart(10)} ms  ${r.rejected ?? (r.relErr ? `rel err ${r.relErr.toExponential(1)}` : '')}`);
  },
});

console.log(`\nop | bucket | chosen | ms | others (ms)\n--- | --- | --- | ---: | ---`);
let tunedCount = 0;
for (const [op, buckets] of Object.entries(chosen)) {
  for (const [bucket, variant] of Object.entries(buckets)) {
    tunedCount++;
    const mine = rows.find((r) => r.op === op && r.bucket === bucket && r.variant === variant);
    const others = rows
      .filter((r) => r.op === op && r.bucket === bucket && r.variant !== variant)
      .map((r) => `${r.variant} ${r.ms === null ? (r.rejected ? 'rejected' : '-') : r.ms.toFixed(3)}`)
      .join(', ');
    console.log(`${op} | ${bucket} | ${variant} | ${mine?.ms === null || mine?.ms === undefined ? '-' : mine.ms.toFixed(3)} | ${others}`);
  }
}
console.log(`\n${Object.keys(chosen).length} op(s), ${tunedCount} shape bucket(s) tuned in ${((Date.now() - t0) / 1000).toFixed(0)} s; cached in ${cacheFile}`);
engine.destroy();
