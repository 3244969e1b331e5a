// optim: Adam and SGD as in torch.optim, updating parameters in place on the GPU.
//
// stateDict()/loadStateDict() carry everything a step depends on (hyperparameters, Adam's step count,
// the moment / momentum buffers bit for bit), so an optimizer restored into a fresh instance over
// the same parameters continues exactly as the original would have (checkpoint resume).
import { shapeString, type DeviceTensor } from '../gpu/device-tensor.js';
import { ShapeError, WgslNnError } from '../gpu/errors.js';
import { optimAdamMultiOp, optimSgdOp } from '../kernels/optim.js';
import type { StateDict } from './modules.js';
import type { Tensor } from './tensor.js';

/** An optimizer's state: JSON-serialisable hyperparameters and counters, plus host copies of its buffers. */
export interface OptimizerState {
  /** The optimizer class that wrote it; loading into another class is an error. */
  type: 'Adam' | 'SGD';
  /** Number of parameters of the optimizer that wrote it (buffers are keyed by parameter index). */
  paramCount: number;
  /** Hyperparameters and counters (Adam: lr, betas, eps, weightDecay, step; SGD: lr, momentum, ...). */
  hyper: Record<string, number | boolean | number[]>;
  /** Per-parameter buffers named '<parameter index>.<buffer>' with PyTorch's buffer names (exp_avg, exp_avg_sq, momentum_buffer). */
  buffers: StateDict;
}

export abstract class Optimizer {
  abstract lr: number;

  constructor(readonly params: Tensor[]) {}

  /** Drops the gradients (torch's zero_grad(set_to_none=True)). */
  zeroGrad(): void {
    for (const p of this.params) {
      p.grad?.dispose();
      p.grad = null;
    }
  }

  abstract step(): void;

  /** Hyperparameters, counters and buffers, read back from the GPU. */
  abstract stateDict(): Promise<OptimizerState>;

  /** Restores a stateDict() into this optimizer (same parameter count and shapes); replaces its hyperparameters, as torch does. */
  abstract loadStateDict(state: OptimizerState): void;

  /** Releases the optimizer's state buffers. */
  abstract dispose(): void;

  /** Host copies of per-parameter buffers, keyed '<parameter index>.<name>' (read back concurrently). */
  protected async readBuffers(entries: [index: number, name: string, buffer: DeviceTensor][]): Promise<StateDict> {
    const data = await Promise.all(entries.map(([, , b]) => b.toArray()));
    const out: StateDict = {};
    entries.forEach(([i, name, b], k) => (out[`${i}.${name}`] = { shape: [...b.shape], dtype: 'F32', data: data[k] as Float32Array }));
    return out;
  }

  /** Checks the state's class and parameter count; returns, per parameter index, its buffers by suffix. */
  protected checkState(state: OptimizerState, type: OptimizerState['type'], suffixes: string[]): Map<number, Map<string, Float32Array>> {
    if (state.type !== type) throw new WgslNnError(`${type}.loadStateDict: the state was written by ${state.type}`);
    if (state.paramCount !== this.params.length)
      throw new WgslNnError(`${type}.loadStateDict: the state is for ${state.paramCount} parameters, this optimizer has ${this.params.length}`);
    const out = new Map<number, Map<string, Float32Array>>();
    for (const [key, entry] of Object.entries(state.buffers)) {
      const dot = key.indexOf('.');
      const index = Number(key.slice(0, dot));
      const suffix = key.slice(dot + 1);
      const p = this.params[index];
      if (dot < 1 || !Number.isInteger(index) || !p || !suffixes.includes(suffix))
        throw new WgslNnError(`${type}.loadStateDict: unexpected buffer '${key}'`);
      if (entry.dtype !== 'F32') throw new WgslNnError(`${type}.loadStateDict: '${key}' must be F32, got ${entry.dtype}`);
      if (entry.shape.length !== p.shape.length || entry.shape.some((d, j) => d !== p.shape[j]))
        throw new ShapeError(`${type}.loadStateDict: '${key}' has shape ${shapeString(entry.shape)}, parameter ${index} has ${shapeString(p.shape)}`);
      if (!out.has(index)) out.set(index, new Map());
      out.get(index)!.set(suffix, entry.data as Float32Array);
    }
    return out;
  }
}

export interface AdamOptions {
  lr?: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
}

/** Where a parameter's moments live in Adam's flat state: block (a pair of buffers) and first element. */
interface StateSlot {
  block: number;
  offset: number;
}

/**
 * torch.optim.Adam. The moments of all parameters live in flat state buffers (blocks of at most one
 * storage binding each) so that a step updates several parameters per dispatch (optim.adamMulti in
 * src/kernels/optim.ts, bit-identical to the per-parameter kernel). As in PyTorch, a parameter gets
 * state (zero moments) at its first step with a gradient; stateDict() holds only those.
 */
export class Adam extends Optimizer {
  lr: number;
  betas: [number, number];
  eps: number;
  weightDecay: number;
  stepCount = 0;
  /** Flat moment buffers, made at the first step (or load) for all parameters; undefined before that and after dispose(). */
  private blocks: { m: DeviceTensor; v: DeviceTensor }[] | undefined;
  private readonly slots = new Map<Tensor, StateSlot>();
  /** Parameters that have state (had a gradient, or were loaded). */
  private readonly started = new Set<Tensor>();
  /** moments() views, kept until dispose(). */
  private readonly views = new Map<Tensor, { m: DeviceTensor; v: DeviceTensor }>();

  constructor(params: Tensor[], options: AdamOptions = {}) {
    super(params);
    this.lr = options.lr ?? 1e-3;
    this.betas = options.betas ?? [0.9, 0.999];
    this.eps = options.eps ?? 1e-8;
    this.weightDecay = options.weightDecay ?? 0;
  }

  /** Makes the zeroed flat state of every parameter (once). */
  private state(): { m: DeviceTensor; v: DeviceTensor }[] {
    if (this.blocks) return this.blocks;
    const e = this.params[0].engine;
    // A block holds what one storage binding can; a larger parameter gets a block of its own.
    const capacity = Math.floor(e.limits.maxStorageBufferBindingSize / 4);
    const sizes: number[] = [];
    // Each parameter's moments start at a multiple of 4 elements, so the kernel can update them as vec4s.
    const align4 = (n: number) => Math.ceil(n / 4) * 4;
    for (const p of this.params) {
      if (this.slots.has(p)) continue;
      const last = sizes.length - 1;
      const offset = last >= 0 ? align4(sizes[last]) : 0;
      if (last >= 0 && offset + p.size <= capacity) {
        this.slots.set(p, { block: last, offset });
        sizes[last] = offset + p.size;
      } else {
        this.slots.set(p, { block: sizes.length, offset: 0 });
        sizes.push(p.size);
      }
    }
    this.blocks = sizes.map((n) => ({ m: e.zeros([Math.max(n, 1)]), v: e.zeros([Math.max(n, 1)]) }));
    return this.blocks;
  }

  step(): void {
    this.stepCount++;
    const withGrad = [...new Set(this.params.filter((p) => p.grad))];
    if (withGrad.length === 0) return;
    const blocks = this.state();
    const adam = optimAdamMultiOp.get(withGrad[0].engine);
    const hyper = {
      lr: this.lr,
      beta1: this.betas[0],
      beta2: this.betas[1],
      eps: this.eps,
      weightDecay: this.weightDecay,
      step: this.stepCount,
    };
    blocks.forEach((b, index) => {
      const items = withGrad
        .filter((p) => this.slots.get(p)!.block === index)
        .map((p) => ({ param: p.value, grad: p.grad!.value, offset: this.slots.get(p)!.offset }));
      if (items.length) adam(items, b.m, b.v, hyper);
    });
    for (const p of withGrad) this.started.add(p);
  }

  /** The views of a parameter's moments in the flat state (made once, owned by the optimizer). */
  private momentViews(p: Tensor): { m: DeviceTensor; v: DeviceTensor } {
    let view = this.views.get(p);
    if (!view) {
      const b = this.state()[this.slots.get(p)!.block];
      const offset = this.slots.get(p)!.offset;
      view = { m: b.m.view(offset, p.shape), v: b.v.view(offset, p.shape) };
      this.views.set(p, view);
    }
    return view;
  }

  /** First and second moment estimates of a parameter (for tests and checkpoints): views owned by the optimizer. */
  moments(p: Tensor): { m: DeviceTensor; v: DeviceTensor } | undefined {
    return this.started.has(p) ? this.momentViews(p) : undefined;
  }

  /** Restores a parameter's moment estimates (checkpoint resume); takes ownership of m and v (copied into the state, then released). */
  setMoments(p: Tensor, m: DeviceTensor, v: DeviceTensor): void {
    if (!this.params.includes(p)) throw new WgslNnError('Adam.setMoments: not a parameter of this optimizer');
    for (const [name, t] of [['m', m], ['v', v]] as const)
      if (t.size !== p.size) throw new ShapeError(`Adam.setMoments: ${name} ${shapeString(t.shape)} does not match parameter ${shapeString(p.shape)}`);
    const view = this.momentViews(p);
    p.engine.copy(m, view.m);
    p.engine.copy(v, view.v);
    m.dispose();
    v.dispose();
    this.started.add(p);
  }

  async stateDict(): Promise<OptimizerState> {
    const entries: [number, string, DeviceTensor][] = [];
    for (const [i, p] of this.params.entries()) {
      const s = this.moments(p);
      if (s) entries.push([i, 'exp_avg', s.m], [i, 'exp_avg_sq', s.v]);
    }
    const buffers = await this.readBuffers(entries);
    return {
      type: 'Adam',
      paramCount: this.params.length,
      hyper: { lr: this.lr, betas: [...this.betas], eps: this.eps, weightDecay: this.weightDecay, step: this.stepCount },
      buffers,
    };
  }

  loadStateDict(state: OptimizerState): void {
    const perParam = this.checkState(state, 'Adam', ['exp_avg', 'exp_avg_sq']);
    for (const [index, b] of perParam)
      if (!b.has('exp_avg') || !b.has('exp_avg_sq')) throw new WgslNnError(`Adam.loadStateDict: parameter ${index} has only one of exp_avg, exp_avg_sq`);
    const h = state.hyper;
    this.dispose();
    for (const [index, b] of perParam) {
      const p = this.params[index];
      this.setMoments(p, p.engine.fromArray(b.get('exp_avg')!, p.shape), p.engine.fromArray(b.get('exp_avg_sq')!, p.shape));
    }
    this.lr = h.lr as number;
    this.betas = [...(h.betas as [number, number])];
    this.eps = h.eps as number;
    this.weightDecay = h.weightDecay as number;
    this.stepCount = h.step as number;
  }

  dispose(): void {
    for (const view of this.views.values()) {
      view.m.dispose();
      view.v.dispose();
    }
    this.views.clear();
    for (const b of this.blocks ?? []) {
      b.m.dispose();
      b.v.dispose();
    }
    this.blocks = undefined;
    this.slots.clear();
    this.started.clear();
  }
}

export interface SgdOptions {
  lr: number;
  momentum?: number;
  dampening?: number;
  weightDecay?: number;
  nesterov?: boolean;
}

export class SGD extends Optimizer {
  lr: number;
  /** A copy of the constructor's options (loadStateDict replaces its fields; `lr` above is the live rate). */
  readonly options: SgdOptions;
  private readonly velocity = new Map<Tensor, DeviceTensor>();

  constructor(params: Tensor[], options: SgdOptions) {
    super(params);
    this.options = { ...options };
    this.lr = options.lr;
  }

  step(): void {
    const sgd = optimSgdOp.get(this.params[0]?.engine);
    const momentum = this.options.momentum ?? 0;
    for (const p of this.params) {
      if (!p.grad) continue;
      let buf = this.velocity.get(p) ?? null;
      const firstStep = momentum !== 0 && !buf;
      if (momentum !== 0 && !buf) this.velocity.set(p, (buf = p.engine.zeros(p.shape)));
      sgd(p.value, p.grad.value, buf, {
        lr: this.lr,
        momentum,
        dampening: this.options.dampening ?? 0,
        weightDecay: this.options.weightDecay ?? 0,
        nesterov: this.options.nesterov ?? false,
        firstStep,
      });
    }
  }

  async stateDict(): Promise<OptimizerState> {
    const entries: [number, string, DeviceTensor][] = [];
    for (const [i, p] of this.params.entries()) {
      const v = this.velocity.get(p);
      if (v) entries.push([i, 'momentum_buffer', v]);
    }
    const buffers = await this.readBuffers(entries);
    const o = this.options;
    return {
      type: 'SGD',
      paramCount: this.params.length,
      hyper: { lr: this.lr, momentum: o.momentum ?? 0, dampening: o.dampening ?? 0, weightDecay: o.weightDecay ?? 0, nesterov: o.nesterov ?? false },
      buffers,
    };
  }

  loadStateDict(state: OptimizerState): void {
    const perParam = this.checkState(state, 'SGD', ['momentum_buffer']);
    const h = state.hyper;
    this.dispose();
    for (const [index, b] of perParam) {
      const p = this.params[index];
      this.velocity.set(p, p.engine.fromArray(b.get('momentum_buffer')!, p.shape));
    }
    this.lr = h.lr as number;
    Object.assign(this.options, {
      lr: h.lr as number,
      momentum: h.momentum as number,
      dampening: h.dampening as number,
      weightDecay: h.weightDecay as number,
      nesterov: h.nesterov as boolean,
    });
  }

  dispose(): void {
    for (const v of this.velocity.values()) v.dispose();
    this.velocity.clear();
  }
}
