// The benchmark suite: `npm run bench -- [--filter <substring>] [--quick] [--out <file.json>] [--no-tfjs]
//                                       [--no-tuned] [--no-subgroups] [--variants a,b]`
//
// For every kernel case (bench/cases.ts) and every registered variant of its op, it compiles (one
// warm-up call), checks the output against the first working variant's, then times the op with the
// `benchmark` package (deferred tests that end with `await engine.sync()`). The TensorFlow.js WebGPU
// backend runs the same conv / matmul / conv-transpose cases and the seed CNN's training step and
// inference on the same adapter (bench/tfjs.ts). Results: a table on stdout and
// bench/results/<adapter>.json + .md (see bench/README.md).
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import Benchmark from 'benchmark';
import { Engine } from '../src/gpu/engine.js';
import { loadTuned, outputsError, runOnce, TUNE_TOLERANCE } from '../src/kernels/autotune.js';
import { adapterKey, kernels } from '../src/kernels/registry.js';
import { endToEndCases, kernelCases, type BenchKernelCase } from './cases.js';
import { initTfjs, type TfjsBench } from './tfjs.js';

const { values: args } = parseArgs({
  options: {
    filter: { type: 'string', default: '' },
    quick: { type: 'boolean', default: false },
    out: { type: 'string' },
    'no-tfjs': { type: 'boolean', default: false },
    'no-tuned': { type: 'boolean', default: false },
    'no-subgroups': { type: 'boolean', default: false },
    variants: { type: 'string' },
    note: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

if (args.help) {
  console.log(`usage: npm run bench -- [options]
  --filter <s>   only cases whose group, op or shape contains <s> (case-insensitive)
  --quick        shorter timing (about 1 minute on lavapipe instead of about 5)
  --out <file>   results JSON (a .md table is written beside it); default bench/results/<adapter>.json
                 (<adapter>.quick.json with --quick, <adapter>.partial.json with --filter or --variants)
  --no-tfjs      skip the TensorFlow.js WebGPU side-by-side
  --no-tuned     ignore the autotune cache (default: apply it, as an application would, before end-to-end cases)
  --no-subgroups do not request the 'subgroups' device feature (the engine requests it when offered)
  --variants <a,b>  only these variant names (the first one timed is the reference for the error column)
  --note <text>  a remark stored in the results (e.g. other load on the machine)`);
  process.exit(0);
}

/** Timing limits per measured item (seconds of sampling after the warm-up, minimum samples). */
const LIMITS = args.quick ? { maxTime: 0.25, minSamples: 3 } : { maxTime: 1, minSamples: 5 };
/** Items whose single call takes longer than this (ms) get fewer samples. */
const LONG_CALL_MS = args.quick ? 400 : 1000;
const LONG_CALL_SAMPLES = args.quick ? 2 : 3;
/**
 * A kernel variant whose warm call takes longer than max(floorMs, factor x the best variant so far) is
 * timed by that single call only (e.g. shared-memory kernels on lavapipe, seconds per call), to keep
 * the suite's run time bounded; it is marked "timed once".
 */
const SLOW_VARIANT = args.quick ? { floorMs: 250, factor: 4 } : { floorMs: 1000, factor: 10 };

interface Timing {
  medianMs: number;
  meanMs: number;
  /** Relative margin of error of the mean, percent (from benchmark.js). */
  rme: number;
  samples: number;
}

interface VariantResult extends Partial<Timing> {
  variant: string;
  /** Set when the variant was timed by one call only (see SLOW_VARIANT). */
  note?: string;
  gflops?: number;
  gbps?: number;
  /** Relative error against the reference (first working) variant. */
  relErr?: number;
  error?: string;
}

interface KernelResult {
  group: string;
  op: string;
  shape: string;
  flops?: number;
  bytes?: number;
  /** The variant wgsl-nn would run on this adapter (tuned, else preferred). */
  chosen: string;
  variants: VariantResult[];
  tfjs?: VariantResult;
}

interface EndToEndResult {
  name: string;
  ours?: Timing & { imagesPerSec: number; dispatchesPerStep: number };
  oursError?: string;
  tfjs?: Timing & { imagesPerSec: number };
  tfjsError?: string;
}

/**
 * Times `step` (which must resolve when the GPU is done) with benchmark.js; returns per-call statistics.
 * `estimateMs` (one warm call) lowers the minimum sample count for long calls.
 */
function measure(name: string, step: () => Promise<void>, estimateMs = 0): Promise<Timing> {
  const minSamples = estimateMs > LONG_CALL_MS ? Math.min(LIMITS.minSamples, LONG_CALL_SAMPLES) : LIMITS.minSamples;
  return new Promise((resolve, reject) => {
    let failure: unknown;
    const bench: Benchmark = new Benchmark(name, {
      defer: true,
      delay: 0,
      initCount: 1,
      maxTime: LIMITS.maxTime,
      minSamples,
      fn(deferred: Benchmark.Deferred) {
        step().then(
          () => deferred.resolve(),
          (e) => {
            failure = e;
            bench.abort();
            deferred.resolve();
          },
        );
      },
    });
    let settled = false;
    const done = () => {
      if (settled) return;
      settled = true;
      if (failure !== undefined || bench.error) return reject(failure ?? bench.error);
      const sample = bench.stats.sample.map((s) => s * 1000);
      if (!sample.length) return reject(new Error('no samples'));
      resolve({ medianMs: median(sample), meanMs: bench.stats.mean * 1000, rme: bench.stats.rme, samples: sample.length });
    };
    bench.on('complete', done);
    bench.on('abort', done);
    bench.on('error', done);
    bench.run({ async: true });
  });
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const firstLine = (e: unknown) => String((e as Error)?.message ?? e).split('\n')[0];
const fmt = (x: number | undefined, digits = 2) => (x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(digits));
const rate = (c: { flops?: number; bytes?: number }, ms: number) =>
  c.flops ? { gflops: c.flops / ms / 1e6 } : c.bytes ? { gbps: c.bytes / ms / 1e6 } : {};
const rateText = (r: VariantResult) => (r.gflops !== undefined ? `${fmt(r.gflops, 1)} GFLOP/s` : r.gbps !== undefined ? `${fmt(r.gbps, 2)} GB/s` : '');

function matches(c: { group: string; op: string; shape: string }, filter: string): boolean {
  return !filter || `${c.group} ${c.op} ${c.shape}`.toLowerCase().includes(filter.toLowerCase());
}

// ------------------------------------------------------------------------------------ kernel cases

async function runKernelCase(engine: Engine, c: BenchKernelCase, tf: TfjsBench | undefined): Promise<KernelResult> {
  const result: KernelResult = { group: c.group, op: c.op, shape: c.shape, flops: c.flops, bytes: c.bytes, chosen: kernels.chosen(c.op, engine), variants: [] };
  let ref: ArrayLike<number>[] | undefined;
  const only = args.variants?.split(',').map((v) => v.trim());
  for (const variant of kernels.variants(c.op)) {
    if (only && !only.includes(variant)) continue;
    const r: VariantResult = { variant };
    result.variants.push(r);
    try {
      // Warm-up (compiles the pipelines) and output check on fresh inputs.
      const out = await runOnce(engine, c, variant);
      r.relErr = ref ? outputsError(out, ref) : 0;
      ref ??= out;
      const fn = kernels.get(c.op, engine, variant);
      const prep = c.prepare(engine);
      try {
        const step = async () => {
          prep.run(fn).forEach((t) => t.dispose());
          await engine.sync();
        };
        const t0 = performance.now();
        await step();
        const once = performance.now() - t0;
        const bestSoFar = Math.min(...result.variants.filter((v) => v.medianMs !== undefined && !v.error).map((v) => v.medianMs!));
        if (once > Math.max(SLOW_VARIANT.floorMs, SLOW_VARIANT.factor * bestSoFar)) {
          Object.assign(r, { medianMs: once, meanMs: once, rme: 0, samples: 1, note: 'timed once (slow)' });
        } else {
          Object.assign(r, await measure(`${c.group} ${c.op} ${variant}`, step, once));
        }
      } finally {
        prep.dispose();
      }
      Object.assign(r, rate(c, r.medianMs!));
    } catch (e) {
      r.error = firstLine(e);
      await engine.sync().catch(() => undefined);
    }
    const flag = r.error ? `FAILED: ${r.error}` : r.relErr! > TUNE_TOLERANCE ? `MISMATCH rel err ${r.relErr!.toExponential(2)}` : r.note ?? '';
    console.log(
      `  ${c.op.padEnd(30)} ${variant.padEnd(18)} ${fmt(r.medianMs, 3).padStart(10)} ms  ${rateText(r).padStart(15)}  ${r.error ? '' : `err ${(r.relErr ?? 0).toExponential(1)}`} ${flag}`,
    );
  }
  engine.trim();
  if (tf && c.tfjs) {
    const r: VariantResult = { variant: 'tfjs-webgpu' };
    result.tfjs = r;
    let k: ReturnType<TfjsBench['kernel']>;
    try {
      k = tf.kernel(c);
      if (k) {
        const out = await k.output(); // warm-up, and the same values as ours?
        if (ref) r.relErr = outputsError([out], [ref[0]]);
        const t0 = performance.now();
        await k.step();
        Object.assign(r, await measure(`${c.group} ${c.op} tfjs`, () => k!.step(), performance.now() - t0));
        Object.assign(r, rate(c, r.medianMs!));
      }
    } catch (e) {
      r.error = firstLine(e);
    } finally {
      k?.dispose();
    }
    const flag = r.error ? `FAILED: ${r.error}` : r.relErr !== undefined && r.relErr > TUNE_TOLERANCE ? `MISMATCH rel err ${r.relErr.toExponential(2)}` : '';
    console.log(
      `  ${c.op.padEnd(30)} ${'[tfjs-webgpu]'.padEnd(18)} ${fmt(r.medianMs, 3).padStart(10)} ms  ${rateText(r).padStart(15)}  ${r.relErr !== undefined ? `err ${r.relErr.toExponential(1)}` : ''} ${flag}`,
    );
  }
  return result;
}

// ------------------------------------------------------------------------------------ main

async function main(): Promise<void> {
  const t0 = Date.now();
  const engine = await Engine.create({ subgroups: !args['no-subgroups'] });
  const tuned = args['no-tuned'] ? {} : loadTuned(engine);
  console.log(`adapter: ${engine.describe()}${engine.device.features.has('subgroups') ? ' [subgroups]' : ''}`);
  console.log(`node ${process.version}, ${cpus().length} CPU(s); ${args.quick ? 'quick' : 'full'} timing (maxTime ${LIMITS.maxTime}s, >= ${LIMITS.minSamples} samples)`);
  if (Object.keys(tuned).length) console.log(`autotuned choices applied: ${Object.entries(tuned).map(([o, v]) => `${o}=${v}`).join(', ')}`);

  let tf: TfjsBench | undefined;
  let tfStatus: { status: 'ok' | 'unavailable' | 'disabled'; reason?: string; version?: string; adapter?: string; waitMethod?: string };
  if (args['no-tfjs']) tfStatus = { status: 'disabled' };
  else {
    const r = await initTfjs();
    if (r.ok) {
      tf = r.bench;
      tfStatus = { status: 'ok', version: tf.version, adapter: tf.adapter, waitMethod: tf.waitMethod };
      console.log(`tfjs ${tf.version} WebGPU backend ready (${tf.adapter}); waits with ${tf.waitMethod}`);
    } else {
      tfStatus = { status: 'unavailable', reason: r.reason };
      console.log(`tfjs side-by-side skipped: ${r.reason}`);
    }
  }

  const kernelResults: KernelResult[] = [];
  let lastGroup = '';
  for (const c of kernelCases()) {
    if (!matches(c, args.filter!)) continue;
    if (c.group !== lastGroup) console.log(`\n${c.group}: ${c.shape}`);
    lastGroup = c.group;
    kernelResults.push(await runKernelCase(engine, c, tf));
  }

  const e2eResults: EndToEndResult[] = [];
  const used = Object.fromEntries(kernels.opNames().filter((op) => kernels.variants(op).length > 1).map((op) => [op, kernels.chosen(op, engine)]));
  for (const c of endToEndCases()) {
    if (!matches({ group: c.name, op: 'e2e', shape: '' }, args.filter!)) continue;
    console.log(`\n${c.name}`);
    const r: EndToEndResult = { name: c.name };
    e2eResults.push(r);
    try {
      const s = c.setup(engine);
      try {
        await s.step(); // compile (and create the optimizer state)
        const d0 = engine.dispatchCount;
        const t0 = performance.now();
        await s.step();
        const once = performance.now() - t0;
        const dispatches = engine.dispatchCount - d0;
        const t = await measure(c.name, () => s.step(), once);
        r.ours = { ...t, imagesPerSec: (c.images * 1000) / t.medianMs, dispatchesPerStep: dispatches };
      } finally {
        s.dispose();
      }
      console.log(`  wgsl-nn       ${fmt(r.ours.medianMs, 1).padStart(9)} ms/step  ${fmt(r.ours.imagesPerSec, 1).padStart(8)} images/s  (${r.ours.dispatchesPerStep} dispatches/step)`);
    } catch (e) {
      r.oursError = firstLine(e);
      console.log(`  wgsl-nn FAILED: ${r.oursError}`);
    }
    engine.trim();
    if (tf) {
      let s: ReturnType<TfjsBench['endToEnd']>;
      try {
        s = tf.endToEnd(c.tfjs);
        if (s) {
          await s.step(); // compile (and create the optimizer state)
          const t0 = performance.now();
          await s.step();
          const t = await measure(`${c.name} tfjs`, () => s!.step(), performance.now() - t0);
          r.tfjs = { ...t, imagesPerSec: (c.images * 1000) / t.medianMs };
          console.log(`  tfjs-webgpu   ${fmt(r.tfjs.medianMs, 1).padStart(9)} ms/step  ${fmt(r.tfjs.imagesPerSec, 1).padStart(8)} images/s`);
        }
      } catch (e) {
        r.tfjsError = firstLine(e);
        console.log(`  tfjs-webgpu FAILED: ${r.tfjsError}`);
      } finally {
        s?.dispose();
      }
    }
  }

  // ---------------------------------------------------------------- results
  const info = engine.info;
  const slug = adapterSlug(engine);
  // Partial runs do not overwrite the adapter's full results file unless --out says so.
  const suffix = args.filter || args.variants ? '.partial' : args.quick ? '.quick' : '';
  const outFile = args.out ?? join(import.meta.dirname, 'results', `${slug}${suffix}.json`);
  const results = {
    adapter: { ...info, describe: engine.describe(), key: adapterKey(engine), subgroups: engine.device.features.has('subgroups') },
    date: new Date().toISOString(),
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model,
    options: { quick: args.quick, filter: args.filter || undefined, variants: args.variants, tuned: !args['no-tuned'], subgroups: !args['no-subgroups'], ...LIMITS },
    tunedChoices: tuned,
    endToEndVariants: used,
    tfjs: tfStatus,
    kernels: kernelResults,
    endToEnd: e2eResults,
    wallSeconds: (Date.now() - t0) / 1000,
    note: args.note,
  };
  mkdirSync(dirname(outFile), { recursive: true });
  writeFileSync(outFile, `${JSON.stringify(results, null, 2)}\n`);
  const md = markdown(results, kernelResults, e2eResults);
  const mdFile = outFile.replace(/\.json$/i, '') + '.md';
  writeFileSync(mdFile, md);
  console.log(`\n${sideBySide(kernelResults, e2eResults, !!tf)}`);
  console.log(`\nwrote ${outFile} and ${mdFile} (${results.wallSeconds.toFixed(0)} s)`);
  engine.destroy();
}

function adapterSlug(engine: Engine): string {
  const i = engine.info;
  const name = /llvmpipe|lavapipe/i.test(`${i.description} ${i.device}`) ? 'lavapipe' : i.device || i.description || i.architecture;
  return [i.vendor, name, i.backend]
    .filter(Boolean)
    .join('-')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-|-$/g, '')
    .slice(0, 60) || 'unknown-adapter';
}

/** Best correct variant of a kernel result. */
function best(k: KernelResult): VariantResult | undefined {
  return k.variants
    .filter((v) => v.medianMs !== undefined && !v.error && (v.relErr ?? 0) <= TUNE_TOLERANCE)
    .sort((a, b) => a.medianMs! - b.medianMs!)[0];
}

function sideBySide(kr: KernelResult[], er: EndToEndResult[], withTf: boolean): string {
  const rows = ['case | op | best wgsl-nn variant | ms | tfjs-webgpu ms | tfjs / wgsl-nn', '--- | --- | --- | ---: | ---: | ---:'];
  for (const k of kr) {
    const b = best(k);
    const t = k.tfjs;
    rows.push(
      `${k.group} | ${k.op} | ${b?.variant ?? '-'} | ${fmt(b?.medianMs, 3)} | ${withTf && t ? (t.error ? 'failed' : fmt(t.medianMs, 3)) : ''} | ${
        b && t?.medianMs ? `${fmt(t.medianMs / b.medianMs!, 2)}x` : ''
      }`,
    );
  }
  for (const e of er)
    rows.push(
      `${e.name} | end-to-end | - | ${fmt(e.ours?.medianMs, 1)} (${fmt(e.ours?.imagesPerSec, 1)} img/s) | ${
        e.tfjs ? `${fmt(e.tfjs.medianMs, 1)} (${fmt(e.tfjs.imagesPerSec, 1)} img/s)` : e.tfjsError ? 'failed' : ''
      } | ${e.ours && e.tfjs ? `${fmt(e.tfjs.medianMs / e.ours.medianMs, 2)}x` : ''}`,
    );
  return rows.join('\n');
}

function markdown(
  r: { adapter: { describe: string }; date: string; node: string; platform: string; cpus: number; cpuModel?: string; options: object; tfjs: { status: string; reason?: string; version?: string; waitMethod?: string }; tunedChoices: Record<string, string>; note?: string },
  kr: KernelResult[],
  er: EndToEndResult[],
): string {
  const lines = [
    `# wgsl-nn benchmark: ${r.adapter.describe}`,
    '',
    `${r.date}, node ${r.node}, ${r.platform}, ${r.cpus} CPU(s) (${r.cpuModel ?? '?'}). Options: \`${JSON.stringify(r.options)}\`.`,
    `TensorFlow.js: ${r.tfjs.status === 'ok' ? `tfjs-core/tfjs-backend-webgpu ${r.tfjs.version}, waits with ${r.tfjs.waitMethod}; NHWC activations, HWIO filters` : r.tfjs.status === 'disabled' ? 'not run (--no-tfjs)' : `unavailable: ${r.tfjs.reason}`}.`,
    `Autotuned choices applied: ${Object.keys(r.tunedChoices).length ? Object.entries(r.tunedChoices).map(([o, v]) => `${o}=${v}`).join(', ') : 'none'}.`,
    ...(r.note ? ['', `**Note:** ${r.note}`] : []),
    '',
    'Median milliseconds per call (benchmark.js samples; each call ends when the GPU is done). GFLOP/s for compute kernels',
    '(conv 2·N·O·Ho·Wo·C·kH·kW, matmul 2·M·N·K), GB/s of nominal traffic for memory-bound ones. "rel err" is against the first',
    'working variant (for tfjs: against wgsl-nn\'s first variant, after converting layouts); * marks the variant wgsl-nn runs by default here.',
    '',
    '## Side by side',
    '',
    sideBySide(kr, er, r.tfjs.status === 'ok'),
    '',
    '## Every variant',
    '',
    'case | op | variant | median ms | throughput | rel err | note',
    '--- | --- | --- | ---: | ---: | ---: | ---',
  ];
  for (const k of kr) {
    for (const v of [...k.variants, ...(k.tfjs ? [k.tfjs] : [])]) {
      const note = v.error ? `failed: ${v.error}` : v.relErr !== undefined && v.relErr > TUNE_TOLERANCE ? 'MISMATCH' : (v.note ?? '');
      lines.push(
        `${k.group} | ${k.op} | ${v.variant}${v.variant === k.chosen ? ' *' : ''} | ${fmt(v.medianMs, 3)} | ${rateText(v)} | ${
          v.relErr === undefined ? '-' : v.relErr.toExponential(1)
        } | ${note}`,
      );
    }
  }
  lines.push('', '## End to end (seed CNN, batch 32, 64x64, 6 classes)', '', 'case | framework | ms/step | images/s | dispatches/step', '--- | --- | ---: | ---: | ---:');
  for (const e of er) {
    lines.push(`${e.name} | wgsl-nn | ${fmt(e.ours?.medianMs, 1)} | ${fmt(e.ours?.imagesPerSec, 1)} | ${e.ours?.dispatchesPerStep ?? (e.oursError ? `failed: ${e.oursError}` : '-')}`);
    if (e.tfjs || e.tfjsError) lines.push(`${e.name} | tfjs-webgpu | ${fmt(e.tfjs?.medianMs, 1)} | ${fmt(e.tfjs?.imagesPerSec, 1)} | ${e.tfjsError ? `failed: ${e.tfjsError}` : '-'}`);
  }
  return `${lines.join('\n')}\n`;
}

await main();
