// Tensor and the reverse-mode tape.
//
// A Tensor wraps a DeviceTensor (GPU data, from src/gpu) and, when it was produced by an op on inputs
// that require gradients, a Node: the op's inputs and a closure computing the inputs' gradients from
// the output's gradient. That closure is written next to the op's forward (src/nn/functional.ts).
// backward() visits nodes in reverse topological order, accumulates into `.grad` of leaves, then
// frees the graph (nodes and the tensors they saved). Kernels never see any of this.
import { Engine } from '../gpu/engine.js';
import { DeviceTensor, shapeString, sizeOf, type DType } from '../gpu/device-tensor.js';
import { ShapeError, WgslNnError } from '../gpu/errors.js';
import { randomNormal, randomUniform } from '../kernels/random.js';
import { elementwiseBinaryOp } from '../kernels/elementwise.js';
import { globalRng } from './seed.js';
import { track } from './scope.js';

/** Gradients of an op's inputs, in input order (null where an input needs none). */
export type BackwardFn = (dy: DeviceTensor) => (DeviceTensor | null)[];

interface Node {
  op: string;
  inputs: Tensor[];
  backward: BackwardFn;
  /** Tensors the backward needs that no Tensor owns (e.g. pooling arg-max); freed with the graph. */
  saved: DeviceTensor[];
}

let gradEnabled = true;

/** Runs `fn` without recording the tape (inference, optimizer updates, metrics). */
export function noGrad<T>(fn: () => T): T {
  const previous = gradEnabled;
  gradEnabled = false;
  let result: T;
  try {
    result = fn();
  } catch (e) {
    gradEnabled = previous;
    throw e;
  }
  if (result instanceof Promise) {
    return result.finally(() => {
      gradEnabled = previous;
    }) as T;
  }
  gradEnabled = previous;
  return result;
}

export function isGradEnabled(): boolean {
  return gradEnabled;
}

export interface TensorOptions {
  requiresGrad?: boolean;
  dtype?: DType;
}

let nextId = 1;

export class Tensor {
  readonly id = nextId++;
  /** Accumulated gradient (leaves only), same shape as the tensor. */
  grad: Tensor | null = null;
  requiresGrad: boolean;
  /** @internal The op that produced this tensor, while the graph is alive. */
  node: Node | null;
  private _value: DeviceTensor;

  constructor(value: DeviceTensor, options: { requiresGrad?: boolean; node?: Node | null; track?: boolean } = {}) {
    this._value = value;
    this.node = options.node ?? null;
    this.requiresGrad = options.requiresGrad ?? !!this.node;
    if (options.track !== false) track(value.engine, this);
  }

  /** The GPU data. */
  get value(): DeviceTensor {
    return this._value;
  }
  get engine(): Engine {
    return this._value.engine;
  }
  get shape(): readonly number[] {
    return this._value.shape;
  }
  get dtype(): DType {
    return this._value.dtype;
  }
  get size(): number {
    return this._value.size;
  }
  get isLeaf(): boolean {
    return this.node === null;
  }

  toArray(): Promise<Float32Array | Int32Array> {
    return this._value.toArray();
  }

  /** The single value of a one-element tensor (a loss), read back from the GPU. */
  async item(): Promise<number> {
    if (this.size !== 1) throw new ShapeError(`item() needs a one-element tensor, got ${shapeString(this.shape)}`);
    return (await this.toArray())[0];
  }

  /** A tensor sharing this data, cut from the graph (no gradient flows through it). */
  detach(): Tensor {
    return new Tensor(this._value.reshape(this.shape));
  }

  /** @internal Replaces the data in place (optimizers, loadStateDict); the old buffer is released. */
  setValue(v: DeviceTensor): void {
    if (sizeOf(v.shape) !== this.size) throw new ShapeError(`setValue: ${shapeString(v.shape)} into ${shapeString(this.shape)}`);
    this._value.dispose();
    this._value = v;
  }

  dispose(): void {
    this._value.dispose();
    this.node = null;
    this.grad?.dispose();
    this.grad = null;
  }

  get isDisposed(): boolean {
    return this._value.isDisposed;
  }

  /**
   * Back-propagates from this tensor: `gradient` is d(objective)/d(this), omitted for a one-element
   * tensor (taken as 1). Gradients accumulate into `.grad` of the leaves that require them; the graph
   * is freed afterwards (intermediate results stay valid until disposed or their tidy() scope ends).
   */
  backward(gradient?: Tensor | DeviceTensor): void {
    if (!this.requiresGrad) throw new WgslNnError('backward() on a tensor that does not require grad');
    const e = this.engine;
    let seed: DeviceTensor;
    if (gradient) {
      const g = gradient instanceof Tensor ? gradient.value : gradient;
      if (sizeOf(g.shape) !== this.size)
        throw new ShapeError(`backward(): gradient ${shapeString(g.shape)} does not match tensor ${shapeString(this.shape)}`);
      seed = g.reshape(this.shape);
    } else {
      if (this.size !== 1)
        throw new ShapeError(`backward() without a gradient needs a one-element tensor, got ${shapeString(this.shape)}`);
      seed = e.full(this.shape, 1);
    }

    const order = topologicalOrder(this);
    const grads = new Map<Tensor, DeviceTensor>([[this, seed]]);
    for (let i = order.length - 1; i >= 0; i--) {
      const t = order[i];
      const g = grads.get(t);
      if (!g) continue;
      grads.delete(t);
      if (t.node) {
        const inputGrads = t.node.backward(g);
        t.node.inputs.forEach((input, k) => {
          const gi = inputGrads[k];
          if (!gi) return;
          if (!input.requiresGrad) return gi.dispose();
          if (gi.size !== input.size)
            throw new ShapeError(`${t.node!.op} backward produced ${shapeString(gi.shape)} for input ${shapeString(input.shape)}`);
          const previous = grads.get(input);
          grads.set(input, previous ? addInto(previous, gi) : gi);
        });
        g.dispose();
      } else {
        t.accumulateGrad(g);
      }
    }
    for (const t of order) t.freeNode();
  }

  private accumulateGrad(g: DeviceTensor): void {
    const shaped = g.shape.length === this.shape.length && g.shape.every((d, i) => d === this.shape[i]) ? g : reshapeOwned(g, this.shape);
    if (!this.grad) this.grad = new Tensor(shaped, { track: false });
    else this.grad.setValue(addInto(this.grad.value.reshape(this.shape), shaped));
  }

  private freeNode(): void {
    if (!this.node) return;
    for (const s of this.node.saved) s.dispose();
    this.node = null;
  }
}

/** a + b into a new tensor; both inputs are released. */
function addInto(a: DeviceTensor, b: DeviceTensor): DeviceTensor {
  const bShaped = b.reshape(a.shape);
  const sum = elementwiseBinaryOp.get(a.engine)(a, bShaped, 'add');
  for (const t of [a, b, bShaped]) t.dispose();
  return sum;
}

function reshapeOwned(g: DeviceTensor, shape: readonly number[]): DeviceTensor {
  const r = g.reshape(shape);
  g.dispose();
  return r;
}

/** Tensors reachable from `root` through live nodes, inputs before the tensors computed from them. */
function topologicalOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const visited = new Set<Tensor>();
  const stack: [Tensor, number][] = [[root, 0]];
  visited.add(root);
  while (stack.length) {
    const top = stack[stack.length - 1];
    const [t, k] = top;
    const inputs = t.node?.inputs ?? [];
    if (k < inputs.length) {
      top[1]++;
      const next = inputs[k];
      if (!visited.has(next) && next.requiresGrad) {
        visited.add(next);
        stack.push([next, 0]);
      }
    } else {
      order.push(t);
      stack.pop();
    }
  }
  return order;
}

/**
 * Wraps an op's output. When recording is on and an input requires a gradient, the output gets a
 * node with `backward`; otherwise `saved` is released at once and the output is a plain tensor.
 */
export function record(op: string, inputs: Tensor[], out: DeviceTensor, backward: BackwardFn, saved: DeviceTensor[] = []): Tensor {
  if (gradEnabled && inputs.some((t) => t.requiresGrad)) {
    return new Tensor(out, { node: { op, inputs, backward, saved } });
  }
  for (const s of saved) s.dispose();
  return new Tensor(out);
}

// ------------------------------------------------------------------ factories

function engineOf(options?: { engine?: Engine }): Engine {
  return options?.engine ?? Engine.default;
}

export interface FactoryOptions {
  engine?: Engine;
  requiresGrad?: boolean;
  /** Seed of the random values; by default the next value of the global seeded generator (manualSeed). */
  seed?: number;
}

/** A tensor from host data (Float32Array / number[] -> f32, Int32Array -> i32). */
export function tensor(
  data: ArrayLike<number> | Float32Array | Int32Array,
  shape: readonly number[],
  options: FactoryOptions & { dtype?: DType } = {},
): Tensor {
  const e = engineOf(options);
  if (options.requiresGrad && (options.dtype === 'i32' || data instanceof Int32Array))
    throw new WgslNnError('only f32 tensors can require gradients');
  return new Tensor(e.fromArray(data, shape, options.dtype), { requiresGrad: options.requiresGrad });
}

export function zeros(shape: readonly number[], options: FactoryOptions = {}): Tensor {
  return new Tensor(engineOf(options).zeros(shape), { requiresGrad: options.requiresGrad });
}

export function ones(shape: readonly number[], options: FactoryOptions = {}): Tensor {
  return full(shape, 1, options);
}

export function full(shape: readonly number[], value: number, options: FactoryOptions = {}): Tensor {
  return new Tensor(engineOf(options).full(shape, value), { requiresGrad: options.requiresGrad });
}

/** Normal(mean, std) values, generated on the GPU from a seed. */
export function randn(shape: readonly number[], options: FactoryOptions & { mean?: number; std?: number } = {}): Tensor {
  const seed = options.seed ?? globalRng().int(2 ** 31);
  return new Tensor(randomNormal(engineOf(options), shape, seed, options.mean ?? 0, options.std ?? 1), {
    requiresGrad: options.requiresGrad,
  });
}

/** Uniform [low, high) values, generated on the GPU from a seed. */
export function uniform(shape: readonly number[], options: FactoryOptions & { low?: number; high?: number } = {}): Tensor {
  const seed = options.seed ?? globalRng().int(2 ** 31);
  return new Tensor(randomUniform(engineOf(options), shape, seed, options.low ?? 0, options.high ?? 1), {
    requiresGrad: options.requiresGrad,
  });
}

// The factories as engine methods: `engine.tensor(data, shape, { requiresGrad })` etc.
declare module '../gpu/engine.js' {
  interface Engine {
    tensor(data: ArrayLike<number> | Float32Array | Int32Array, shape: readonly number[], options?: Omit<FactoryOptions, 'engine'> & { dtype?: DType }): Tensor;
    zerosTensor(shape: readonly number[], options?: Omit<FactoryOptions, 'engine'>): Tensor;
    onesTensor(shape: readonly number[], options?: Omit<FactoryOptions, 'engine'>): Tensor;
    randn(shape: readonly number[], options?: Omit<FactoryOptions, 'engine'> & { mean?: number; std?: number }): Tensor;
    uniform(shape: readonly number[], options?: Omit<FactoryOptions, 'engine'> & { low?: number; high?: number }): Tensor;
  }
}
Engine.prototype.tensor = function (this: Engine, data, shape, options = {}) {
  return tensor(data, shape, { ...options, engine: this });
};
Engine.prototype.zerosTensor = function (this: Engine, shape, options = {}) {
  return zeros(shape, { ...options, engine: this });
};
Engine.prototype.onesTensor = function (this: Engine, shape, options = {}) {
  return ones(shape, { ...options, engine: this });
};
Engine.prototype.randn = function (this: Engine, shape, options = {}) {
  return randn(shape, { ...options, engine: this });
};
Engine.prototype.uniform = function (this: Engine, shape, options = {}) {
  return uniform(shape, { ...options, engine: this });
};
