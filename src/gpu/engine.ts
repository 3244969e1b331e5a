// The GPU runtime's facade: one engine = one device (device.ts), a buffer pool (buffer-pool.ts), a
// pipeline cache (pipelines.ts) and a command recorder (recorder.ts), plus the tensor factories.
//
// Kernels (src/kernels) call `engine.dispatch(...)`; nothing is submitted until a readback, `sync()`
// or a batch of `maxDispatchesPerSubmit` dispatches. Errors from the device (validation, out of
// memory, device loss, WGSL compile errors) are collected and thrown at the next flush point.
//
// Tensor-lifetime scopes (tidy/keep/track) are not part of this layer: src/nn/scope.ts adds them to
// Engine (declaration merging, like src/nn/tensor.ts's factories). The GPU layer imports nothing from
// src/nn, and importing it writes nothing to globalThis.
import { BufferPool, type MemoryStats, type PooledBuffer } from './buffer-pool.js';
import { describeValue, formatBytes } from './describe.js';
import { DeviceContext, type AdapterDescription, type DeviceLimits, type DeviceOptions } from './device.js';
import { DeviceTensor, sizeOf, shapeString, type DType } from './device-tensor.js';
import { type DeviceLostError, InvalidArgumentError, ShapeError, TensorTooLargeError } from './errors.js';
import { GpuWaiter, type WaitMode } from './gpu-wait.js';
import { checkData, checkShape, int32Range, isInt32 } from './host-data.js';
import { PipelineCache, type OverrideConstants } from './pipelines.js';
import { CommandRecorder, type DispatchSpec } from './recorder.js';
import { STORAGE_USAGE } from './usage.js';

export { formatBytes } from './describe.js';
export type { AdapterDescription, DeviceLimits } from './device.js';
export { f32, i32, type F32, type I32, type UniformValue, type DispatchSpec } from './recorder.js';

/** WGSL_NN_WAIT=poll|sleep overrides the default wait mode (for measurements). */
function waitModeFromEnv(): WaitMode {
  const v = process.env.WGSL_NN_WAIT;
  if (v === undefined || v === '') return 'sleep';
  if (v === 'poll' || v === 'sleep') return v;
  throw new Error(`wgsl-nn: WGSL_NN_WAIT must be 'sleep' or 'poll', not '${v}'`);
}

export interface EngineOptions extends DeviceOptions {
  /** Fill every newly handed-out buffer with NaN, so elements a kernel forgets to write show up. For tests. */
  poisonAllocations?: boolean;
  /** Submit after this many recorded dispatches (default 128). */
  maxDispatchesPerSubmit?: number;
  /**
   * Largest total size of the released buffers the engine keeps for reuse (default: no limit). A process
   * that runs for months on tensors of varying sizes sets one, so that its GPU memory stays bounded by what
   * is in use plus this (src/gpu/buffer-pool.ts).
   */
  maxPooledBytes?: number;
  /** Make this engine the default one (the first engine created always is). */
  makeDefault?: boolean;
  /**
   * How the host waits for the GPU (readback, sync): 'sleep' (default) sleeps the main thread in short
   * slices instead of letting dawn.node poll in a tight loop; 'poll' is dawn.node's own behaviour.
   * See src/gpu/gpu-wait.ts.
   */
  waitMode?: WaitMode;
}

let defaultEngine: Engine | undefined;

export class Engine {
  readonly device: GPUDevice;
  readonly adapter: GPUAdapter;
  readonly info: AdapterDescription;
  readonly limits: DeviceLimits;
  /** Every wait for the GPU goes through it (see gpu-wait.ts). */
  readonly waiter: GpuWaiter;
  private readonly ctx: DeviceContext;
  private readonly pool: BufferPool;
  private readonly pipelines: PipelineCache;
  private readonly recorder: CommandRecorder;
  private readonly poison: boolean;
  /**
   * Smallest and largest value of i32 tensors whose contents the host knows (made by fromArray, zeros or
   * full), keyed by their storage so that reshaped views share it: ops that index with them (class labels)
   * check the range without reading the GPU back. Forgotten when a copy or clear overwrites the storage.
   */
  private readonly i32Ranges = new WeakMap<PooledBuffer, { min: number; max: number }>();

  private constructor(ctx: DeviceContext, options: EngineOptions) {
    this.ctx = ctx;
    this.device = ctx.device;
    this.adapter = ctx.adapter;
    this.info = ctx.info;
    this.limits = ctx.limits;
    this.poison = options.poisonAllocations ?? false;
    this.waiter = new GpuWaiter({ mode: options.waitMode ?? waitModeFromEnv() });
    this.pool = new BufferPool(ctx.device, ctx.limits.maxBufferSize, (bytes, max) => {
      throw new TensorTooLargeError(
        `cannot allocate ${formatBytes(bytes)}: the device's largest buffer is ${formatBytes(max)} (maxBufferSize)`,
      );
    }, options.maxPooledBytes);
    this.pipelines = new PipelineCache(ctx.device);
    this.recorder = new CommandRecorder(ctx, this.pool, this.pipelines, this.waiter, {
      maxDispatchesPerSubmit: options.maxDispatchesPerSubmit ?? 128,
      owner: this,
    });
  }

  /** Finds an adapter, requests a device with the adapter's own limits, and returns a ready engine. */
  static async create(options: EngineOptions = {}): Promise<Engine> {
    const waitMode = options.waitMode ?? waitModeFromEnv(); // a bad WGSL_NN_WAIT fails before a device exists
    const engine = new Engine(await DeviceContext.open(options), { ...options, waitMode });
    if (!defaultEngine || options.makeDefault) defaultEngine = engine;
    return engine;
  }

  /** The first engine created (or the one given to setDefault). */
  static get default(): Engine {
    if (!defaultEngine || defaultEngine.isDestroyed)
      throw new Error('wgsl-nn: no engine: call `await Engine.create()` first');
    return defaultEngine;
  }

  static hasDefault(): boolean {
    return !!defaultEngine && !defaultEngine.isDestroyed;
  }

  static setDefault(engine: Engine): void {
    defaultEngine = engine;
  }

  /** One line describing the adapter, e.g. for logs. */
  describe(): string {
    return this.ctx.describe();
  }

  /** Dispatches recorded since creation (for benchmarks and tests). */
  get dispatchCount(): number {
    return this.recorder.dispatchCount;
  }

  /** Command buffers submitted since creation. */
  get submitCount(): number {
    return this.recorder.submitCount;
  }

  /** The recorder's cached bind groups (bind-groups.ts): how many are held, and lookups that found or made one. */
  get bindGroupStats(): { size: number; hits: number; misses: number } {
    const c = this.recorder.bindGroups;
    return { size: c.size, hits: c.hits, misses: c.misses };
  }

  // ---------------------------------------------------------------- buffers and tensors

  /** A new tensor with undefined contents (NaN when poisonAllocations is on). */
  empty(shape: readonly number[], dtype: DType = 'f32'): DeviceTensor {
    this.ctx.assertAlive();
    checkShape(shape);
    if (dtype !== 'f32' && dtype !== 'i32') throw new InvalidArgumentError(`dtype must be 'f32' or 'i32', got ${describeValue(dtype)}`);
    const bytes = Math.max(4, sizeOf(shape) * 4);
    const storage = this.pool.acquire(bytes, STORAGE_USAGE);
    if (this.poison) this.fillBuffer(storage.buffer, 0, storage.capacity, dtype === 'f32' ? NaN : -0x7fffffff, dtype);
    return new DeviceTensor(this, storage, shape, dtype);
  }

  /** A tensor holding a copy of `data`. */
  fromArray(data: ArrayLike<number> | Float32Array | Int32Array, shape: readonly number[], dtype?: DType): DeviceTensor {
    checkData(data);
    checkShape(shape);
    const n = sizeOf(shape);
    if (data.length !== n)
      throw new ShapeError(`data has ${data.length} elements but shape ${shapeString(shape)} needs ${n}`);
    const type: DType = dtype ?? (data instanceof Int32Array ? 'i32' : 'f32');
    // NaN and Inf are valid f32 data; an i32 tensor can hold only int32 values (no silent truncation).
    const range = type === 'i32' ? int32Range(data, data instanceof Int32Array ? '' : 'data') : undefined;
    const t = this.empty(shape, type);
    const typed =
      type === 'i32'
        ? data instanceof Int32Array
          ? data
          : Int32Array.from(data)
        : data instanceof Float32Array
          ? data
          : Float32Array.from(data);
    if (n > 0) this.device.queue.writeBuffer(t.buffer, 0, typed.buffer, typed.byteOffset, n * 4);
    if (range) this.i32Ranges.set(t.storage, range);
    return t;
  }

  /** A tensor of zeros (cleared on the GPU, in command order). */
  zeros(shape: readonly number[], dtype: DType = 'f32'): DeviceTensor {
    const t = this.empty(shape, dtype);
    this.clear(t);
    if (dtype === 'i32') this.i32Ranges.set(t.storage, { min: 0, max: 0 });
    return t;
  }

  /** A tensor filled with `value`. */
  full(shape: readonly number[], value: number, dtype: DType = 'f32'): DeviceTensor {
    if (typeof value !== 'number') throw new InvalidArgumentError(`fill value must be a number, got ${describeValue(value)}`);
    if (dtype === 'i32' && !isInt32(value)) throw new InvalidArgumentError(`fill value ${value} cannot be stored in an i32 tensor (int32 integers only)`);
    const t = this.empty(shape, dtype);
    this.fillBuffer(t.buffer, 0, Math.max(4, t.byteLength), value, dtype);
    if (dtype === 'i32') this.i32Ranges.set(t.storage, { min: value, max: value });
    return t;
  }

  /**
   * Smallest and largest value of an i32 tensor whose contents the host knows (it came from fromArray,
   * zeros or full, possibly through reshapes); undefined for tensors computed on the GPU.
   */
  knownRange(t: DeviceTensor): { min: number; max: number } | undefined {
    return t.dtype === 'i32' ? this.i32Ranges.get(t.storage) : undefined;
  }

  /** Sets a tensor to zero, ordered with the dispatches recorded so far. */
  clear(t: DeviceTensor): void {
    this.i32Ranges.delete(t.storage);
    const enc = this.recorder.commandEncoder();
    enc.clearBuffer(t.buffer, t.byteOffset, Math.ceil(Math.max(4, t.byteLength) / 4) * 4);
  }

  /** Copies `src` into `dst` (same size; either may be a view at an offset), ordered with recorded dispatches. */
  copy(src: DeviceTensor, dst: DeviceTensor): void {
    if (src.size !== dst.size) throw new Error(`wgsl-nn: copy of ${src.size} elements into ${dst.size}`);
    if (src.size === 0) return;
    this.i32Ranges.delete(dst.storage);
    this.recorder.commandEncoder().copyBufferToBuffer(src.buffer, src.byteOffset, dst.buffer, dst.byteOffset, src.byteLength);
  }

  private fillBuffer(buffer: GPUBuffer, offset: number, bytes: number, value: number, dtype: DType): void {
    // Written via the queue: queue writes run before the next submit, so they precede any command
    // recorded after this call. (A buffer reused from the pool is only handed out after a submit.)
    const n = Math.ceil(bytes / 4);
    const data = dtype === 'i32' ? new Int32Array(n).fill(value) : new Float32Array(n).fill(value);
    this.device.queue.writeBuffer(buffer, offset, data.buffer, 0, n * 4);
  }

  /** @internal Called by DeviceTensor.dispose(). */
  releaseBuffer(b: PooledBuffer): void {
    if (this.ctx.isDestroyed) return;
    this.pool.release(b);
  }

  /** Bytes in use, bytes allocated, live and pooled buffers. */
  /** Most bytes of released buffers kept for reuse (EngineOptions.maxPooledBytes; Infinity: no limit). */
  get maxPooledBytes(): number {
    return this.pool.maxPooledBytes;
  }

  memory(): MemoryStats {
    return this.pool.memory();
  }

  /** Frees pooled buffers that are not in use. */
  trim(): void {
    this.flush();
    this.pool.trim();
  }

  // ---------------------------------------------------------------- shaders and pipelines

  /** Registers WGSL source under a name usable as `DispatchSpec.shader` (for experiments and tests). */
  registerShader(name: string, code: string): void {
    this.pipelines.registerShader(name, code);
  }

  /** The cached pipeline for a shader, entry point and override constants. */
  pipeline(shader: string, entry = 'main', constants: OverrideConstants = {}): GPUComputePipeline {
    return this.pipelines.pipeline(shader, entry, constants);
  }

  /** Compiles a pipeline now and throws its compile error, if any (otherwise errors surface at the next sync). */
  async compile(shader: string, entry = 'main', constants: OverrideConstants = {}): Promise<void> {
    this.pipelines.pipeline(shader, entry, constants);
    await this.recorder.checkErrors();
  }

  get pipelineCount(): number {
    return this.pipelines.size;
  }

  // ---------------------------------------------------------------- commands

  /** Records one compute dispatch. Throws at once for bindings or grids over the device's limits. */
  dispatch(spec: DispatchSpec): void {
    this.recorder.dispatch(spec);
  }

  /** Submits everything recorded so far. */
  flush(): void {
    this.recorder.flush();
  }

  /** Flushes, waits for the GPU to finish, and throws any error the device reported. */
  sync(): Promise<void> {
    return this.recorder.sync();
  }

  /** Reads `size` bytes of `buffer` from `offset`, after all recorded work. */
  read(buffer: GPUBuffer, offset: number, size: number): Promise<ArrayBuffer> {
    return this.recorder.read(buffer, offset, size);
  }

  // ---------------------------------------------------------------- lifetime

  get isDestroyed(): boolean {
    return this.ctx.isDestroyed;
  }

  /** True once the device was lost other than by destroy(); every later call on this engine throws DeviceLostError. */
  get isLost(): boolean {
    return this.ctx.lost !== undefined;
  }

  /**
   * Calls `listener` once when the device is lost other than by destroy() (driver reset, or a test's
   * `engine.device.destroy()`); at once (in a microtask) if it already was. The engine cannot be
   * revived: the owner creates a new one. Returns a function that removes the listener.
   */
  onLost(listener: (error: DeviceLostError) => void): () => void {
    return this.ctx.onLost(listener);
  }

  /** Releases the device and every buffer; the Node process can then exit by itself. */
  destroy(): void {
    if (this.ctx.isDestroyed) return;
    try {
      this.flush();
    } catch {
      /* the device may already be gone */
    }
    this.pool.trim();
    this.pipelines.clear();
    this.ctx.destroy();
    if (defaultEngine === this) defaultEngine = undefined;
  }

  // ---------------------------------------------------------------- helpers for kernels

  /**
   * Workgroup grid for `n` independent items with `wgSize` invocations per workgroup. Over 65535
   * workgroups it folds into a second dimension; shaders recover the linear index with `linear_index`
   * from shaders/lib/common.wgsl.
   */
  grid(n: number, wgSize: number): [number, number] {
    const groups = Math.ceil(n / wgSize);
    const max = this.limits.maxComputeWorkgroupsPerDimension;
    if (groups <= max) return [Math.max(groups, 0), 1];
    const y = Math.ceil(groups / max);
    return [Math.ceil(groups / y), y];
  }
}
