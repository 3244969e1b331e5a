// The GPU runtime: one adapter and device, a buffer pool, a pipeline cache and a command batcher.
//
// Kernels (src/kernels) call `engine.dispatch(...)`; nothing is submitted until a readback, `sync()`
// or a batch of `maxDispatchesPerSubmit` dispatches. Errors from the device (validation, out of
// memory, device loss, WGSL compile errors) are collected and thrown at the next flush point.
import { create, globals } from 'webgpu';
import { BufferPool, type MemoryStats, type PooledBuffer } from './buffer-pool.js';
import { DeviceTensor, sizeOf, shapeString, type DType } from './device-tensor.js';
import {
  DeviceLostError,
  GpuError,
  InvalidArgumentError,
  NoAdapterError,
  ShaderCompileError,
  ShapeError,
  TensorTooLargeError,
} from './errors.js';
import { GpuWaiter, type WaitMode } from './gpu-wait.js';
import { loadShader, type ShaderSource } from './shaders.js';

Object.assign(globalThis, globals);

/** WGSL_NN_WAIT=poll|sleep overrides the default wait mode (for measurements). */
function waitModeFromEnv(): WaitMode {
  const v = process.env.WGSL_NN_WAIT;
  if (v === undefined || v === '') return 'sleep';
  if (v === 'poll' || v === 'sleep') return v;
  throw new Error(`wgsl-nn: WGSL_NN_WAIT must be 'sleep' or 'poll', not '${v}'`);
}

const STORAGE = 0x80 | 0x04 | 0x08; // STORAGE | COPY_SRC | COPY_DST
const UNIFORM = 0x40 | 0x08; // UNIFORM | COPY_DST
const STAGING = 0x01 | 0x08; // MAP_READ | COPY_DST

export interface EngineOptions {
  powerPreference?: 'low-power' | 'high-performance';
  /** Ask for the fallback (software) adapter. */
  forceFallbackAdapter?: boolean;
  /** Extra dawn.node flags, e.g. ['backend=vulkan']. */
  dawnFlags?: string[];
  /** Fill every newly handed-out buffer with NaN, so elements a kernel forgets to write show up. For tests. */
  poisonAllocations?: boolean;
  /** Submit after this many recorded dispatches (default 128). */
  maxDispatchesPerSubmit?: number;
  /** Make this engine the default one (the first engine created always is). */
  makeDefault?: boolean;
  /**
   * Request the 'subgroups' feature when the adapter offers it (default true). The GEMM kernels'
   * subgroup variants use it (1.3-2x faster on lavapipe) and fall back to plain code without it.
   */
  subgroups?: boolean;
  /**
   * How the host waits for the GPU (readback, sync): 'sleep' (default) sleeps the main thread in short
   * slices instead of letting dawn.node poll in a tight loop; 'poll' is dawn.node's own behaviour.
   * See src/gpu/gpu-wait.ts.
   */
  waitMode?: WaitMode;
  /**
   * Bind at most this many bytes per storage binding (default: the device's maxStorageBufferBindingSize;
   * a larger value is capped to it). For tests: with a small value the kernels' batch-splitting paths
   * (src/kernels/batch-split.ts) run on small tensors. A positive multiple of 4.
   */
  maxBindingBytes?: number;
  /**
   * Offset alignment of storage-buffer ranges (default: the device's minStorageBufferOffsetAlignment; a
   * smaller value is raised to it). For tests: 256, the usual hardware value, on an adapter that allows less.
   */
  bindingOffsetAlignment?: number;
}

export interface AdapterDescription {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  backend: string;
  /** True for CPU implementations (lavapipe/llvmpipe, SwiftShader, WARP). */
  software: boolean;
}

/** Marks a uniform value as f32 (plain numbers are packed as u32). */
export interface F32 {
  f32: number;
}
/** Marks a uniform value as i32. */
export interface I32 {
  i32: number;
}
export const f32 = (x: number): F32 => ({ f32: x });
export const i32 = (x: number): I32 => ({ i32: x });
export type UniformValue = number | F32 | I32;

export interface DispatchSpec {
  /** Shader file name under shaders/ (without .wgsl) or a name given to registerShader(). */
  shader: string;
  entry?: string;
  /** `override` constants; part of the pipeline cache key. */
  constants?: Record<string, number | boolean>;
  /** Uniform struct at @binding(0); values in declaration order (u32 unless wrapped in f32()/i32()). */
  uniforms?: UniformValue[];
  /** Storage buffers at @binding(1), @binding(2), ... in order. */
  bindings: (DeviceTensor | GPUBuffer)[];
  /** Workgroup counts; each at most maxComputeWorkgroupsPerDimension. */
  workgroups: readonly [number, number?, number?];
  /** Shown in errors. */
  label?: string;
}

/** Anything with a dispose(): what tidy() scopes track. */
export interface Disposable {
  dispose(): void;
}

let defaultEngine: Engine | undefined;

export class Engine {
  readonly device: GPUDevice;
  readonly adapter: GPUAdapter;
  /** The dawn.node GPU instance. Held so it is not garbage-collected while the device lives (that aborts the process). */
  private readonly gpu: GPU;
  readonly info: AdapterDescription;
  readonly limits: {
    maxStorageBufferBindingSize: number;
    /** Storage ranges bound at an offset (batch-split kernels) start at a multiple of this. */
    minStorageBufferOffsetAlignment: number;
    maxBufferSize: number;
    maxComputeWorkgroupStorageSize: number;
    maxComputeInvocationsPerWorkgroup: number;
    maxComputeWorkgroupsPerDimension: number;
    maxStorageBuffersPerShaderStage: number;
  };
  private readonly pool: BufferPool;
  private readonly modules = new Map<string, { module: GPUShaderModule; source: ShaderSource }>();
  private readonly pipelines = new Map<string, GPUComputePipeline>();
  private readonly customShaders = new Map<string, string>();
  private readonly pendingCompileChecks: Promise<void>[] = [];
  private readonly errors: Error[] = [];
  private encoder: GPUCommandEncoder | undefined;
  private pass: GPUComputePassEncoder | undefined;
  private recorded = 0;
  /** Uniform structs of the current batch live in one buffer, one aligned slot per dispatch. */
  private uniformArena: PooledBuffer | undefined;
  private uniformSlot = 0;
  private readonly uniformSlotSize: number;
  private recentLabels: string[] = [];
  private destroyed = false;
  private lost: DeviceLostError | undefined;
  private readonly lostListeners = new Set<(error: DeviceLostError) => void>();
  private readonly maxDispatchesPerSubmit: number;
  private readonly poison: boolean;
  /** Every wait for the GPU goes through it (see gpu-wait.ts). */
  readonly waiter: GpuWaiter;
  private readonly scopes: Set<Disposable>[] = [];
  /**
   * Smallest and largest value of i32 tensors whose contents the host knows (made by fromArray, zeros or
   * full), keyed by their storage so that reshaped views share it: ops that index with them (class labels)
   * check the range without reading the GPU back. Forgotten when a copy or clear overwrites the storage.
   */
  private readonly i32Ranges = new WeakMap<PooledBuffer, { min: number; max: number }>();
  /** Dispatches recorded since creation (for benchmarks and tests). */
  dispatchCount = 0;
  submitCount = 0;

  private constructor(gpu: GPU, adapter: GPUAdapter, device: GPUDevice, info: AdapterDescription, options: EngineOptions) {
    this.gpu = gpu;
    this.adapter = adapter;
    this.device = device;
    this.info = info;
    const l = device.limits;
    const bindingCap = options.maxBindingBytes ?? l.maxStorageBufferBindingSize;
    if (!(Number.isInteger(bindingCap) && bindingCap > 0 && bindingCap % 4 === 0))
      throw new InvalidArgumentError(`maxBindingBytes must be a positive multiple of 4, got ${describeValue(options.maxBindingBytes)}`);
    const alignment = Math.max(l.minStorageBufferOffsetAlignment, options.bindingOffsetAlignment ?? 0);
    if (!Number.isInteger(Math.log2(alignment)))
      throw new InvalidArgumentError(`bindingOffsetAlignment must be a power of 2, got ${describeValue(options.bindingOffsetAlignment)}`);
    this.limits = {
      maxStorageBufferBindingSize: Math.min(l.maxStorageBufferBindingSize, bindingCap),
      minStorageBufferOffsetAlignment: alignment,
      maxBufferSize: l.maxBufferSize,
      maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
      maxComputeWorkgroupsPerDimension: l.maxComputeWorkgroupsPerDimension,
      maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
    };
    this.maxDispatchesPerSubmit = options.maxDispatchesPerSubmit ?? 128;
    this.poison = options.poisonAllocations ?? false;
    this.waiter = new GpuWaiter({ mode: options.waitMode ?? waitModeFromEnv() });
    this.uniformSlotSize = Math.max(256, l.minUniformBufferOffsetAlignment);
    this.pool = new BufferPool(device, l.maxBufferSize, (bytes, max) => {
      throw new TensorTooLargeError(
        `cannot allocate ${formatBytes(bytes)}: the device's largest buffer is ${formatBytes(max)} (maxBufferSize)`,
      );
    });
    device.addEventListener('uncapturederror', (ev: Event) => {
      const e = (ev as GPUUncapturedErrorEvent).error;
      const kind =
        e instanceof GPUOutOfMemoryError ? 'out-of-memory' : e instanceof GPUValidationError ? 'validation' : 'internal';
      this.errors.push(new GpuError(kind, e.message.trim(), this.context()));
    });
    void device.lost.then((i) => {
      if (i.reason === 'destroyed' && this.destroyed) return;
      this.lost = new DeviceLostError(`GPU device lost (${i.reason}): ${i.message}`);
      for (const listener of [...this.lostListeners]) this.notifyLost(listener, this.lost);
    });
  }

  /** Finds an adapter, requests a device with the adapter's own limits, and returns a ready engine. */
  static async create(options: EngineOptions = {}): Promise<Engine> {
    const gpu = create(options.dawnFlags ?? []);
    let adapter: GPUAdapter | null;
    try {
      adapter = await gpu.requestAdapter({
        powerPreference: options.powerPreference,
        forceFallbackAdapter: options.forceFallbackAdapter,
      });
    } catch (e) {
      // dawn.node throws (rather than returning null) when no backend or no matching adapter exists.
      throw new NoAdapterError(String((e as Error).message ?? e).split('\n')[0]);
    }
    if (!adapter) throw new NoAdapterError('navigator.gpu.requestAdapter() returned null');
    const a = adapter.limits;
    // Ask explicitly for what the adapter offers; the defaults (128 MiB bindings, 16 KiB workgroup
    // storage, 256 invocations) would silently cap kernels on bigger hardware.
    const requiredFeatures: GPUFeatureName[] = options.subgroups !== false && adapter.features.has('subgroups') ? ['subgroups'] : [];
    const device = await adapter.requestDevice({
      requiredFeatures,
      requiredLimits: {
        maxStorageBufferBindingSize: a.maxStorageBufferBindingSize,
        maxBufferSize: a.maxBufferSize,
        maxComputeWorkgroupStorageSize: a.maxComputeWorkgroupStorageSize,
        maxComputeInvocationsPerWorkgroup: a.maxComputeInvocationsPerWorkgroup,
        maxComputeWorkgroupSizeX: a.maxComputeWorkgroupSizeX,
        maxComputeWorkgroupSizeY: a.maxComputeWorkgroupSizeY,
        maxComputeWorkgroupSizeZ: a.maxComputeWorkgroupSizeZ,
        maxStorageBuffersPerShaderStage: a.maxStorageBuffersPerShaderStage,
      },
      label: 'wgsl-nn',
    });
    const i = adapter.info;
    const text = `${i.vendor} ${i.architecture} ${i.device} ${i.description}`;
    const info: AdapterDescription = {
      vendor: i.vendor,
      architecture: i.architecture,
      device: i.device,
      description: i.description,
      backend: /vulkan/i.test(text) || process.platform === 'linux' ? 'vulkan' : process.platform === 'darwin' ? 'metal' : 'd3d12',
      software:
        Boolean((i as GPUAdapterInfo & { isFallbackAdapter?: boolean }).isFallbackAdapter) ||
        /llvmpipe|lavapipe|swiftshader|warp|software/i.test(text),
    };
    const engine = new Engine(gpu, adapter, device, info, options);
    if (!defaultEngine || options.makeDefault) defaultEngine = engine;
    return engine;
  }

  /** The first engine created (or the one given to setDefault). */
  static get default(): Engine {
    if (!defaultEngine || defaultEngine.destroyed)
      throw new Error('wgsl-nn: no engine: call `await Engine.create()` first');
    return defaultEngine;
  }

  static hasDefault(): boolean {
    return !!defaultEngine && !defaultEngine.destroyed;
  }

  static setDefault(engine: Engine): void {
    defaultEngine = engine;
  }

  /** One line describing the adapter, e.g. for logs. */
  describe(): string {
    const i = this.info;
    return `${i.vendor || '?'} ${i.architecture || ''} ${i.device || ''} (${i.backend}${i.software ? ', software' : ''}) ${i.description}`
      .replace(/\s+/g, ' ')
      .trim();
  }

  // ---------------------------------------------------------------- buffers and tensors

  /** A new tensor with undefined contents (NaN when poisonAllocations is on). */
  empty(shape: readonly number[], dtype: DType = 'f32'): DeviceTensor {
    this.assertAlive();
    checkShape(shape);
    if (dtype !== 'f32' && dtype !== 'i32') throw new InvalidArgumentError(`dtype must be 'f32' or 'i32', got ${describeValue(dtype)}`);
    const bytes = Math.max(4, sizeOf(shape) * 4);
    const storage = this.pool.acquire(bytes, STORAGE);
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
    const enc = this.commandEncoder();
    enc.clearBuffer(t.buffer, t.byteOffset, Math.ceil(Math.max(4, t.byteLength) / 4) * 4);
  }

  /** Copies `src` into `dst` (same size; either may be a view at an offset), ordered with recorded dispatches. */
  copy(src: DeviceTensor, dst: DeviceTensor): void {
    if (src.size !== dst.size) throw new Error(`wgsl-nn: copy of ${src.size} elements into ${dst.size}`);
    if (src.size === 0) return;
    this.i32Ranges.delete(dst.storage);
    this.commandEncoder().copyBufferToBuffer(src.buffer, src.byteOffset, dst.buffer, dst.byteOffset, src.byteLength);
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
    if (this.destroyed) return;
    this.pool.release(b);
  }

  /** Bytes in use, bytes allocated, live and pooled buffers. */
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
    this.customShaders.set(name, code);
    this.modules.delete(name);
    for (const key of [...this.pipelines.keys()]) if (key.startsWith(`${name}|`)) this.pipelines.delete(key);
  }

  private module(name: string): GPUShaderModule {
    let m = this.modules.get(name);
    if (!m) {
      const custom = this.customShaders.get(name);
      const source: ShaderSource = custom !== undefined ? { code: custom, preludeLines: 0 } : loadShader(name);
      const module = this.device.createShaderModule({ code: source.code, label: name });
      m = { module, source };
      this.modules.set(name, m);
      this.pendingCompileChecks.push(this.checkCompilation(name, module, source));
    }
    return m.module;
  }

  private async checkCompilation(name: string, module: GPUShaderModule, source: ShaderSource): Promise<void> {
    const info = await module.getCompilationInfo();
    const errors = info.messages.filter((m) => m.type === 'error');
    if (errors.length === 0) return;
    const own = source.code.split('\n').slice(source.preludeLines).join('\n');
    throw new ShaderCompileError(
      name,
      errors.map((m) => ({
        type: m.type,
        message: m.message,
        lineNum: m.lineNum - source.preludeLines,
        linePos: m.linePos,
      })),
      own,
    );
  }

  /** The cached pipeline for a shader, entry point and override constants. */
  pipeline(shader: string, entry = 'main', constants: Record<string, number | boolean> = {}): GPUComputePipeline {
    const keys = Object.keys(constants).sort();
    const key = `${shader}|${entry}|${keys.map((k) => `${k}=${Number(constants[k])}`).join(',')}`;
    let p = this.pipelines.get(key);
    if (!p) {
      const consts: Record<string, number> = {};
      for (const k of keys) consts[k] = Number(constants[k]);
      p = this.device.createComputePipeline({
        layout: 'auto',
        compute: { module: this.module(shader), entryPoint: entry, constants: consts },
        label: key,
      });
      this.pipelines.set(key, p);
    }
    return p;
  }

  /** Compiles a pipeline now and throws its compile error, if any (otherwise errors surface at the next sync). */
  async compile(shader: string, entry = 'main', constants: Record<string, number | boolean> = {}): Promise<void> {
    this.pipeline(shader, entry, constants);
    await this.checkErrors();
  }

  get pipelineCount(): number {
    return this.pipelines.size;
  }

  // ---------------------------------------------------------------- commands

  private commandEncoder(): GPUCommandEncoder {
    this.assertAlive();
    if (this.pass) {
      this.pass.end();
      this.pass = undefined;
    }
    this.encoder ??= this.device.createCommandEncoder({ label: 'wgsl-nn batch' });
    return this.encoder;
  }

  private computePass(): GPUComputePassEncoder {
    if (!this.pass) this.pass = this.commandEncoder().beginComputePass();
    return this.pass;
  }

  /** Records one compute dispatch. Throws at once for bindings or grids over the device's limits. */
  dispatch(spec: DispatchSpec): void {
    this.assertAlive();
    const [x, y = 1, z = 1] = spec.workgroups;
    if (x === 0 || y === 0 || z === 0) return;
    const label = spec.label ?? `${spec.shader}:${spec.entry ?? 'main'}`;
    // A buffer of another device would make the whole batch's command buffer invalid at submit,
    // losing every other dispatch in it: refuse it here, before anything is recorded.
    for (const b of spec.bindings)
      if (b instanceof DeviceTensor && b.engine !== this)
        throw new InvalidArgumentError(`${label}: a tensor of shape ${shapeString(b.shape)} belongs to another engine; create it on this one (or copy it through the host)`);
    const maxWg = this.limits.maxComputeWorkgroupsPerDimension;
    if (x > maxWg || y > maxWg || z > maxWg)
      throw new TensorTooLargeError(
        `${label}: grid [${x}, ${y}, ${z}] exceeds ${maxWg} workgroups per dimension; the tensor is too large for this kernel`,
      );
    const maxBinding = this.limits.maxStorageBufferBindingSize;
    const alignment = this.limits.minStorageBufferOffsetAlignment;
    const entries: GPUBindGroupEntry[] = [];
    let uniform: PooledBuffer | undefined;
    if (spec.uniforms) {
      const data = packUniforms(spec.uniforms);
      if (data.byteLength <= this.uniformSlotSize) {
        if (!this.uniformArena) {
          this.uniformArena = this.pool.acquire(this.uniformSlotSize * this.maxDispatchesPerSubmit, UNIFORM);
          this.uniformSlot = 0;
        }
        const offset = this.uniformSlot++ * this.uniformSlotSize;
        this.device.queue.writeBuffer(this.uniformArena.buffer, offset, data.buffer, 0, data.byteLength);
        entries.push({ binding: 0, resource: { buffer: this.uniformArena.buffer, offset, size: data.byteLength } });
      } else {
        uniform = this.pool.acquire(data.byteLength, UNIFORM);
        this.device.queue.writeBuffer(uniform.buffer, 0, data.buffer, 0, data.byteLength);
        entries.push({ binding: 0, resource: { buffer: uniform.buffer, size: data.byteLength } });
      }
    }
    spec.bindings.forEach((b, i) => {
      const buffer = b instanceof DeviceTensor ? b.buffer : b;
      const size = b instanceof DeviceTensor ? Math.max(4, b.byteLength) : b.size;
      if (size > maxBinding) {
        const what = b instanceof DeviceTensor ? `a tensor of shape ${shapeString(b.shape)}` : 'a buffer';
        throw new TensorTooLargeError(
          `${label}: binding ${i + 1} is ${what} (${formatBytes(size)}), over the device's ` +
            `maxStorageBufferBindingSize of ${formatBytes(maxBinding)}; split the batch into smaller parts`,
        );
      }
      // A view (DeviceTensor.view) binds its range of the buffer; batch-split kernels make only aligned ones.
      const offset = b instanceof DeviceTensor ? b.byteOffset : 0;
      if (offset % alignment !== 0)
        throw new InvalidArgumentError(`${label}: binding ${i + 1} starts at byte ${offset} of its buffer, not a multiple of ${alignment} (minStorageBufferOffsetAlignment)`);
      entries.push({ binding: i + 1, resource: { buffer, offset, size: Math.ceil(size / 4) * 4 } });
    });
    const pipeline = this.pipeline(spec.shader, spec.entry, spec.constants);
    const bindGroup = this.device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries, label });
    const pass = this.computePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(x, y, z);
    if (uniform) this.pool.release(uniform);
    this.dispatchCount++;
    this.recentLabels.push(label);
    if (this.recentLabels.length > 8) this.recentLabels.shift();
    if (++this.recorded >= this.maxDispatchesPerSubmit) this.flush();
  }

  /** Submits everything recorded so far. */
  flush(): void {
    if (this.destroyed) return;
    if (this.pass) {
      this.pass.end();
      this.pass = undefined;
    }
    if (this.encoder) {
      this.device.queue.submit([this.encoder.finish()]);
      this.encoder = undefined;
      this.submitCount++;
    }
    this.recorded = 0;
    if (this.uniformArena) {
      this.pool.release(this.uniformArena);
      this.uniformArena = undefined;
    }
    this.pool.afterSubmit();
  }

  /** Flushes, waits for the GPU to finish, and throws any error the device reported. */
  async sync(): Promise<void> {
    this.flush();
    await this.waiter.wait(this.device.queue.onSubmittedWorkDone());
    await this.checkErrors();
  }

  /** Reads `size` bytes of `buffer` from `offset`, after all recorded work. */
  async read(buffer: GPUBuffer, offset: number, size: number): Promise<ArrayBuffer> {
    this.assertAlive();
    if (size === 0) return new ArrayBuffer(0);
    const padded = Math.ceil(size / 4) * 4;
    const staging = this.pool.acquire(padded, STAGING);
    this.commandEncoder().copyBufferToBuffer(buffer, offset, staging.buffer, 0, padded);
    this.flush();
    try {
      await this.waiter.wait(staging.buffer.mapAsync(GPUMapMode.READ, 0, padded));
    } catch (e) {
      await this.checkErrors();
      throw this.lost ?? new GpuError('internal', `readback failed: ${(e as Error).message}`, this.context());
    }
    const out = staging.buffer.getMappedRange(0, padded).slice(0, size);
    staging.buffer.unmap();
    this.pool.release(staging);
    await this.checkErrors();
    return out;
  }

  private async checkErrors(): Promise<void> {
    if (this.lost) throw this.lost;
    while (this.pendingCompileChecks.length) {
      const checks = this.pendingCompileChecks.splice(0);
      const results = await Promise.allSettled(checks);
      const failed = results.find((r) => r.status === 'rejected') as PromiseRejectedResult | undefined;
      if (failed) {
        this.errors.length = 0; // the pipeline/bind-group errors that follow from it add nothing
        throw failed.reason;
      }
    }
    // Uncaptured errors are delivered as events; give them a turn of the event loop to arrive.
    await new Promise((r) => setImmediate(r));
    if (this.errors.length) {
      const [first] = this.errors.splice(0);
      throw first;
    }
    if (this.lost) throw this.lost;
  }

  private context(): string {
    return this.recentLabels.length ? `recent dispatches: ${this.recentLabels.join(', ')}` : '';
  }

  private assertAlive(): void {
    if (this.destroyed) throw new DeviceLostError('wgsl-nn: the engine was destroyed');
    if (this.lost) throw this.lost;
  }

  get isDestroyed(): boolean {
    return this.destroyed;
  }

  /** True once the device was lost other than by destroy(); every later call on this engine throws DeviceLostError. */
  get isLost(): boolean {
    return this.lost !== undefined;
  }

  /**
   * Calls `listener` once when the device is lost other than by destroy() (driver reset, or a test's
   * `engine.device.destroy()`); at once (in a microtask) if it already was. The engine cannot be
   * revived: the owner creates a new one. Returns a function that removes the listener.
   */
  onLost(listener: (error: DeviceLostError) => void): () => void {
    if (this.lost) {
      const lost = this.lost;
      queueMicrotask(() => this.notifyLost(listener, lost));
      return () => {};
    }
    this.lostListeners.add(listener);
    return () => this.lostListeners.delete(listener);
  }

  private notifyLost(listener: (error: DeviceLostError) => void, error: DeviceLostError): void {
    this.lostListeners.delete(listener);
    try {
      listener(error);
    } catch (e) {
      console.error('wgsl-nn: an onLost listener threw:', e); // one bad listener must not hide the loss from the others
    }
  }

  /** Releases the device and every buffer; the Node process can then exit by itself. */
  destroy(): void {
    if (this.destroyed) return;
    try {
      this.flush();
    } catch {
      /* the device may already be gone */
    }
    this.destroyed = true;
    this.pool.trim();
    this.pipelines.clear();
    this.modules.clear();
    this.device.destroy();
    if (defaultEngine === this) defaultEngine = undefined;
  }

  // ---------------------------------------------------------------- scopes

  /**
   * Runs `fn` and disposes every tracked object (tensors) created while it ran, except what it
   * returns (a tensor, or tensors inside a returned array or plain object) and what was `keep()`-ed.
   * Scopes nest; what a scope returns moves to the enclosing scope. `fn` must be synchronous.
   */
  tidy<T>(fn: () => T): T {
    const scope = new Set<Disposable>();
    this.scopes.push(scope);
    let result: T;
    try {
      result = fn();
      if (result instanceof Promise) throw new Error('wgsl-nn: tidy() takes a synchronous function');
    } catch (e) {
      // A failing op (bad arguments, a limit) must not leak what the scope made before it failed.
      for (const d of scope) {
        try {
          d.dispose();
        } catch {
          /* keep the original error */
        }
      }
      throw e;
    } finally {
      this.scopes.pop();
    }
    const returned = new Set<Disposable>();
    collectDisposables(result, returned);
    const parent = this.scopes.at(-1);
    for (const d of scope) {
      if (returned.has(d)) parent?.add(d);
      else d.dispose();
    }
    return result;
  }

  /** @internal Registers a new object with the innermost tidy() scope, if any. */
  track<T extends Disposable>(d: T): T {
    this.scopes.at(-1)?.add(d);
    return d;
  }

  /** Exempts `d` from disposal by the enclosing tidy() scopes. */
  keep<T extends Disposable>(d: T): T {
    for (const s of this.scopes) s.delete(d);
    return d;
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

/** A value as it reads in an error message: strings quoted, the type named for objects. */
function describeValue(v: unknown): string {
  if (typeof v === 'string') return `the string ${JSON.stringify(v)}`;
  if (v === null || v === undefined || typeof v !== 'object') return String(v);
  return Array.isArray(v) ? 'an array' : `a ${v.constructor?.name ?? 'object'}`;
}

/** Every dimension a non-negative integer (a better message than sizeOf's for the public API). */
function checkShape(shape: readonly number[]): void {
  if (!Array.isArray(shape)) throw new ShapeError(`shape must be an array of dimensions, got ${describeValue(shape)}`);
  shape.forEach((d, i) => {
    if (typeof d !== 'number' || !Number.isInteger(d) || d < 0)
      throw new ShapeError(`invalid shape [${shape.join(', ')}]: dimension ${i} is ${describeValue(d)}; dimensions must be integers >= 0`);
  });
}

/** Host data must be an array-like of numbers (a typed array, or an array whose every element is a number). */
function checkData(data: unknown): void {
  const got = () => (typeof data === 'string' ? 'a string' : describeValue(data));
  if (typeof data !== 'object' || data === null || typeof (data as ArrayLike<unknown>).length !== 'number')
    throw new InvalidArgumentError(`data must be an array or a typed array of numbers, got ${got()}`);
  if (ArrayBuffer.isView(data)) {
    if (data instanceof BigInt64Array || data instanceof BigUint64Array || data instanceof DataView)
      throw new InvalidArgumentError(`data must be an array or a typed array of numbers, got ${describeValue(data)}`);
    return;
  }
  const a = data as ArrayLike<unknown>;
  for (let i = 0; i < a.length; i++)
    if (typeof a[i] !== 'number') throw new InvalidArgumentError(`data[${i}] is ${describeValue(a[i])}, not a number`);
}

const isInt32 = (v: number) => Number.isInteger(v) && v >= -0x80000000 && v <= 0x7fffffff;

/** Min and max of data bound for an i32 tensor; throws for a value an int32 cannot hold (when `what` names the data). */
function int32Range(data: ArrayLike<number>, what: string): { min: number; max: number } {
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (what && !isInt32(v)) throw new InvalidArgumentError(`${what}[${i}] = ${v} cannot be stored in an i32 tensor (int32 integers only)`);
    if (v < min) min = v;
    if (v > max) max = v;
  }
  return { min, max };
}

function collectDisposables(v: unknown, out: Set<Disposable>, depth = 0): void {
  if (!v || typeof v !== 'object' || depth > 4) return;
  if (typeof (v as Disposable).dispose === 'function') {
    out.add(v as Disposable);
    return;
  }
  if (Array.isArray(v)) for (const x of v) collectDisposables(x, out, depth + 1);
  else if (Object.getPrototypeOf(v) === Object.prototype) for (const x of Object.values(v)) collectDisposables(x, out, depth + 1);
}

function packUniforms(values: UniformValue[]): Uint8Array {
  const n = Math.max(4, Math.ceil(values.length / 4) * 4); // uniform structs are 16-byte aligned
  const buf = new ArrayBuffer(n * 4);
  const u = new Uint32Array(buf);
  const f = new Float32Array(buf);
  const s = new Int32Array(buf);
  values.forEach((v, i) => {
    if (typeof v === 'number') {
      if (!Number.isInteger(v) || v < 0) throw new Error(`wgsl-nn: uniform ${i} = ${v} is not a u32; wrap floats in f32()`);
      u[i] = v;
    } else if ('f32' in v) f[i] = v.f32;
    else s[i] = v.i32;
  });
  return new Uint8Array(buf);
}

export function formatBytes(n: number): string {
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(2)} GiB`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(1)} MiB`;
  if (n >= 2 ** 10) return `${(n / 2 ** 10).toFixed(1)} KiB`;
  return `${n} B`;
}
