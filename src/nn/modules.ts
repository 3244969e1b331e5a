// nn: modules with PyTorch's constructor arguments, parameter names and default initialisations.
import { Engine } from '../gpu/engine.js';
import { shapeString, type DeviceTensor } from '../gpu/device-tensor.js';
import { ShapeError, WgslNnError } from '../gpu/errors.js';
import type { Activation } from '../kernels/activation.js';
import * as F from './functional.js';
import { globalRng } from './seed.js';
import { fromHalfBits } from './half.js';
import { Tensor, noGrad } from './tensor.js';

export interface ModuleOptions {
  /** Engine holding the parameters (default: Engine.default). */
  engine?: Engine;
}

/**
 * Host copy of one state-dict entry (PyTorch's num_batches_tracked is the only I64). F16 (half patterns) only
 * where a module stores a large buffer at half precision (a feature memory's bank); loading widens it to F32.
 */
export interface StateEntry {
  shape: number[];
  dtype: 'F32' | 'I64' | 'F16';
  data: Float32Array | BigInt64Array | Uint16Array;
}
export type StateDict = Record<string, StateEntry>;

/**
 * A parameter computed from other tensors at every forward, as torch's weight hooks (spectral_norm):
 * the module's forward uses `compute(training)` in place of the parameter of that name.
 */
export interface WeightReparametrization {
  compute(training: boolean): Tensor;
}

export abstract class Module {
  training = true;
  private readonly _params = new Map<string, Tensor>();
  private readonly _buffers = new Map<string, Tensor>();
  private readonly _children = new Map<string, Module>();
  private readonly _reparametrized = new Map<string, WeightReparametrization>();

  abstract forward(x: Tensor): Tensor;

  /** Calls forward (as torch's module(x)). */
  call(x: Tensor): Tensor {
    return this.forward(x);
  }

  protected registerParameter(name: string, t: Tensor): Tensor {
    t.requiresGrad = true;
    t.engine.keep(t);
    this._params.set(name, t);
    return t;
  }

  protected registerBuffer(name: string, t: Tensor): Tensor {
    t.engine.keep(t);
    this._buffers.set(name, t);
    return t;
  }

  protected registerModule<M extends Module>(name: string, m: M): M {
    this._children.set(name, m);
    return m;
  }

  /** The tensor a forward uses for parameter `name`: `t` itself, or its reparametrised value. */
  protected effectiveParameter(name: string, t: Tensor): Tensor {
    return this._reparametrized.get(name)?.compute(this.training) ?? t;
  }

  /** The reparametrisation of parameter `name` (see spectralNorm), if any. */
  reparametrization(name: string): WeightReparametrization | null {
    return this._reparametrized.get(name) ?? null;
  }

  /**
   * @internal Reparametrises parameter `name` as torch's hooks do: the parameter is re-registered as
   * `${name}_orig` after the other parameters (torch deletes and re-adds it, so state_dict lists it last),
   * `buffers` are registered in order, and forward uses `r.compute()` from then on.
   */
  reparametrize(name: string, r: WeightReparametrization, buffers: [string, Tensor][]): void {
    const t = this._params.get(name);
    if (!t) throw new WgslNnError(`reparametrize: the module has no parameter '${name}'`);
    if (this._reparametrized.has(name)) throw new WgslNnError(`reparametrize: parameter '${name}' is already reparametrised`);
    this._params.delete(name);
    this._params.set(`${name}_orig`, t);
    for (const [n, b] of buffers) this.registerBuffer(n, b);
    this._reparametrized.set(name, r);
  }

  children(): Module[] {
    return [...this._children.values()];
  }

  namedParameters(prefix = ''): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [n, t] of this._params) out.push([prefix + n, t]);
    for (const [n, c] of this._children) out.push(...c.namedParameters(`${prefix}${n}.`));
    return out;
  }

  parameters(): Tensor[] {
    return this.namedParameters().map(([, t]) => t);
  }

  namedBuffers(prefix = ''): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [n, t] of this._buffers) out.push([prefix + n, t]);
    for (const [n, c] of this._children) out.push(...c.namedBuffers(`${prefix}${n}.`));
    return out;
  }

  /** Extra non-tensor state entries (BatchNorm's num_batches_tracked). */
  protected extraState(): Record<string, StateEntry> {
    return {};
  }
  protected loadExtraState(_name: string, _entry: StateEntry): boolean {
    return false;
  }

  private namedExtra(prefix = ''): [string, Module, string][] {
    const out: [string, Module, string][] = Object.keys(this.extraState()).map((k) => [prefix + k, this, k]);
    for (const [n, c] of this._children) out.push(...c.namedExtra(`${prefix}${n}.`));
    return out;
  }

  train(mode = true): this {
    this.training = mode;
    for (const c of this._children.values()) c.train(mode);
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /** Parameters and buffers, read back from the GPU, in PyTorch's names and order. */
  async stateDict(): Promise<StateDict> {
    const out: StateDict = {};
    const ordered = this.stateOrder();
    for (const [name, t] of ordered) {
      if (t instanceof Tensor) out[name] = { shape: [...t.shape], dtype: 'F32', data: (await t.toArray()) as Float32Array };
      else out[name] = t;
    }
    return out;
  }

  /** Entries in PyTorch's state_dict order: per module, parameters, then buffers, then children. */
  private stateOrder(prefix = ''): [string, Tensor | StateEntry][] {
    const out: [string, Tensor | StateEntry][] = [];
    for (const [n, t] of this._params) out.push([prefix + n, t]);
    for (const [n, t] of this._buffers) out.push([prefix + n, t]);
    for (const [n, e] of Object.entries(this.extraState())) out.push([prefix + n, e]);
    for (const [n, c] of this._children) out.push(...c.stateOrder(`${prefix}${n}.`));
    return out;
  }

  /**
   * Copies values into the parameters and buffers (tensor objects keep their identity, so an
   * optimizer built on them stays valid). With `strict`, missing or unexpected names are an error.
   */
  loadStateDict(state: StateDict, strict = true): void {
    const targets = new Map<string, Tensor>([...this.namedParameters(), ...this.namedBuffers()]);
    const extras = new Map(this.namedExtra().map(([full, m, local]) => [full, { m, local }]));
    const missing = [...targets.keys(), ...extras.keys()].filter((n) => !(n in state));
    const unexpected = Object.keys(state).filter((n) => !targets.has(n) && !extras.has(n));
    if (strict && (missing.length || unexpected.length))
      throw new WgslNnError(
        `loadStateDict: ${missing.length ? `missing keys: ${missing.join(', ')}` : ''}${missing.length && unexpected.length ? '; ' : ''}${unexpected.length ? `unexpected keys: ${unexpected.join(', ')}` : ''}`,
      );
    for (const [name, entry] of Object.entries(state)) {
      const t = targets.get(name);
      if (t) {
        if (entry.shape.length !== t.shape.length || entry.shape.some((d, i) => d !== t.shape[i]))
          throw new ShapeError(`loadStateDict: '${name}' has shape ${shapeString(entry.shape)}, the model expects ${shapeString(t.shape)}`);
        if (entry.dtype !== 'F32' && entry.dtype !== 'F16') throw new WgslNnError(`loadStateDict: '${name}' must be F32 (or F16), got ${entry.dtype}`);
        t.setValue(t.engine.fromArray(entry.dtype === 'F16' ? fromHalfBits(entry.data as Uint16Array) : (entry.data as Float32Array), t.shape));
      } else {
        const x = extras.get(name);
        if (x) x.m.loadExtraState(x.local, entry);
      }
    }
  }

  /** Releases the parameters' and buffers' GPU memory. */
  dispose(): void {
    for (const t of this._params.values()) t.dispose();
    for (const t of this._buffers.values()) t.dispose();
    for (const c of this._children.values()) c.dispose();
  }
}

function engineOf(o?: ModuleOptions): Engine {
  return o?.engine ?? Engine.default;
}

/** U(-bound, bound) values from the global seeded generator (manualSeed). */
function uniformParam(engine: Engine, shape: number[], bound: number): Tensor {
  const rng = globalRng();
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = rng.uniform(-bound, bound);
  return new Tensor(engine.fromArray(data, shape), { track: false });
}

type Pair = number | [number, number];

// PyTorch's default init for Conv/Linear: kaiming_uniform_(a=√5) on the weight, i.e. U(±1/√fan_in),
// and U(±1/√fan_in) on the bias, with fan_in = weight.shape[1] * kH * kW.

type ConvModuleOptions = ModuleOptions & { stride?: Pair; padding?: Pair; bias?: boolean };

/** What Conv2d and ConvTranspose2d share: hyper-parameters, weight and bias creation. */
abstract class ConvModule extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  readonly stride: Pair;
  readonly padding: Pair;

  /** `weightShape` from (kH, kW); `fanIn` as torch computes it for this weight layout. */
  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    readonly kernelSize: Pair,
    options: ConvModuleOptions,
    weightShape: (kh: number, kw: number) => number[],
    fanIn: (kh: number, kw: number) => number,
  ) {
    super();
    const e = engineOf(options);
    const [kh, kw] = typeof kernelSize === 'number' ? [kernelSize, kernelSize] : kernelSize;
    this.stride = options.stride ?? 1;
    this.padding = options.padding ?? 0;
    const bound = 1 / Math.sqrt(fanIn(kh, kw));
    this.weight = this.registerParameter('weight', uniformParam(e, weightShape(kh, kw), bound));
    this.bias = options.bias === false ? null : this.registerParameter('bias', uniformParam(e, [outChannels], bound));
  }

  abstract override forward(x: Tensor, activation?: Activation, slope?: number): Tensor;
}

/** Weight [out, in, kH, kW] (OIHW); fan_in = in * kH * kW. */
export class Conv2d extends ConvModule {
  constructor(inChannels: number, outChannels: number, kernelSize: Pair, options: ConvModuleOptions = {}) {
    super(inChannels, outChannels, kernelSize, options, (kh, kw) => [outChannels, inChannels, kh, kw], (kh, kw) => inChannels * kh * kw);
  }

  forward(x: Tensor, activation?: Activation, slope?: number): Tensor {
    return F.conv2d(x, this.effectiveParameter('weight', this.weight), this.bias, { stride: this.stride, padding: this.padding, activation, slope });
  }
}

/** Weight [in, out, kH, kW] (PyTorch's layout); torch's fan_in for it is out * kH * kW. */
export class ConvTranspose2d extends ConvModule {
  constructor(inChannels: number, outChannels: number, kernelSize: Pair, options: ConvModuleOptions = {}) {
    super(inChannels, outChannels, kernelSize, options, (kh, kw) => [inChannels, outChannels, kh, kw], (kh, kw) => outChannels * kh * kw);
  }

  forward(x: Tensor, activation?: Activation, slope?: number): Tensor {
    return F.convTranspose2d(x, this.effectiveParameter('weight', this.weight), this.bias, { stride: this.stride, padding: this.padding, activation, slope });
  }
}

export class Linear extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;

  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    options: ModuleOptions & { bias?: boolean } = {},
  ) {
    super();
    const e = engineOf(options);
    const bound = 1 / Math.sqrt(inFeatures);
    this.weight = this.registerParameter('weight', uniformParam(e, [outFeatures, inFeatures], bound));
    this.bias = options.bias === false ? null : this.registerParameter('bias', uniformParam(e, [outFeatures], bound));
  }

  forward(x: Tensor, activation?: Activation, slope?: number): Tensor {
    return F.linear(x, this.effectiveParameter('weight', this.weight), this.bias, { activation, slope });
  }
}

// ------------------------------------------------------------------ spectral normalisation

export interface SpectralNormOptions {
  /** Power-iteration steps per training forward (torch's n_power_iterations, default 1). */
  nPowerIterations?: number;
  /** Guard of the normalisations (torch's eps, default 1e-12). */
  eps?: number;
}

/**
 * Spectral normalisation of a weight (Miyato et al. 2018), as torch.nn.utils.spectral_norm with dim=0:
 * W is viewed as the matrix [out, rest] and the forward uses W / sigma, sigma = uᵀ W v, where u [out] and
 * v [rest] estimate the top singular vectors. In training each forward first runs `nPowerIterations`
 * steps v = normalize(Wᵀu), u = normalize(W v) without gradient and stores them in the buffers; in eval
 * the stored u and v are used as they are. The gradient flows through W and sigma with u and v constant,
 * as in torch.
 */
export class SpectralNorm implements WeightReparametrization {
  constructor(
    /** The raw weight (state-dict name `weight_orig`). */
    readonly weight: Tensor,
    /** Left singular vector estimate [rows] (`weight_u`). */
    readonly u: Tensor,
    /** Right singular vector estimate [cols] (`weight_v`). */
    readonly v: Tensor,
    readonly nPowerIterations: number,
    readonly eps: number,
  ) {}

  /** Runs `steps` power-iteration steps on the current weight and stores the new u and v (no gradient). */
  powerIteration(steps = this.nPowerIterations): void {
    if (steps <= 0) return;
    const r = noGrad(() => F.spectralNormalize(this.weight, this.u, this.v, { steps, eps: this.eps }));
    r.weight.dispose();
    r.sigma.dispose();
    this.store(r.u, r.v);
  }

  /** sigma = uᵀ W v (0-d) with the stored u and v (no gradient; compute() differentiates through it). */
  sigma(): Tensor {
    const r = noGrad(() => F.spectralNormalize(this.weight, this.u, this.v, { steps: 0, eps: this.eps }));
    for (const t of [r.weight, r.u, r.v]) t.dispose();
    return new Tensor(r.sigma, { track: false });
  }

  /** W / sigma: in training after `nPowerIterations` power steps (whose u and v are then stored). */
  compute(training: boolean): Tensor {
    const steps = training ? this.nPowerIterations : 0;
    const r = F.spectralNormalize(this.weight, this.u, this.v, { steps, eps: this.eps });
    r.sigma.dispose();
    if (steps > 0) this.store(r.u, r.v);
    else {
      r.u.dispose();
      r.v.dispose();
    }
    return r.weight;
  }

  // The buffers get new storage rather than an in-place write, so a graph recorded by an earlier
  // forward keeps the u and v it used (torch clones them for the same reason).
  private store(u: DeviceTensor, v: DeviceTensor): void {
    this.u.setValue(u.reshape(this.u.shape));
    this.v.setValue(v.reshape(this.v.shape));
    u.dispose();
    v.dispose();
  }
}

/** N(0,1) values from the global seeded generator, normalised to unit length (torch's u and v init). */
function unitNormal(engine: Engine, n: number, eps: number): Tensor {
  const rng = globalRng();
  const x = new Float64Array(n);
  let squares = 0;
  for (let i = 0; i < n; i++) squares += (x[i] = rng.normal()) ** 2;
  const norm = Math.max(Math.sqrt(squares), eps);
  return new Tensor(engine.fromArray(Float32Array.from(x, (a) => a / norm), [n]), { track: false });
}

/**
 * Applies spectral normalisation to the weight of a Conv2d or Linear in place, as
 * torch.nn.utils.spectral_norm(module) (dim=0): the state dict then holds `bias`, `weight_orig`,
 * `weight_u`, `weight_v` (torch's names and order), so it loads into a torch module with
 * spectral_norm applied, strictly. u and v start as normalised N(0,1) draws of the global generator.
 * ConvTranspose2d is refused: torch normalises it along dim=1, which needs a transpose F lacks.
 */
export function spectralNorm<M extends Conv2d | Linear>(module: M, options: SpectralNormOptions = {}): M {
  if (!(module instanceof Conv2d || module instanceof Linear))
    throw new WgslNnError(`spectralNorm: only Conv2d and Linear weights are supported, got ${(module as object).constructor.name}`);
  const steps = options.nPowerIterations ?? 1;
  const eps = options.eps ?? 1e-12;
  if (!Number.isInteger(steps) || steps < 0) throw new WgslNnError(`spectralNorm: nPowerIterations must be an integer >= 0, got ${steps}`);
  if (!(eps > 0) || !Number.isFinite(eps)) throw new WgslNnError(`spectralNorm: eps must be a finite number > 0, got ${eps}`);
  if (module.reparametrization('weight')) throw new WgslNnError('spectralNorm: the weight is already reparametrised (spectral norm applied twice?)');
  const w = module.weight;
  const rows = w.shape[0];
  const u = unitNormal(w.engine, rows, eps);
  const v = unitNormal(w.engine, w.size / rows, eps);
  module.reparametrize('weight', new SpectralNorm(w, u, v, steps, eps), [
    ['weight_u', u],
    ['weight_v', v],
  ]);
  return module;
}

/** The spectral normalisation of a module's weight, if spectralNorm was applied to it. */
export function spectralNormOf(module: Module): SpectralNorm | null {
  const r = module.reparametrization('weight');
  return r instanceof SpectralNorm ? r : null;
}

export class MaxPool2d extends Module {
  constructor(
    readonly kernelSize: Pair,
    readonly stride?: Pair,
  ) {
    super();
  }
  /** With `relu`, the pool of a ReLU'd x: relu(pool(x)), folded into the pool's kernels (F.maxPool2d). */
  forward(x: Tensor, relu = false): Tensor {
    return F.maxPool2d(x, { kernelSize: this.kernelSize, stride: this.stride ?? this.kernelSize, relu });
  }
}

export class BatchNorm2d extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor;
  readonly runningMean: Tensor;
  readonly runningVar: Tensor;
  numBatchesTracked = 0;
  /**
   * Weight of a training batch's statistics in the running ones (torch's `momentum`, default 0.1); null:
   * their cumulative average, 1 / numBatchesTracked (torch's momentum=None), as standingStatistics uses.
   */
  momentum: number | null;

  constructor(
    readonly numFeatures: number,
    readonly options: ModuleOptions & { eps?: number; momentum?: number; affine?: boolean } = {},
  ) {
    super();
    this.momentum = options.momentum ?? 0.1;
    const e = engineOf(options);
    const gamma = new Tensor(e.full([numFeatures], 1), { track: false });
    const beta = new Tensor(e.zeros([numFeatures]), { track: false });
    if (options.affine ?? true) {
      this.weight = this.registerParameter('weight', gamma);
      this.bias = this.registerParameter('bias', beta);
    } else {
      // torch's affine=False: gamma 1 and beta 0 held as constants, not parameters, so the state dict has
      // no weight/bias; a layer after it applies its own scale and shift (ConditionalBatchNorm2d).
      this.weight = e.keep(gamma);
      this.bias = e.keep(beta);
    }
    this.runningMean = this.registerBuffer('running_mean', new Tensor(e.zeros([numFeatures]), { track: false }));
    this.runningVar = this.registerBuffer('running_var', new Tensor(e.full([numFeatures], 1), { track: false }));
  }

  forward(x: Tensor): Tensor {
    if (this.training) this.numBatchesTracked++;
    return F.batchNorm2d(x, this.runningMean, this.runningVar, this.weight, this.bias, {
      training: this.training,
      momentum: this.momentum ?? 1 / Math.max(1, this.numBatchesTracked),
      eps: this.options.eps ?? 1e-5,
    });
  }

  override dispose(): void {
    super.dispose();
    // Without affine, weight and bias are constants that no parameter list disposes.
    if (!(this.options.affine ?? true)) {
      this.weight.dispose();
      this.bias.dispose();
    }
  }

  /** Running mean 0, variance 1, no batches tracked (torch's reset_running_stats). */
  resetRunningStats(): void {
    this.runningMean.setValue(this.runningMean.engine.zeros([this.numFeatures]));
    this.runningVar.setValue(this.runningVar.engine.full([this.numFeatures], 1));
    this.numBatchesTracked = 0;
  }

  protected override extraState(): Record<string, StateEntry> {
    return { num_batches_tracked: { shape: [], dtype: 'I64', data: BigInt64Array.of(BigInt(this.numBatchesTracked)) } };
  }
  protected override loadExtraState(name: string, entry: StateEntry): boolean {
    if (name !== 'num_batches_tracked') return false;
    this.numBatchesTracked = Number(entry.data[0]);
    return true;
  }
}

export class Dropout extends Module {
  constructor(readonly p = 0.5) {
    super();
  }
  forward(x: Tensor): Tensor {
    return F.dropout(x, this.p, { training: this.training });
  }
}

export class Flatten extends Module {
  forward(x: Tensor): Tensor {
    return F.flatten(x);
  }
}

/** torch.nn.Upsample(scale_factor=s, mode='nearest') for an integer s; no parameters, no state. */
export class Upsample extends Module {
  constructor(readonly scaleFactor: number) {
    super();
    if (!Number.isInteger(scaleFactor) || scaleFactor < 1) throw new RangeError(`Upsample: the scale factor must be a positive integer, got ${scaleFactor}`);
  }
  forward(x: Tensor): Tensor {
    return F.upsampleNearest2d(x, this.scaleFactor);
  }
}

export class ReLU extends Module {
  forward(x: Tensor): Tensor {
    return F.relu(x);
  }
}
export class LeakyReLU extends Module {
  constructor(readonly negativeSlope = 0.01) {
    super();
  }
  forward(x: Tensor): Tensor {
    return F.leakyRelu(x, this.negativeSlope);
  }
}
export class Sigmoid extends Module {
  forward(x: Tensor): Tensor {
    return F.sigmoid(x);
  }
}
export class Tanh extends Module {
  forward(x: Tensor): Tensor {
    return F.tanh(x);
  }
}

/** The fused activation a module stands for, if any. */
function activationOf(m: Module): { act: Activation; slope?: number } | null {
  if (m instanceof ReLU) return { act: 'relu' };
  if (m instanceof LeakyReLU) return { act: 'leakyRelu', slope: m.negativeSlope };
  if (m instanceof Sigmoid) return { act: 'sigmoid' };
  if (m instanceof Tanh) return { act: 'tanh' };
  return null;
}

/**
 * Layers applied in order, named '0', '1', ... as torch.nn.Sequential, with two fusions (same values
 * and gradients, passes fewer over memory): a ReLU followed by a MaxPool2d runs inside the pool's
 * kernels, on the pooled map (ReLU and max commute); otherwise a Conv2d, ConvTranspose2d or Linear
 * followed by an activation runs as one kernel with the activation in its epilogue.
 */
export class Sequential extends Module {
  readonly layers: Module[];

  constructor(...layers: Module[]) {
    super();
    this.layers = layers;
    layers.forEach((l, i) => this.registerModule(String(i), l));
  }

  /** Runs the layers [0, end) (all by default). */
  forward(x: Tensor, end = this.layers.length): Tensor {
    let h = x;
    // Layer j is a ReLU that the max-pool after it takes (run inside the pool's kernels).
    const reluIntoPool = (j: number) => j + 1 < end && this.layers[j] instanceof ReLU && this.layers[j + 1] instanceof MaxPool2d;
    for (let i = 0; i < end; i++) {
      const layer = this.layers[i];
      const next = i + 1 < end ? this.layers[i + 1] : undefined;
      if (reluIntoPool(i)) {
        h = (next as MaxPool2d).forward(h, true);
        i++;
        continue;
      }
      // A ReLU that a pool will take is left to the pool (in the epilogue its backward would be a pass over the full-size map).
      const fused = next && !reluIntoPool(i + 1) && (layer instanceof Conv2d || layer instanceof ConvTranspose2d || layer instanceof Linear) ? activationOf(next) : null;
      if (fused) {
        h = (layer as Conv2d | ConvTranspose2d | Linear).forward(h, fused.act, fused.slope);
        i++;
      } else {
        h = layer.forward(h);
      }
    }
    return h;
  }
}

/** Counts parameters (elements). */
export function parameterCount(m: Module): number {
  return m.parameters().reduce((n, t) => n + t.size, 0);
}

/** Runs a module in eval mode without recording (restores the previous mode). */
/**
 * Standing statistics (Brock et al. 2019, BigGAN, section 3.1 and appendix): every BatchNorm2d of `m`
 * gets running statistics recomputed as the plain average over `passes` forward passes in training mode
 * (`run(i)` records pass i and frees what it made), the weights untouched. For weights that no single training step produced (an
 * average of a generator's weights, WeightAverage in ema.ts): the running statistics averaged alongside
 * them describe the iterates, not the average, and rescale its activations wrongly.
 */
export function standingStatistics(m: Module, passes: number, run: (pass: number) => void): void {
  if (!(Number.isInteger(passes) && passes >= 1)) throw new WgslNnError(`standing statistics: passes must be a positive integer, got ${passes}`);
  const norms: BatchNorm2d[] = [];
  const collect = (mod: Module) => {
    if (mod instanceof BatchNorm2d) norms.push(mod);
    mod.children().forEach(collect);
  };
  collect(m);
  const momenta = norms.map((n) => n.momentum);
  const was = m.training;
  norms.forEach((n) => {
    n.resetRunningStats();
    n.momentum = null;
  });
  m.train();
  try {
    for (let i = 0; i < passes; i++) noGrad(() => run(i));
  } finally {
    norms.forEach((n, i) => (n.momentum = momenta[i]));
    m.train(was);
  }
}

export function inference<T>(m: Module, fn: () => T): T {
  const was = m.training;
  m.eval();
  try {
    return noGrad(fn);
  } finally {
    m.train(was);
  }
}
