// The kernel registry: every op's forward and backward kernels are looked up here by name.
//
// An op (e.g. 'conv2d.forward') has one or more variants (e.g. 'direct', 'gemm'), all with the same
// signature. Registering a variant is the only step needed for:
//   - the test suite to check it against the CPU reference (tests iterate `variants(op)`), and
//   - the benchmarks to time it beside the others (bench/ iterates the same list).
// Which variant runs: the `variant` given for one call, else one forced with `use()`/`withVariant()`,
// else one measured fastest on this adapter (`setTuned`, filled by src/kernels/autotune.ts from a
// cache), else the variant registered as preferred for the adapter kind (software or hardware), else
// the first registered.
import type { Engine } from '../gpu/engine.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type KernelFn = (...args: any[]) => any;

export interface VariantInfo {
  name: string;
  description: string;
  /** Adapter kinds on which this variant is the default choice. */
  preferredOn: ('software' | 'hardware')[];
}

interface Entry {
  info: VariantInfo;
  fn: KernelFn;
}

export class KernelRegistry {
  private readonly ops = new Map<string, Entry[]>();
  private readonly forced = new Map<string, string>();
  /** adapter key -> op -> variant measured fastest there. */
  private readonly tuned = new Map<string, Map<string, string>>();

  register<F extends KernelFn>(
    op: string,
    variant: string,
    fn: F,
    options: { description?: string; preferredOn?: ('software' | 'hardware')[] } = {},
  ): F {
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

  /** Records the variant measured fastest for `op` on the adapter identified by `adapterKey(engine)`. */
  setTuned(adapter: string, op: string, variant: string): void {
    this.entry(op, variant);
    let m = this.tuned.get(adapter);
    if (!m) this.tuned.set(adapter, (m = new Map()));
    m.set(op, variant);
  }

  /** Forgets measured choices (all adapters, or one). */
  clearTuned(adapter?: string): void {
    if (adapter === undefined) this.tuned.clear();
    else this.tuned.delete(adapter);
  }

  /** The name of the variant that a call without an explicit variant would run on `engine`. */
  chosen(op: string, engine?: Engine): string {
    const forced = this.forced.get(op);
    if (forced) return forced;
    const list = this.entries(op);
    if (engine) {
      const tuned = this.tuned.get(adapterKey(engine))?.get(op);
      if (tuned) return tuned;
      const kind = engine.info.software ? 'software' : 'hardware';
      const preferred = list.find((e) => e.info.preferredOn.includes(kind));
      if (preferred) return preferred.info.name;
    }
    return list[0].info.name;
  }

  /** The kernel function for `op`: `variant` if given, else the automatic choice for `engine`. */
  get<F extends KernelFn = KernelFn>(op: string, engine?: Engine, variant?: string): F {
    return this.entry(op, variant ?? this.chosen(op, engine)).fn as F;
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

/** Identifies an adapter (and driver) for measured variant choices. */
export function adapterKey(engine: Engine): string {
  const i = engine.info;
  return `${i.vendor}|${i.architecture}|${i.device}|${i.description}|${i.backend}`;
}

/** The process-wide registry that F, nn, the tests and the benchmarks use. */
export const kernels = new KernelRegistry();

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
