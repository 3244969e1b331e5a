// Measured per-adapter kernel variant selection, per shape bucket.
//
// `autotune(engine)` runs every registered variant of the tunable ops (GEMM, conv, conv-transpose,
// elementwise, pooling, batch-norm) on the shapes of the seed CNN and the DCGAN (see tuningCases),
// checks each variant's output against the first working variant's, and records the fastest correct
// one for the case's shape bucket (kernels.bucketOf) with kernels.setTuned. The choices are merged
// into the per-adapter cache file (src/kernels/tuning-cache.ts), from which loadTuned(engine)
// re-applies them at start-up without measuring. bench/autotune.ts is the command line.
import type { Engine } from '../src/gpu/engine.js';
import { adapterKey, kernels } from '../src/kernels/registry.js';
import { defaultCacheFile, saveTuned, type PerBucket } from '../src/kernels/tuning-cache.js';
import { opCases, type KernelCase } from './kernel-cases.js';
import { firstLine, median } from './timing.js';

/**
 * The shapes each tunable op is tuned on: the seed CNN's three conv layers (1 -> 32 on 64x64,
 * 32 -> 64 on 31x31, 64 -> 128 on 14x14) and its dense layer, the DCGAN discriminator's strided conv
 * and generator's conv-transpose (as in bench/cases.ts), GEMMs, and activation-sized elementwise work.
 * `quick` uses batch 8 (and smaller matrices) so a first run finishes quickly on lavapipe. Several
 * cases of an op in one shape bucket are measured once (the first).
 */
export function tuningCases(quick = false): KernelCase[] {
  const b = quick ? 8 : 32;
  return [
    quick ? opCases.matmul(128, 128, 128) : opCases.matmul(256, 256, 256),
    ...opCases.linear(32, 3200, 128),
    ...opCases.conv2d(b, 1, 32, 64, 64, 3),
    ...opCases.conv2d(b, 32, 64, 31, 31, 3),
    ...opCases.conv2d(b, 64, 128, 14, 14, 3),
    ...opCases.conv2d(8, 64, 128, 32, 32, 4, 2, 1),
    ...opCases.convTranspose2d(b, 128, 64, 8, 8, 4, 2, 1),
    opCases.binary([b, 32, 62, 62], [1, 32, 1, 1], 'add'),
    opCases.scale([b, 32, 62, 62]),
    opCases.scaleByScalar([b, 32, 62, 62]),
    ...opCases.maxPool2d([b, 32, 62, 62], 2, 2),
    ...opCases.batchNorm2d([b, 32, 32, 32]),
  ];
}

/** The ops autotune measures by default. */
export const TUNABLE_OPS: readonly string[] = [...new Set(tuningCases(true).map((c) => c.op))];

/**
 * The arguments a case passes to its kernel (captured with a stand-in kernel; tensors among them are
 * already freed: read only their shapes), e.g. for kernels.chosen(op, engine, args).
 */
export function caseArgs(engine: Engine, kernelCase: KernelCase): unknown[] {
  let captured: unknown[] | undefined;
  const prep = kernelCase.prepare(engine);
  try {
    prep.run((...args: unknown[]) => {
      captured = args;
      return undefined;
    });
  } finally {
    prep.dispose();
  }
  if (!captured) throw new Error(`wgsl-nn autotune: the case '${kernelCase.shape}' of '${kernelCase.op}' never calls its kernel`);
  return captured;
}

/** The shape bucket of a case's call (kernels.bucketOf). */
export function caseBucket(engine: Engine, kernelCase: KernelCase): string {
  return kernels.bucketOf(kernelCase.op, caseArgs(engine, kernelCase));
}

// ------------------------------------------------------------------------------------ measuring

/** Relative error max|got - ref| / max|ref| (Infinity for a length mismatch or a new non-finite value). */
export function relativeError(got: ArrayLike<number>, ref: ArrayLike<number>): number {
  if (got.length !== ref.length) return Infinity;
  let num = 0;
  let den = 0;
  for (let i = 0; i < ref.length; i++) {
    const g = got[i];
    const r = ref[i];
    if (!Number.isFinite(g) || !Number.isFinite(r)) {
      if (Object.is(g, r)) continue;
      return Infinity;
    }
    num = Math.max(num, Math.abs(g - r));
    den = Math.max(den, Math.abs(r));
  }
  return num / Math.max(den, 1e-30);
}

/** Largest relative error over matching output lists (Infinity if the lists differ in length). */
export function outputsError(got: ArrayLike<number>[], ref: ArrayLike<number>[]): number {
  if (got.length !== ref.length) return Infinity;
  return got.reduce((m, g, i) => Math.max(m, relativeError(g, ref[i])), 0);
}

/** Runs `variant` of `kernelCase` once on fresh inputs and reads its outputs (created and in-place). */
export async function runOnce(engine: Engine, kernelCase: KernelCase, variant: string): Promise<ArrayLike<number>[]> {
  const fn = kernels.get(kernelCase.op, engine, variant);
  const prep = kernelCase.prepare(engine);
  try {
    const outs = prep.run(fn);
    try {
      const arrays: ArrayLike<number>[] = [];
      for (const t of [...outs, ...prep.inPlace]) arrays.push(await t.toArray());
      return arrays;
    } finally {
      outs.forEach((t) => t.dispose());
    }
  } finally {
    prep.dispose();
    await engine.sync().catch(() => undefined);
  }
}

/**
 * Median milliseconds per call of `variant` (after one warm-up call that compiles its pipelines).
 * Each repetition issues enough calls to take roughly `targetMs`, then waits for the GPU.
 */
export async function timeVariant(
  engine: Engine,
  kernelCase: KernelCase,
  variant: string,
  options: { reps?: number; targetMs?: number } = {},
): Promise<number> {
  const reps = options.reps ?? 5;
  const targetMs = options.targetMs ?? 25;
  const fn = kernels.get(kernelCase.op, engine, variant);
  const prep = kernelCase.prepare(engine);
  try {
    const call = () => prep.run(fn).forEach((t) => t.dispose());
    call();
    await engine.sync();
    const t0 = performance.now();
    call();
    await engine.sync();
    const once = performance.now() - t0;
    const calls = Math.max(1, Math.min(32, Math.round(targetMs / Math.max(once, 1e-3))));
    const times: number[] = [];
    for (let r = 0; r < reps; r++) {
      const t = performance.now();
      for (let i = 0; i < calls; i++) call();
      await engine.sync();
      times.push((performance.now() - t) / calls);
    }
    return median(times);
  } finally {
    prep.dispose();
  }
}

// ------------------------------------------------------------------------------------ autotune

/** Largest relative error (against the first working variant) for which a variant may be chosen. */
export const TUNE_TOLERANCE = 1e-3;

/**
 * The registry's default variant (preferred for the adapter kind, else the first registered) is kept
 * unless another variant is faster by more than this fraction, so timing noise between equivalent
 * variants does not flip the choice from run to run.
 */
export const TUNE_MARGIN = 0.05;

/** The variant the registry would pick without measurements (preferred for the adapter kind, else the first). */
export function defaultVariant(op: string, engine: Engine): string {
  const kind = engine.info.software ? 'software' : 'hardware';
  return kernels.describe(op).find((v) => v.preferredOn.includes(kind))?.name ?? kernels.variants(op)[0];
}

export interface AutotuneOptions {
  /** Ops to tune (default: TUNABLE_OPS). Ops with one variant are recorded without timing. */
  ops?: string[];
  /** Cache file (default: $WGSL_NN_TUNE_CACHE or ~/.cache/wgsl-nn/variants.json). */
  cacheFile?: string;
  /** Smaller shapes and fewer repetitions. */
  quick?: boolean;
  /** Extra cases (e.g. for an op without built-in tuning cases, or another bucket of one that has). */
  cases?: KernelCase[];
  /** Called with each measurement (for progress output). */
  onResult?: (r: VariantTiming) => void;
}

export interface VariantTiming {
  op: string;
  /** The shape bucket measured (kernels.bucketOf). */
  bucket: string;
  /** The case's shapes, e.g. 'x [32,1,64,64] w [32,1,3,3] s1 p0'. */
  shape: string;
  variant: string;
  /** Median ms per call; null when the variant failed or was rejected. */
  ms: number | null;
  /** Relative error against the reference variant's output. */
  relErr: number | null;
  /** Why the variant cannot be chosen, if it cannot. */
  rejected?: string;
}

/**
 * For each op and each shape bucket its cases cover, times every variant and records the fastest whose
 * output agrees with the first working variant's (relative error <= TUNE_TOLERANCE) with
 * kernels.setTuned (the default variant is kept when it is within TUNE_MARGIN of the fastest).
 * Variants that throw, report a GPU error or disagree are never chosen; if the first variant itself is
 * wrong, the variants that agree with it are chosen among (there is no CPU reference here: the kernel
 * tests check each variant). Merges the choices into the cache file under this adapter's key and
 * returns them (op -> bucket -> variant) for the ops measured now.
 */
export async function autotune(engine: Engine, options: AutotuneOptions = {}): Promise<PerBucket<string>> {
  const allCases = [...(options.cases ?? []), ...tuningCases(options.quick)];
  const ops = options.ops ?? [...TUNABLE_OPS];
  const key = adapterKey(engine);
  const chosen: PerBucket<string> = {};
  const timings: PerBucket<Record<string, number | null>> = {};
  const shapes: PerBucket<string> = {};
  for (const op of ops) {
    const variants = kernels.variants(op); // throws for an unknown op
    const cases = allCases.filter((c) => c.op === op);
    if (!cases.length) throw new Error(`wgsl-nn autotune: no tuning case for op '${op}' (pass one in options.cases)`);
    const seen = new Set<string>();
    for (const kc of cases) {
      const bucket = caseBucket(engine, kc);
      if (seen.has(bucket)) continue;
      seen.add(bucket);
      (shapes[op] ??= {})[bucket] = `${kc.shape}${options.quick ? ' (quick)' : ''}`;
      const report = (r: Omit<VariantTiming, 'op' | 'bucket' | 'shape'>) => {
        ((timings[op] ??= {})[bucket] ??= {})[r.variant] = r.ms;
        options.onResult?.({ op, bucket, shape: kc.shape, ...r });
      };
      const best = await tuneBucket(engine, kc, variants, options.quick ?? false, report);
      engine.trim();
      if (best) {
        kernels.setTuned(key, op, best, bucket);
        (chosen[op] ??= {})[bucket] = best;
      }
    }
  }
  saveTuned(key, { adapter: engine.describe(), updated: new Date().toISOString(), choices: chosen, timings, shapes }, options.cacheFile ?? defaultCacheFile());
  return chosen;
}

/** The variant to choose for one case (undefined when none works). */
async function tuneBucket(
  engine: Engine,
  kc: KernelCase,
  variants: string[],
  quick: boolean,
  report: (r: Omit<VariantTiming, 'op' | 'bucket' | 'shape'>) => void,
): Promise<string | undefined> {
  let ref: ArrayLike<number>[] | undefined;
  let best: { variant: string; ms: number } | undefined;
  let fallback: { variant: string; ms: number } | undefined; // the default variant's timing
  const preferred = defaultVariant(kc.op, engine);
  for (const variant of variants) {
    let out: ArrayLike<number>[];
    try {
      out = await runOnce(engine, kc, variant);
    } catch (e) {
      report({ variant, ms: null, relErr: null, rejected: `failed: ${firstLine(e)}` });
      continue;
    }
    const err = ref ? outputsError(out, ref) : 0;
    ref ??= out;
    if (!(err <= TUNE_TOLERANCE)) {
      report({ variant, ms: null, relErr: err, rejected: `disagrees with the reference variant (relative error ${err.toExponential(2)})` });
      continue;
    }
    if (variants.length === 1) {
      report({ variant, ms: null, relErr: 0 });
      return variant;
    }
    let ms: number;
    try {
      ms = await timeVariant(engine, kc, variant, quick ? { reps: 3, targetMs: 10 } : { reps: 5, targetMs: 25 });
    } catch (e) {
      report({ variant, ms: null, relErr: err, rejected: `failed: ${firstLine(e)}` });
      continue;
    }
    report({ variant, ms, relErr: err });
    if (!best || ms < best.ms) best = { variant, ms };
    if (variant === preferred) fallback = { variant, ms };
  }
  if (best && fallback && fallback.ms <= best.ms * (1 + TUNE_MARGIN)) best = fallback;
  return best?.variant;
}
