// The benchmark suite: `npm run bench -- [--vs tfjs] [--vs torch] [--filter <substring>] [--quick]
//                                       [--time <s>] [--samples <n>] [--out <file.json>] ...` (see --help)
//
// For every kernel case (bench/cases.ts) and every registered variant of its op, it compiles (one
// warm-up call), checks the output against the first working variant's, then times the op with the
// `benchmark` package (deferred tests that end with `await engine.sync()`). The peers run the same
// cases in the same invocation: TensorFlow.js's WebGPU backend on the same adapter (bench/tfjs.ts) and
// PyTorch on the CPU (bench/torch.ts + bench/torch_peer.py, one Python process for all its cases, run
// before the GPU work so the two never share the cores). End-to-end cases (training steps, GAN
// iterations, the headline GEMM / convolution through the public API with read-back) are timed on
// all three. Results: a table on stdout and bench/results/<adapter>.json + .md (see bench/README.md).
import { readFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { Engine } from '../src/gpu/engine.js';
import { loadTuned } from '../src/kernels/tuning-cache.js';
import { caseArgs, outputsError, runOnce, TUNE_TOLERANCE } from './tuner.js';
import { adapterKey, kernels } from '../src/kernels/registry.js';
import { endToEndCases, kernelCases, type BenchKernelCase, type EndToEndCase } from './cases.js';
import { initTfjs, type TfjsBench } from './tfjs.js';
import { findTorchPython, runTorch, sampledRelErr, torchKernelEntry, type TorchInfo, type TorchJob, type TorchRun } from './torch.js';
import { adapterSlug, firstLine, measure, timedOnce, withMainThreadCpu, type SamplingLimits, type Timing } from './timing.js';

const PEERS = ['tfjs', 'torch'] as const;
type Peer = (typeof PEERS)[number];

const { values: args } = parseArgs({
  options: {
    vs: { type: 'string', multiple: true },
    filter: { type: 'string', default: '' },
    quick: { type: 'boolean', default: false },
    time: { type: 'string' },
    samples: { type: 'string' },
    out: { type: 'string' },
    'no-tfjs': { type: 'boolean', default: false },
    'no-torch': { type: 'boolean', default: false },
    python: { type: 'string' },
    'torch-threads': { type: 'string', default: '2' },
    'no-tuned': { type: 'boolean', default: false },
    'no-subgroups': { type: 'boolean', default: false },
    variants: { type: 'string' },
    note: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

if (args.help) {
  console.log(`usage: npm run bench -- [options]
  --vs <peer>    a peer column: tfjs (TensorFlow.js WebGPU, same adapter) or torch (PyTorch CPU); repeat or
                 comma-separate for both, 'none' for neither. Default: both, each when available
  --filter <s>   only cases whose group, op or shape contains <s> (case-insensitive)
  --quick        shorter timing (about 1-2 minutes of wgsl-nn kernels on lavapipe instead of about 5)
  --time <s>     seconds of sampling per measured item (default 1, quick 0.25); e.g. 0 for a smoke test
  --samples <n>  minimum samples per measured item (default 5, quick 3; long calls at most 3 / 2)
  --out <file>   results JSON (a .md table is written beside it); default bench/results/<adapter>.json
                 (<adapter>.quick.json with --quick or --time/--samples, <adapter>.partial.json with --filter or --variants)
  --no-tfjs, --no-torch   drop that peer (same as leaving it out of --vs)
  --python <exe> the Python for the torch column (default: $WGSL_NN_BENCH_PYTHON, python3, /usr/bin/python3: the first that imports torch)
  --torch-threads <n>  torch intra-op threads (default 2, the cores lavapipe gets on the reference machine)
  --no-tuned     ignore the autotune cache (default: apply it, as an application would, before end-to-end cases)
  --no-subgroups do not request the 'subgroups' device feature (the engine requests it when offered)
  --variants <a,b>  only these variant names (the first one timed is the reference for the error column)
  --note <text>  a remark stored in the results (e.g. other load on the machine)`);
  process.exit(0);
}

function selectedPeers(): Set<Peer> {
  const asked = (args.vs ?? []).flatMap((v) => v.split(',')).map((v) => v.trim().toLowerCase()).filter(Boolean);
  for (const p of asked)
    if (p !== 'none' && !(PEERS as readonly string[]).includes(p)) {
      console.error(`--vs ${p}: unknown peer (tfjs, torch or none)`);
      process.exit(2);
    }
  const peers = new Set<Peer>(asked.length ? (asked.filter((p) => p !== 'none') as Peer[]) : PEERS);
  if (args['no-tfjs']) peers.delete('tfjs');
  if (args['no-torch']) peers.delete('torch');
  return peers;
}

function numberArg(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const x = Number(value);
  if (!Number.isFinite(x) || x < 0) {
    console.error(`--${name} ${value}: expected a non-negative number`);
    process.exit(2);
  }
  return x;
}

const peers = selectedPeers();
const customTiming = args.time !== undefined || args.samples !== undefined;
/** Sampling per measured item (all three frameworks use the same limits). */
const LIMITS: SamplingLimits = {
  ...(args.quick ? { maxTime: 0.25, minSamples: 3, longCallMs: 400, longCallSamples: 2 } : { maxTime: 1, minSamples: 5, longCallMs: 1000, longCallSamples: 3 }),
};
LIMITS.maxTime = numberArg('time', args.time) ?? LIMITS.maxTime;
LIMITS.minSamples = Math.round(numberArg('samples', args.samples) ?? LIMITS.minSamples);
LIMITS.longCallSamples = Math.min(LIMITS.longCallSamples, LIMITS.minSamples);
const TORCH_THREADS = Math.max(1, Math.round(numberArg('torch-threads', args['torch-threads']) ?? 2));
/**
 * A kernel variant whose warm call takes longer than max(floorMs, factor x the best variant so far) is
 * timed by that single call only (e.g. shared-memory kernels on lavapipe, seconds per call), to keep
 * the suite's run time bounded; it is marked "timed once".
 */
const SLOW_VARIANT = args.quick || customTiming ? { floorMs: 250, factor: 4 } : { floorMs: 1000, factor: 10 };
/**
 * An end-to-end step slower than this (ms, its second call) is reported from that call ("timed once
 * (slow)"): tfjs's DCGAN iteration takes minutes per step on lavapipe.
 */
const SLOW_STEP_MS = args.quick || customTiming ? 5_000 : 20_000;
const SLOW_NOTE = 'timed once (slow)';

interface VariantResult extends Partial<Timing> {
  variant: string;
  /** Set when the variant was timed by one call only (see SLOW_VARIANT). */
  note?: string;
  gflops?: number;
  gbps?: number;
  /** Relative error against the reference (first working wgsl-nn variant; torch: over sampled positions). */
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
  torch?: VariantResult;
}

interface EndToEndTiming extends Timing {
  stepsPerSec: number;
  imagesPerSec?: number;
  gflops?: number;
  /** Node main thread's CPU time over the wall time of the timed steps, percent of one core (JS sides). */
  mainThreadCpuPercent?: number;
  dispatchesPerStep?: number;
  note?: string;
}

interface EndToEndResult {
  name: string;
  images?: number;
  flops?: number;
  ours?: EndToEndTiming;
  oursError?: string;
  tfjs?: EndToEndTiming;
  tfjsError?: string;
  torch?: EndToEndTiming;
  torchError?: string;
}

type PeerStatus = { status: 'ok' | 'unavailable' | 'disabled'; reason?: string };

const fmt = (x: number | undefined, digits = 2) => (x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(digits));
const rate = (c: { flops?: number; bytes?: number }, ms: number) =>
  c.flops ? { gflops: c.flops / ms / 1e6 } : c.bytes ? { gbps: c.bytes / ms / 1e6 } : {};
const rateText = (r: VariantResult) => (r.gflops !== undefined ? `${fmt(r.gflops, 1)} GFLOP/s` : r.gbps !== undefined ? `${fmt(r.gbps, 2)} GB/s` : '');
const ratio = (peerMs: number | undefined, oursMs: number | undefined) => (peerMs && oursMs ? `${fmt(peerMs / oursMs, 2)}x` : '');

function matches(c: { group: string; op: string; shape: string }, filter: string): boolean {
  return !filter || `${c.group} ${c.op} ${c.shape}`.toLowerCase().includes(filter.toLowerCase());
}

const kernelId = (i: number, c: BenchKernelCase) => `${i}:${c.group}:${c.op}`;

// ------------------------------------------------------------------------------------ kernel cases

function logRow(op: string, who: string, r: VariantResult, flag: string): void {
  console.log(
    `  ${op.padEnd(30)} ${who.padEnd(18)} ${fmt(r.medianMs, 3).padStart(10)} ms  ${rateText(r).padStart(15)}  ${r.relErr !== undefined && !r.error ? `err ${r.relErr.toExponential(1)}` : ''} ${flag}`,
  );
}

const flagOf = (r: VariantResult) =>
  r.error ? `FAILED: ${r.error}` : r.relErr !== undefined && r.relErr > TUNE_TOLERANCE ? `MISMATCH rel err ${r.relErr.toExponential(2)}` : (r.note ?? '');

async function runKernelCase(engine: Engine, c: BenchKernelCase, id: string, tf: TfjsBench | undefined, torch: TorchRun | undefined): Promise<KernelResult> {
  const result: KernelResult = { group: c.group, op: c.op, shape: c.shape, flops: c.flops, bytes: c.bytes, chosen: kernels.chosen(c.op, engine, caseArgs(engine, c)), variants: [] };
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
          Object.assign(r, timedOnce(once), { note: 'timed once (slow)' });
        } else {
          Object.assign(r, await measure(`${c.group} ${c.op} ${variant}`, step, LIMITS, once));
        }
      } finally {
        prep.dispose();
      }
      Object.assign(r, rate(c, r.medianMs!));
    } catch (e) {
      r.error = firstLine(e);
      await engine.sync().catch(() => undefined);
    }
    logRow(c.op, variant, r, flagOf(r));
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
        Object.assign(r, await measure(`${c.group} ${c.op} tfjs`, () => k!.step(), LIMITS, performance.now() - t0));
        Object.assign(r, rate(c, r.medianMs!));
      }
    } catch (e) {
      r.error = firstLine(e);
    } finally {
      k?.dispose();
    }
    logRow(c.op, '[tfjs-webgpu]', r, flagOf(r));
  }
  const t = torch?.ok ? torch.kernels[id] : undefined;
  if (t) {
    const r: VariantResult = { variant: 'torch-cpu' };
    result.torch = r;
    if (t.error) r.error = t.error;
    else {
      Object.assign(r, { medianMs: t.medianMs, meanMs: t.meanMs, samples: t.samples }, rate(c, t.medianMs!));
      if (ref) r.relErr = sampledRelErr(t, ref[0]);
    }
    logRow(c.op, '[torch-cpu]', r, flagOf(r));
  }
  return result;
}

// ------------------------------------------------------------------------------------ end-to-end cases

function endToEndTiming(c: EndToEndCase, t: Timing, extra: Partial<EndToEndTiming> = {}): EndToEndTiming {
  return {
    ...t,
    stepsPerSec: 1000 / t.medianMs,
    imagesPerSec: c.images ? (c.images * 1000) / t.medianMs : undefined,
    gflops: c.flops ? c.flops / t.medianMs / 1e6 : undefined,
    ...extra,
  };
}

function e2eLine(who: string, t: EndToEndTiming): string {
  const parts = [`${fmt(t.medianMs, 1).padStart(9)} ms/step`, `${fmt(t.stepsPerSec, 2).padStart(7)} steps/s`];
  if (t.imagesPerSec !== undefined) parts.push(`${fmt(t.imagesPerSec, 1).padStart(8)} images/s`);
  if (t.gflops !== undefined) parts.push(`${fmt(t.gflops, 1)} GFLOP/s`);
  if (t.mainThreadCpuPercent !== undefined) parts.push(`main thread ${fmt(t.mainThreadCpuPercent, 1)} % CPU`);
  if (t.dispatchesPerStep !== undefined) parts.push(`${t.dispatchesPerStep} dispatches/step`);
  if (t.note) parts.push(t.note);
  return `  ${who.padEnd(13)} ${parts.join('  ')}`;
}

async function runEndToEnd(engine: Engine, c: EndToEndCase, id: string, tf: TfjsBench | undefined, torch: TorchRun | undefined): Promise<EndToEndResult> {
  console.log(`\n${c.name}`);
  const r: EndToEndResult = { name: c.name, images: c.images, flops: c.flops };
  try {
    const s = c.setup(engine);
    try {
      await s.step(); // compile (and create the optimizer state)
      const d0 = engine.dispatchCount;
      const m0 = await withMainThreadCpu(() => s.step());
      const dispatchesPerStep = engine.dispatchCount - d0;
      const once = m0.wallMs;
      if (once > SLOW_STEP_MS) r.ours = endToEndTiming(c, timedOnce(once), { mainThreadCpuPercent: m0.mainThreadCpuPercent, dispatchesPerStep, note: SLOW_NOTE });
      else {
        const m = await withMainThreadCpu(() => measure(c.name, () => s.step(), LIMITS, once));
        r.ours = endToEndTiming(c, m.result, { mainThreadCpuPercent: m.mainThreadCpuPercent, dispatchesPerStep });
      }
    } finally {
      s.dispose();
    }
    console.log(e2eLine('wgsl-nn', r.ours));
  } catch (e) {
    r.oursError = firstLine(e);
    console.log(`  wgsl-nn       fails: ${r.oursError}`);
  }
  engine.trim();
  if (tf) {
    let s: ReturnType<TfjsBench['endToEnd']>;
    try {
      s = tf.endToEnd(c.peer);
      if (s) {
        // The first step (compiles, creates the optimizer state) runs inside WebGPU error scopes; then
        // the outputs must vary: tfjs drops work that exceeds the device's limits without throwing.
        const gpuErrors = await tf.gpuErrors(() => s!.step());
        if (gpuErrors.length) throw new Error(`silently drops the work: GPU ${gpuErrors.join('; ')}`);
        const problem = await s.check?.();
        if (problem) throw new Error(`silently drops the work: ${problem}`);
        const m0 = await withMainThreadCpu(() => s!.step());
        const once = m0.wallMs;
        if (once > SLOW_STEP_MS) r.tfjs = endToEndTiming(c, timedOnce(once), { mainThreadCpuPercent: m0.mainThreadCpuPercent, note: SLOW_NOTE });
        else {
          const m = await withMainThreadCpu(() => measure(`${c.name} tfjs`, () => s!.step(), LIMITS, once));
          r.tfjs = endToEndTiming(c, m.result, { mainThreadCpuPercent: m.mainThreadCpuPercent });
        }
        console.log(e2eLine('tfjs-webgpu', r.tfjs));
      }
    } catch (e) {
      r.tfjsError = firstLine(e);
      console.log(`  tfjs-webgpu   fails: ${r.tfjsError}`);
    } finally {
      try {
        s?.dispose();
      } catch {
        /* a failed step may leave tensors tfjs already freed */
      }
    }
  }
  const t = torch?.ok ? torch.endToEnd[id] : undefined;
  if (t) {
    if (t.error || t.medianMs === undefined) r.torchError = t.error ?? 'no timing';
    else if (t.finite === false) r.torchError = 'non-finite result';
    else r.torch = endToEndTiming(c, { medianMs: t.medianMs, meanMs: t.meanMs!, rme: 0, samples: t.samples! }, { note: t.note });
    console.log(r.torch ? e2eLine('torch-cpu', r.torch) : `  torch-cpu     fails: ${r.torchError}`);
  }
  return r;
}

// ------------------------------------------------------------------------------------ environment

function cpuModel(): string {
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) return m[1].trim();
  } catch {
    /* not Linux */
  }
  return cpus()[0]?.model ?? '?';
}

function packageVersion(pkg: string): string | undefined {
  try {
    return (JSON.parse(readFileSync(join(import.meta.dirname, '..', 'node_modules', pkg, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return undefined;
  }
}

// ------------------------------------------------------------------------------------ main

async function main(): Promise<void> {
  const t0 = Date.now();
  const kCases = kernelCases()
    .map((c, i) => ({ c, id: kernelId(i, c) }))
    .filter(({ c }) => matches(c, args.filter!));
  const eCases = endToEndCases()
    .map((c, i) => ({ c, id: `e2e${i}: ${c.name}` }))
    .filter(({ c }) => matches({ group: c.name, op: 'e2e', shape: '' }, args.filter!));
  const machine = { cpuModel: cpuModel(), logicalCpus: cpus().length, availableParallelism: availableParallelism(), platform: `${process.platform} ${process.arch}` };
  console.log(`machine: ${machine.cpuModel}, ${machine.logicalCpus} logical CPU(s); node ${process.version}`);
  console.log(`timing: maxTime ${LIMITS.maxTime}s, >= ${LIMITS.minSamples} samples (calls over ${LIMITS.longCallMs} ms: >= ${LIMITS.longCallSamples}); peers: ${[...peers].join(', ') || 'none'}`);

  // PyTorch first, alone on the CPU: one process for every selected case.
  let torch: TorchRun | undefined;
  let torchStatus: PeerStatus & { info?: TorchInfo; wallSeconds?: number; threads?: number };
  if (!peers.has('torch')) torchStatus = { status: 'disabled' };
  else {
    const found = findTorchPython(args.python);
    if (!found.python) {
      torchStatus = { status: 'unavailable', reason: found.reason };
      console.log(`torch column skipped: ${found.reason}`);
    } else {
      const job: TorchJob = {
        kernels: kCases.map(({ c, id }) => torchKernelEntry(id, c)).filter((k) => k !== undefined),
        endToEnd: eCases.map(({ c, id }) => ({ id, ...c.peer })),
      };
      console.log(`\nPyTorch (${found.python}, ${TORCH_THREADS} threads): ${job.kernels.length} kernel and ${job.endToEnd.length} end-to-end case(s)`);
      torch = await runTorch(found.python, job, { ...LIMITS, slowStepMs: SLOW_STEP_MS }, TORCH_THREADS, (line) => console.log(`  ${line.trim()}`));
      if (torch.ok) torchStatus = { status: 'ok', info: torch.info, wallSeconds: torch.wallSeconds, threads: TORCH_THREADS };
      else {
        torchStatus = { status: 'unavailable', reason: torch.reason };
        console.log(`torch column skipped: ${torch.reason}`);
      }
    }
  }

  const engine = await Engine.create({ subgroups: !args['no-subgroups'] });
  const tuned = args['no-tuned'] ? {} : loadTuned(engine);
  console.log(`\nadapter: ${engine.describe()}${engine.device.features.has('subgroups') ? ' [subgroups]' : ''}`);
  if (Object.keys(tuned).length) console.log(`autotuned choices applied: ${Object.entries(tuned).flatMap(([o, bs]) => Object.entries(bs).map(([b, v]) => `${o}[${b}]=${v}`)).join(', ')}`);

  let tf: TfjsBench | undefined;
  let tfStatus: PeerStatus & { version?: string; adapter?: string; waitMethod?: string };
  if (!peers.has('tfjs')) tfStatus = { status: 'disabled' };
  else {
    const r = await initTfjs();
    if (r.ok) {
      tf = r.bench;
      tfStatus = { status: 'ok', version: tf.version, adapter: tf.adapter, waitMethod: tf.waitMethod };
      console.log(`tfjs ${tf.version} WebGPU backend ready (${tf.adapter}); waits with ${tf.waitMethod}`);
    } else {
      tfStatus = { status: 'unavailable', reason: r.reason };
      console.log(`tfjs column skipped: ${r.reason}`);
    }
  }

  const kernelResults: KernelResult[] = [];
  let lastGroup = '';
  for (const { c, id } of kCases) {
    if (c.group !== lastGroup) console.log(`\n${c.group}: ${c.shape}`);
    lastGroup = c.group;
    kernelResults.push(await runKernelCase(engine, c, id, tf, torch));
  }

  const used = Object.fromEntries(kernels.opNames().filter((op) => kernels.variants(op).length > 1).map((op) => [op, kernels.chosen(op, engine)]));
  const e2eResults: EndToEndResult[] = [];
  for (const { c, id } of eCases) e2eResults.push(await runEndToEnd(engine, c, id, tf, torch));

  // ---------------------------------------------------------------- results
  const info = engine.info;
  const slug = adapterSlug(engine);
  // Partial runs do not overwrite the adapter's full results file unless --out says so.
  const suffix = args.filter || args.variants ? '.partial' : args.quick || customTiming ? '.quick' : '';
  const outFile = args.out ?? join(import.meta.dirname, 'results', `${slug}${suffix}.json`);
  const results: Results = {
    adapter: { ...info, describe: engine.describe(), key: adapterKey(engine), subgroups: engine.device.features.has('subgroups') },
    date: new Date().toISOString(),
    machine,
    versions: {
      node: process.version,
      webgpu: packageVersion('webgpu'),
      benchmark: packageVersion('benchmark'),
      tfjs: tfStatus.version ?? packageVersion('@tensorflow/tfjs-core'),
      torch: torchStatus.info?.torch,
      python: torchStatus.info?.python,
    },
    // (kept for readers of older results files)
    node: process.version,
    platform: machine.platform,
    cpus: machine.logicalCpus,
    cpuModel: machine.cpuModel,
    options: { quick: args.quick, filter: args.filter || undefined, variants: args.variants, tuned: !args['no-tuned'], subgroups: !args['no-subgroups'], peers: [...peers], ...LIMITS },
    tunedChoices: tuned,
    endToEndVariants: used,
    tfjs: tfStatus,
    torch: torchStatus,
    kernels: kernelResults,
    endToEnd: e2eResults,
    wallSeconds: (Date.now() - t0) / 1000,
    note: args.note,
  };
  mkdirSync(dirname(outFile), { recursive: true });
  writeFileSync(outFile, `${JSON.stringify(results, null, 2)}\n`);
  const mdFile = outFile.replace(/\.json$/i, '') + '.md';
  writeFileSync(mdFile, markdown(results));
  if (kernelResults.length) console.log(`\n${kernelTable(kernelResults)}`);
  if (e2eResults.length) console.log(`\n${endToEndTable(e2eResults)}`);
  const cpuLine = mainThreadLine(e2eResults);
  if (cpuLine) console.log(`\n${cpuLine}`);
  console.log(`\nwrote ${outFile} and ${mdFile} (${results.wallSeconds.toFixed(0)} s)`);
  engine.destroy();
}

interface Results {
  adapter: { describe: string; key: string; subgroups: boolean };
  date: string;
  machine: { cpuModel: string; logicalCpus: number; availableParallelism: number; platform: string };
  versions: Record<string, string | undefined>;
  node: string;
  platform: string;
  cpus: number;
  cpuModel: string;
  options: object;
  /** op -> shape bucket -> variant (older results files: op -> variant). */
  tunedChoices: Record<string, string | Record<string, string>>;
  endToEndVariants: Record<string, string>;
  tfjs: PeerStatus & { version?: string; waitMethod?: string };
  torch: PeerStatus & { info?: TorchInfo; threads?: number };
  kernels: KernelResult[];
  endToEnd: EndToEndResult[];
  wallSeconds: number;
  note?: string;
}

/** Best correct variant of a kernel result. */
function best(k: KernelResult): VariantResult | undefined {
  return k.variants
    .filter((v) => v.medianMs !== undefined && !v.error && (v.relErr ?? 0) <= TUNE_TOLERANCE)
    .sort((a, b) => a.medianMs! - b.medianMs!)[0];
}

const peerMs = (v: VariantResult | undefined) => (v ? (v.error ? 'fails' : fmt(v.medianMs, 3)) : '');

function kernelTable(kr: KernelResult[]): string {
  const rows = [
    'case | op | best wgsl-nn variant | wgsl-nn ms | wgsl-nn rate | tfjs-webgpu ms | torch-cpu ms | torch rate | tfjs / wgsl-nn | torch / wgsl-nn | torch rel err',
    '--- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---:',
  ];
  for (const k of kr) {
    if (!k.variants.length && !k.tfjs && !k.torch) continue; // (--variants left nothing of this case)
    const b = best(k);
    rows.push(
      [
        k.group,
        k.op,
        b?.variant ?? '-',
        fmt(b?.medianMs, 3),
        b ? rateText(b) : '',
        peerMs(k.tfjs),
        peerMs(k.torch),
        k.torch && !k.torch.error ? rateText(k.torch) : '',
        ratio(k.tfjs?.error ? undefined : k.tfjs?.medianMs, b?.medianMs),
        ratio(k.torch?.error ? undefined : k.torch?.medianMs, b?.medianMs),
        k.torch?.relErr !== undefined ? k.torch.relErr.toExponential(1) : '',
      ].join(' | '),
    );
  }
  return rows.join('\n');
}

function e2eCell(t: EndToEndTiming | undefined, error: string | undefined, ran: boolean): string {
  if (error) return `fails: ${error.replace(/\|/g, '/')}`;
  if (!t) return ran ? '-' : '';
  const extra = t.gflops !== undefined ? `${fmt(t.gflops, 1)} GFLOP/s` : t.imagesPerSec !== undefined ? `${fmt(t.imagesPerSec, 1)} img/s` : `${fmt(t.stepsPerSec, 2)} steps/s`;
  return `${fmt(t.medianMs, 1)} (${extra})`;
}

function endToEndTable(er: EndToEndResult[]): string {
  const rows = [
    'case | wgsl-nn ms/step | tfjs-webgpu ms/step | torch-cpu ms/step | tfjs / wgsl-nn | torch / wgsl-nn',
    '--- | ---: | ---: | ---: | ---: | ---:',
  ];
  for (const e of er)
    rows.push(
      [
        e.name,
        e2eCell(e.ours, e.oursError, true),
        e2eCell(e.tfjs, e.tfjsError, false),
        e2eCell(e.torch, e.torchError, false),
        ratio(e.tfjs?.medianMs, e.ours?.medianMs),
        ratio(e.torch?.medianMs, e.ours?.medianMs),
      ].join(' | '),
    );
  return rows.join('\n');
}

function mainThreadLine(er: EndToEndResult[]): string | undefined {
  const seed = er.find((e) => /^seed CNN training step.*b32 64x64/.test(e.name));
  if (!seed?.ours?.mainThreadCpuPercent && !seed?.tfjs?.mainThreadCpuPercent) return undefined;
  const tfjs = seed.tfjs?.mainThreadCpuPercent !== undefined ? `; tfjs-webgpu: ${fmt(seed.tfjs.mainThreadCpuPercent, 1)} %` : '';
  return `Node main thread CPU during the seed CNN training step (b32 64x64, timed steps): wgsl-nn ${fmt(seed.ours?.mainThreadCpuPercent, 1)} % of one core (target < 20 %)${tfjs}.`;
}

function markdown(r: Results): string {
  const ti = r.torch.info;
  const torchLine =
    r.torch.status === 'ok' && ti
      ? `PyTorch ${ti.torch} on the CPU (Python ${ti.python}, ${ti.executable}): torch.set_num_threads(${r.torch.threads}) -> ${ti.threads} intra-op thread(s), ${ti.interopThreads} inter-op; BLAS ${ti.blas}; oneDNN ${ti.mkldnn ? 'on' : 'off'}; environment ${Object.entries(ti.env ?? {}).map(([k, x]) => `${k}=${x}`).join(' ')}. It ran alone, before the GPU work.`
      : r.torch.status === 'disabled'
        ? 'PyTorch: not run (not among --vs).'
        : `PyTorch: column skipped: ${r.torch.reason}.`;
  const v = r.versions;
  const lines = [
    `# wgsl-nn benchmark: ${r.adapter.describe}`,
    '',
    `${r.date}. Machine: ${r.machine.cpuModel}, ${r.machine.logicalCpus} logical CPU(s), ${r.machine.platform}.`,
    `Versions: node ${v.node}, webgpu (dawn.node) ${v.webgpu ?? '?'}, benchmark.js ${v.benchmark ?? '?'}, tfjs ${v.tfjs ?? '-'}, torch ${v.torch ?? '-'}, python ${v.python ?? '-'}.`,
    `Options: \`${JSON.stringify(r.options)}\`.`,
    `TensorFlow.js: ${r.tfjs.status === 'ok' ? `tfjs-core/tfjs-backend-webgpu ${r.tfjs.version} on the same adapter, waits with ${r.tfjs.waitMethod}; NHWC activations, HWIO filters` : r.tfjs.status === 'disabled' ? 'not run (not among --vs)' : `column skipped: ${r.tfjs.reason}`}.`,
    torchLine,
    `Autotuned choices applied: ${Object.keys(r.tunedChoices).length ? Object.entries(r.tunedChoices).flatMap(([o, x]) => (typeof x === 'string' ? [`${o}=${x}`] : Object.entries(x).map(([b, v]) => `${o}[${b}]=${v}`))).join(', ') : 'none'}.`,
    ...(r.note ? ['', `**Note:** ${r.note}`] : []),
    '',
    'Median milliseconds per call (each call ends when the GPU is done; torch: when the CPU result exists). GFLOP/s for compute',
    'kernels (conv 2·N·O·Ho·Wo·C·kH·kW, matmul 2·M·N·K), GB/s of nominal traffic for memory-bound ones. "x / wgsl-nn" is the',
    "peer's time over wgsl-nn's (above 1: wgsl-nn is faster). \"rel err\" is against the first working wgsl-nn variant (tfjs: after",
    'converting layouts; torch: the same inputs, over 256 evenly spaced output positions); * marks the variant wgsl-nn runs by default here.',
    '',
    '## Kernels side by side',
    '',
    kernelTable(r.kernels),
    '',
    '## End to end (public API, results read back)',
    '',
    endToEndTable(r.endToEnd),
    '',
  ];
  const cpuLine = mainThreadLine(r.endToEnd);
  if (cpuLine) lines.push(cpuLine, '');
  lines.push(
    'framework | case | ms/step | steps/s | images/s | GFLOP/s | main-thread CPU | dispatches/step | samples | note',
    '--- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---',
  );
  for (const e of r.endToEnd) {
    for (const [who, t, err] of [
      ['wgsl-nn', e.ours, e.oursError],
      ['tfjs-webgpu', e.tfjs, e.tfjsError],
      ['torch-cpu', e.torch, e.torchError],
    ] as const) {
      if (!t && !err) continue;
      lines.push(
        t
          ? `${who} | ${e.name} | ${fmt(t.medianMs, 1)} | ${fmt(t.stepsPerSec, 2)} | ${fmt(t.imagesPerSec, 1)} | ${fmt(t.gflops, 1)} | ${t.mainThreadCpuPercent !== undefined ? `${fmt(t.mainThreadCpuPercent, 1)} %` : '-'} | ${t.dispatchesPerStep ?? '-'} | ${t.samples} | ${t.note ?? ''}`
          : `${who} | ${e.name} | fails: ${err!.replace(/\|/g, '/')} | | | | | | |`,
      );
    }
  }
  lines.push('', '## Every variant', '', 'case | op | variant | median ms | throughput | rel err | note', '--- | --- | --- | ---: | ---: | ---: | ---');
  for (const k of r.kernels) {
    for (const x of [...k.variants, ...(k.tfjs ? [k.tfjs] : []), ...(k.torch ? [k.torch] : [])]) {
      const note = x.error ? `fails: ${x.error}` : x.relErr !== undefined && x.relErr > TUNE_TOLERANCE ? 'MISMATCH' : (x.note ?? '');
      lines.push(
        `${k.group} | ${k.op} | ${x.variant}${x.variant === k.chosen ? ' *' : ''} | ${fmt(x.medianMs, 3)} | ${rateText(x)} | ${
          x.relErr === undefined ? '-' : x.relErr.toExponential(1)
        } | ${note.replace(/\|/g, '/')}`,
      );
    }
  }
  return `${lines.join('\n')}\n`;
}

await main();
