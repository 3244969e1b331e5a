// nn: modules with PyTorch's constructor arguments, parameter names and default initialisations.
import { Engine } from '../gpu/engine.js';
import { shapeString } from '../gpu/device-tensor.js';
import { ShapeError, WgslNnError } from '../gpu/errors.js';
import type { Activation } from '../kernels/activation.js';
import * as F from './functional.js';
import { globalRng } from './seed.js';
import { Tensor, noGrad } from './tensor.js';

export interface ModuleOptions {
  /** Engine holding the parameters (default: Engine.default). */
  engine?: Engine;
}

/** Host copy of one state-dict entry (PyTorch's num_batches_tracked is the only I64). */
export interface StateEntry {
  shape: number[];
  dtype: 'F32' | 'I64';
  data: Float32Array | BigInt64Array;
}
export type StateDict = Record<string, StateEntry>;

export abstract class Module {
  training = true;
  private readonly _params = new Map<string, Tensor>();
  private readonly _buffers = new Map<string, Tensor>();
  private readonly _children = new Map<string, Module>();

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
        if (entry.dtype !== 'F32') throw new WgslNnError(`loadStateDict: '${name}' must be F32, got ${entry.dtype}`);
        t.setValue(t.engine.fromArray(entry.data as Float32Array, t.shape));
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
    return F.conv2d(x, this.weight, this.bias, { stride: this.stride, padding: this.padding, activation, slope });
  }
}

/** Weight [in, out, kH, kW] (PyTorch's layout); torch's fan_in for it is out * kH * kW. */
export class ConvTranspose2d extends ConvModule {
  constructor(inChannels: number, outChannels: number, kernelSize: Pair, options: ConvModuleOptions = {}) {
    super(inChannels, outChannels, kernelSize, options, (kh, kw) => [inChannels, outChannels, kh, kw], (kh, kw) => outChannels * kh * kw);
  }

  forward(x: Tensor, activation?: Activation, slope?: number): Tensor {
    return F.convTranspose2d(x, this.weight, this.bias, { stride: this.stride, padding: this.padding, activation, slope });
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
    return F.linear(x, this.weight, this.bias, { activation, slope });
  }
}

export class MaxPool2d extends Module {
  constructor(
    readonly kernelSize: Pair,
    readonly stride?: Pair,
  ) {
    super();
  }
  forward(x: Tensor): Tensor {
    return F.maxPool2d(x, { kernelSize: this.kernelSize, stride: this.stride ?? this.kernelSize });
  }
}

export class BatchNorm2d extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor;
  readonly runningMean: Tensor;
  readonly runningVar: Tensor;
  numBatchesTracked = 0;

  constructor(
    readonly numFeatures: number,
    readonly options: ModuleOptions & { eps?: number; momentum?: number } = {},
  ) {
    super();
    const e = engineOf(options);
    this.weight = this.registerParameter('weight', new Tensor(e.full([numFeatures], 1), { track: false }));
    this.bias = this.registerParameter('bias', new Tensor(e.zeros([numFeatures]), { track: false }));
    this.runningMean = this.registerBuffer('running_mean', new Tensor(e.zeros([numFeatures]), { track: false }));
    this.runningVar = this.registerBuffer('running_var', new Tensor(e.full([numFeatures], 1), { track: false }));
  }

  forward(x: Tensor): Tensor {
    if (this.training) this.numBatchesTracked++;
    return F.batchNorm2d(x, this.runningMean, this.runningVar, this.weight, this.bias, {
      training: this.training,
      momentum: this.options.momentum ?? 0.1,
      eps: this.options.eps ?? 1e-5,
    });
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
 * Layers applied in order, named '0', '1', ... as torch.nn.Sequential. A Conv2d, ConvTranspose2d or
 * Linear followed by an activation runs as one kernel with the activation fused into its epilogue
 * (same values and gradients, one pass fewer over memory).
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
    for (let i = 0; i < end; i++) {
      const layer = this.layers[i];
      const next = i + 1 < end ? this.layers[i + 1] : undefined;
      const fused = next && (layer instanceof Conv2d || layer instanceof ConvTranspose2d || layer instanceof Linear) ? activationOf(next) : null;
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
export function inference<T>(m: Module, fn: () => T): T {
  const was = m.training;
  m.eval();
  try {
    return noGrad(fn);
  } finally {
    m.train(was);
  }
}
