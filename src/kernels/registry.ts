// The kernel registry: every op's forward and backward kernels are looked up here.
//
// An op is declared once, next to its kernels, as a typed descriptor:
//   export const conv2dForwardOp = defineOp<Conv2dForwardFn>('conv2d.forward', { check, bucket });
// and has one or more variants (e.g. 'direct', 'gemm'), all of that signature:
//   conv2dForwardOp.register('direct', fn, { description, preferredOn });
//   conv2dForwardOp.get(engine, variant?)(x, w, b, p);   // typed: no casts at the call sites
// The op name ('conv2d.forward') stays the key of the tuning cache, of WGSL_NN_KERNELS and of the
// by-name methods of `kernels` that tests and benchmarks iterate (`kernels.opNames()`,
// `kernels.variants(op)`, `kernels.get(op, engine, variant)`). Registering a variant is the only
// step needed for:
//   - the test suite to check it against the CPU reference (tests iterate `variants(op)`), and
//   - the benchmarks to time it beside the others (bench/ iterates the same list).
//
// Checks: an op's `check(...args)` validates a call's arguments (shapes, dtypes, parameters) and
// throws the ShapeError / InvalidArgumentError its callers see. Every function the registry hands out
// runs it once per call before the chosen variant, so variants and F (src/nn/functional.ts) do not
// repeat it: a variant may assume arguments that passed the check.
//
// Which variant runs: the `variant` given for one call, else one forced with `use()`/`withVariant()`,
// else one measured fastest on this adapter for the call's shape bucket (`setTuned`, filled from the
// cache by src/kernels/tuning-cache.ts, measured by bench/tuner.ts), else the variant registered as
// preferred for the adapter kind (software or hardware), else the first registered.
//
// Per-call variants and the backward: F's `variant` option (e.g. F.conv2d(x, w, b, { variant:
// 'gemm' })) names a variant of the forward op, which must exist (else an error). The backward ops of
// that call (conv2d.backwardInput/backwardWeight, linear.*, convTranspose2d.*, bias.backward) are
// looked up with `getMatching(engine, variant)`: the variant of the same name where the backward op
// has one (the GEMM families register one per core under the same names for all their ops), else
// the backward op's automatic choice (e.g. conv2d's forward-only 'direct', or bias.backward).
//
// GEMM cores: the GEMM-based families register one variant per GemmCore with `registerPerCore`
// (src/kernels/matmul.ts), which hands the core to the implementation in a closure; the variant's
// name is only a label, so renaming one cannot change which kernel runs.
//
// Shape buckets: the fastest variant can depend on the shapes (conv1 of the seed CNN, 1 input channel,
// runs best on 'direct'; conv2/conv3 on a GEMM core), so tuned choices are keyed by (adapter, op,
// bucket). An op's `bucket(...args)` maps a call's arguments to a coarse key (e.g. log2-rounded GEMM
// sizes). Ops without one have the single bucket ALL_SHAPES.
// Side effect: the WGSL activation codes that lib/common.wgsl imports (see activation-codes.ts).
import './activation-codes.js';
import type { Engine } from '../gpu/engine.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type KernelFn = (...args: any[]) => any;

export type AdapterKind = 'software' | 'hardware';

export interface VariantInfo {
  name: string;
  description: string;
  /** Adapter kinds on which this variant is the default choice. */
  preferredOn: AdapterKind[];
}

export interface VariantOptions {
  description?: string;
  preferredOn?: AdapterKind[];
}

/** Maps a call's arguments to its shape bucket (a short, stable string). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type BucketFn = (...args: any[]) => string;

/** Validates a call's arguments; throws the error the caller sees (see the header comment). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type CheckFn = (...args: any[]) => void;

/** What an op declares besides its name: its argument check and its shape buckets. */
export interface OpSpec<F extends KernelFn> {
  check?: (...args: Parameters<F>) => void;
  bucket?: (...args: Parameters<F>) => string;
}

/** The bucket of every call of an op that has no bucket function. */
export const ALL_SHAPES = '*';

/** round(log2(n)) for n >= 1 (0 for smaller n): the coarse size in bucket keys. */
export function log2Bucket(n: number): number {
  return n >= 1 ? Math.round(Math.log2(n)) : 0;
}

interface Entry {
  info: VariantInfo;
  fn: KernelFn;
}

export class KernelRegistry {
  private readonly ops = new Map<string, Entry[]>();
  private readonly forced = new Map<string, string>();
  /** adapter key -> op -> shape bucket -> variant measured fastest there. */
  private readonly tuned = new Map<string, Map<string, Map<string, string>>>();
  private readonly buckets = new Map<string, BucketFn>();
  private readonly checks = new Map<string, CheckFn>();

  /** Declares op `name` with its check and bucket function; returns its typed descriptor. */
  define<F extends KernelFn>(name: string, spec: OpSpec<F> = {}): OpDescriptor<F> {
    if (spec.check) this.checks.set(name, spec.check);
    if (spec.bucket) this.buckets.set(name, spec.bucket);
    return new OpDescriptor<F>(name, this);
  }

  /** Adds (or replaces) variant `variant` of op `op`. Prefer the typed `OpDescriptor.register`. */
  register<F extends KernelFn>(op: string, variant: string, fn: F, options: VariantOptions = {}): F {
    let list = this.ops.get(op);
    if (!list) this.ops.set(op, (list = []));
    const existing = list.findIndex((e) => e.info.name === variant);
    const entry = {
      info: { name: variant, description: options.description ?? '', preferredOn: options.preferredOn ?? [] },
      fn,
    };
    if (existing >= 0) list[existing] = entry;
    else list.push(entry);
    return fn;
  }

  /** Every registered op name. */
  opNames(): string[] {
    return [...this.ops.keys()].sort();
  }

  /** The variant names of an op, in registration order. */
  variants(op: string): string[] {
    return this.entries(op).map((e) => e.info.name);
  }

  describe(op: string): VariantInfo[] {
    return this.entries(op).map((e) => e.info);
  }

  /** Forces `variant` for every later call of `op` (undefined restores automatic choice). */
  use(op: string, variant: string | undefined): void {
    if (variant === undefined) {
      this.forced.delete(op);
      return;
    }
    this.entry(op, variant);
    this.forced.set(op, variant);
  }

  /** Runs `fn` with `variant` forced for `op`, then restores the previous choice. */
  withVariant<T>(op: string, variant: string, fn: () => T): T {
    const previous = this.forced.get(op);
    this.use(op, variant);
    try {
      return fn();
    } finally {
      this.use(op, previous);
    }
  }

  /** Sets how calls of `op` map to shape buckets for tuned choices (ops declare it with `define`). */
  setBucket(op: string, fn: BucketFn): void {
    this.buckets.set(op, fn);
  }

  /** The shape bucket of a call of `op` with `args` (ALL_SHAPES for an op without a bucket function). */
  bucketOf(op: string, args: readonly unknown[]): string {
    const fn = this.buckets.get(op);
    return fn ? fn(...args) : ALL_SHAPES;
  }

  /** Runs op `op`'s check on a call's arguments (nothing for an op without one). */
  check(op: string, args: readonly unknown[]): void {
    this.checks.get(op)?.(...args);
  }

  /**
   * Records the variant measured fastest for calls of `op` in shape `bucket` (default ALL_SHAPES) on
   * the adapter identified by `adapterKey(engine)`.
   */
  setTuned(adapter: string, op: string, variant: string, bucket: string = ALL_SHAPES): void {
    this.entry(op, variant);
    let m = this.tuned.get(adapter);
    if (!m) this.tuned.set(adapter, (m = new Map()));
    let b = m.get(op);
    if (!b) m.set(op, (b = new Map()));
    b.set(bucket, variant);
  }

  /** The tuned choices of `op` on `adapter`: bucket -> variant. */
  tunedChoices(adapter: string, op: string): Record<string, string> {
    return Object.fromEntries(this.tuned.get(adapter)?.get(op) ?? []);
  }

  /** Forgets measured choices (all adapters, or one). */
  clearTuned(adapter?: string): void {
    if (adapter === undefined) this.tuned.clear();
    else this.tuned.delete(adapter);
  }

  /**
   * The name of the variant that a call without an explicit variant would run on `engine`; `args`
   * (the call's arguments) select the tuned choice of their shape bucket. Without `args`, only the
   * ALL_SHAPES choice of an op without a bucket function counts.
   */
  chosen(op: string, engine?: Engine, args?: readonly unknown[]): string {
    const forced = this.forced.get(op);
    if (forced) return forced;
    const list = this.entries(op);
    if (engine) {
      const tuned = this.tuned.get(adapterKey(engine))?.get(op);
      const bucket = args ? this.tryBucketOf(op, args) : this.buckets.has(op) ? undefined : ALL_SHAPES;
      const choice = bucket === undefined ? undefined : tuned?.get(bucket);
      if (choice) return choice;
      const kind = engine.info.software ? 'software' : 'hardware';
      const preferred = list.find((e) => e.info.preferredOn.includes(kind));
      if (preferred) return preferred.info.name;
    }
    return list[0].info.name;
  }

  /**
   * The kernel function for `op`: `variant` if given, else the automatic choice for `engine`. When
   * the op has tuned choices per shape bucket on this adapter, the result is a dispatcher that picks
   * the variant from the call's arguments. Either way the op's check runs first, once per call.
   * Untyped (the op is a string): typed code uses the op's descriptor (`OpDescriptor.get`).
   */
  get(op: string, engine?: Engine, variant?: string): KernelFn {
    const check = this.checks.get(op);
    if (variant === undefined && engine && !this.forced.has(op) && this.buckets.has(op) && this.tuned.get(adapterKey(engine))?.get(op)?.size) {
      return (...args: unknown[]) => {
        check?.(...args);
        return this.entry(op, this.chosen(op, engine, args)).fn(...args);
      };
    }
    const fn = this.entry(op, variant ?? this.chosen(op, engine)).fn;
    if (!check) return fn;
    return (...args: unknown[]) => {
      check(...args);
      return fn(...args);
    };
  }

  /** `get(op, engine, variant)` where `op` has `variant`, else its automatic choice (see the header). */
  getMatching(op: string, engine?: Engine, variant?: string): KernelFn {
    const has = variant !== undefined && this.entries(op).some((e) => e.info.name === variant);
    return this.get(op, engine, has ? variant : undefined);
  }

  /** bucketOf, or undefined for arguments it cannot read (the check then reports the bad input). */
  private tryBucketOf(op: string, args: readonly unknown[]): string | undefined {
    try {
      return this.bucketOf(op, args);
    } catch {
      return undefined;
    }
  }

  private entries(op: string): Entry[] {
    const list = this.ops.get(op);
    if (!list?.length) throw new Error(`wgsl-nn: no kernel registered for op '${op}' (known: ${this.opNames().join(', ')})`);
    return list;
  }

  private entry(op: string, variant: string): Entry {
    const e = this.entries(op).find((x) => x.info.name === variant);
    if (!e) throw new Error(`wgsl-nn: op '${op}' has no variant '${variant}' (has: ${this.variants(op).join(', ')})`);
    return e;
  }
}

/**
 * One op of a registry, typed by its kernel signature F: registration and lookup through it need no
 * casts. Made by `defineOp` (or `KernelRegistry.define`); the methods forward to the registry by name.
 */
export class OpDescriptor<F extends KernelFn> {
  constructor(
    readonly name: string,
    readonly registry: KernelRegistry,
  ) {}

  /** Adds (or replaces) a variant of this op; returns `fn`. */
  register(variant: string, fn: F, options: VariantOptions = {}): F {
    return this.registry.register(this.name, variant, fn, options);
  }

  /** The function that runs this op: `variant` if given (it must exist), else the automatic choice. */
  get(engine?: Engine, variant?: string): F {
    return this.registry.get(this.name, engine, variant) as F;
  }

  /** Like get, but a `variant` this op does not have means its automatic choice (F's backward rule). */
  getMatching(engine?: Engine, variant?: string): F {
    return this.registry.getMatching(this.name, engine, variant) as F;
  }

  /** The variant names of this op, in registration order. */
  variants(): string[] {
    return this.registry.variants(this.name);
  }

  describe(): VariantInfo[] {
    return this.registry.describe(this.name);
  }

  /** The variant a call with `args` and no explicit variant would run on `engine`. */
  chosen(engine?: Engine, args?: Parameters<F>): string {
    return this.registry.chosen(this.name, engine, args);
  }

  /** The shape bucket of a call with `args`. */
  bucketOf(args: Parameters<F>): string {
    return this.registry.bucketOf(this.name, args);
  }

  /** Forces `variant` for every later call (undefined restores automatic choice). */
  use(variant: string | undefined): void {
    this.registry.use(this.name, variant);
  }

  /** Runs `fn` with `variant` forced for this op, then restores the previous choice. */
  withVariant<T>(variant: string, fn: () => T): T {
    return this.registry.withVariant(this.name, variant, fn);
  }
}

/** Identifies an adapter (and driver) for measured variant choices. */
export function adapterKey(engine: Engine): string {
  const i = engine.info;
  return `${i.vendor}|${i.architecture}|${i.device}|${i.description}|${i.backend}`;
}

/** The process-wide registry that F, nn, the tests and the benchmarks use. */
export const kernels = new KernelRegistry();

/** Declares an op of the process-wide registry (see the header comment). */
export function defineOp<F extends KernelFn>(name: string, spec: OpSpec<F> = {}): OpDescriptor<F> {
  return kernels.define<F>(name, spec);
}

/**
 * Variants forced from the environment, e.g. WGSL_NN_KERNELS="conv2d.forward=direct,matmul=tiled",
 * for experiments and benchmarks without code changes. Applied when the kernel is first looked up
 * (after every family has registered).
 */
export function applyKernelEnv(spec = process.env.WGSL_NN_KERNELS ?? ''): void {
  for (const part of spec.split(',').map((s) => s.trim()).filter(Boolean)) {
    const [op, variant] = part.split('=');
    if (!op || !variant) throw new Error(`wgsl-nn: WGSL_NN_KERNELS entry '${part}' is not op=variant`);
    kernels.use(op, variant);
  }
}
