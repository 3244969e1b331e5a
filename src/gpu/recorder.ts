// Records kernels' commands and submits them in batches.
//
// Dispatches go into one compute pass of one command encoder; nothing is submitted until a readback,
// `sync()` or a batch of `maxDispatchesPerSubmit` dispatches. The uniform structs of a batch live in
// one buffer (the uniform arena), one aligned slot per dispatch. Errors from the device (validation,
// out of memory, WGSL compile errors, device loss) are collected and thrown at the next flush point
// (sync, read). Every wait for the GPU goes through the GpuWaiter (gpu-wait.ts).
import { globals } from 'webgpu';
import { BindGroupCache, type BufferEntry } from './bind-groups.js';
import type { BufferPool, PooledBuffer } from './buffer-pool.js';
import { formatBytes } from './describe.js';
import { DeviceTensor, shapeString } from './device-tensor.js';
import type { DeviceContext } from './device.js';
import { GpuError, InvalidArgumentError, TensorTooLargeError } from './errors.js';
import type { GpuWaiter } from './gpu-wait.js';
import type { OverrideConstants, PipelineCache } from './pipelines.js';
import { MapMode, STAGING_USAGE, UNIFORM_USAGE } from './usage.js';

// dawn.node's error classes, from the package rather than from globalThis (see device.ts).
const { GPUOutOfMemoryError, GPUValidationError } = globals as {
  GPUOutOfMemoryError: typeof globalThis.GPUOutOfMemoryError;
  GPUValidationError: typeof globalThis.GPUValidationError;
};

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
  constants?: OverrideConstants;
  /**
   * Uniform struct at @binding(0): values in declaration order (u32 unless wrapped in f32()/i32()), or
   * the bytes of a block packed by a UniformLayout (src/gpu/uniform-layout.ts).
   */
  uniforms?: UniformValue[] | Uint8Array;
  /** Storage buffers at @binding(1), @binding(2), ... in order. */
  bindings: (DeviceTensor | GPUBuffer)[];
  /** Workgroup counts; each at most maxComputeWorkgroupsPerDimension. */
  workgroups: readonly [number, number?, number?];
  /** Shown in errors. */
  label?: string;
}

export interface RecorderOptions {
  /** Submit after this many recorded dispatches. */
  maxDispatchesPerSubmit: number;
  /** Tensors bound in a dispatch must have this as their `engine`. */
  owner: object;
}

export class CommandRecorder {
  private readonly errors: Error[] = [];
  private encoder: GPUCommandEncoder | undefined;
  private pass: GPUComputePassEncoder | undefined;
  private recorded = 0;
  private uniformArena: PooledBuffer | undefined;
  /** The arena's bytes, written to it in one call at the flush instead of one call per dispatch. */
  private uniformShadow: Uint8Array;
  private uniformSlot = 0;
  readonly bindGroups: BindGroupCache;
  private readonly uniformSlotSize: number;
  private recentLabels: string[] = [];
  private readonly maxDispatchesPerSubmit: number;
  private readonly owner: object;
  /** Dispatches recorded since creation (for benchmarks and tests). */
  dispatchCount = 0;
  submitCount = 0;

  constructor(
    private readonly ctx: DeviceContext,
    private readonly pool: BufferPool,
    private readonly pipelines: PipelineCache,
    readonly waiter: GpuWaiter,
    options: RecorderOptions,
  ) {
    this.maxDispatchesPerSubmit = options.maxDispatchesPerSubmit;
    this.owner = options.owner;
    this.uniformSlotSize = Math.max(256, ctx.minUniformBufferOffsetAlignment);
    this.uniformShadow = new Uint8Array(this.uniformSlotSize * this.maxDispatchesPerSubmit);
    this.bindGroups = new BindGroupCache(ctx.device);
    pool.onDestroy = (buffer) => this.bindGroups.forgetBuffer(buffer);
    ctx.device.addEventListener('uncapturederror', (ev: Event) => {
      const e = (ev as GPUUncapturedErrorEvent).error;
      const kind =
        e instanceof GPUOutOfMemoryError ? 'out-of-memory' : e instanceof GPUValidationError ? 'validation' : 'internal';
      this.errors.push(new GpuError(kind, e.message.trim(), this.context()));
    });
  }

  private get device(): GPUDevice {
    return this.ctx.device;
  }

  /** The current command encoder (ending an open compute pass), for copies and clears in command order. */
  commandEncoder(): GPUCommandEncoder {
    this.ctx.assertAlive();
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
    this.ctx.assertAlive();
    const [x, y = 1, z = 1] = spec.workgroups;
    if (x === 0 || y === 0 || z === 0) return;
    const label = spec.label ?? `${spec.shader}:${spec.entry ?? 'main'}`;
    // A buffer of another device would make the whole batch's command buffer invalid at submit,
    // losing every other dispatch in it: refuse it here, before anything is recorded.
    for (const b of spec.bindings)
      if (b instanceof DeviceTensor && b.engine !== this.owner)
        throw new InvalidArgumentError(`${label}: a tensor of shape ${shapeString(b.shape)} belongs to another engine; create it on this one (or copy it through the host)`);
    const limits = this.ctx.limits;
    const maxWg = limits.maxComputeWorkgroupsPerDimension;
    if (x > maxWg || y > maxWg || z > maxWg)
      throw new TensorTooLargeError(
        `${label}: grid [${x}, ${y}, ${z}] exceeds ${maxWg} workgroups per dimension; the tensor is too large for this kernel`,
      );
    const maxBinding = limits.maxStorageBufferBindingSize;
    const alignment = limits.minStorageBufferOffsetAlignment;
    const entries: BufferEntry[] = [];
    let uniform: PooledBuffer | undefined;
    if (spec.uniforms) {
      const data = spec.uniforms instanceof Uint8Array ? spec.uniforms : packUniforms(spec.uniforms);
      if (data.byteLength <= this.uniformSlotSize) {
        if (!this.uniformArena) {
          this.uniformArena = this.pool.acquire(this.uniformSlotSize * this.maxDispatchesPerSubmit, UNIFORM_USAGE);
          this.uniformSlot = 0;
        }
        const offset = this.uniformSlot++ * this.uniformSlotSize;
        this.uniformShadow.set(data, offset);
        entries.push({ binding: 0, buffer: this.uniformArena.buffer, offset, size: data.byteLength });
      } else {
        uniform = this.pool.acquire(data.byteLength, UNIFORM_USAGE);
        this.device.queue.writeBuffer(uniform.buffer, 0, data.buffer, data.byteOffset, data.byteLength);
        entries.push({ binding: 0, buffer: uniform.buffer, offset: 0, size: data.byteLength });
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
      entries.push({ binding: i + 1, buffer, offset, size: Math.ceil(size / 4) * 4 });
    });
    const pipeline = this.pipelines.pipeline(spec.shader, spec.entry, spec.constants);
    const bindGroup = this.bindGroups.get(pipeline, entries, label);
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
    if (this.ctx.isDestroyed) return;
    if (this.pass) {
      this.pass.end();
      this.pass = undefined;
    }
    if (this.uniformArena && this.uniformSlot > 0) {
      // Queue writes land before the submit below, so every dispatch of the batch reads its own slot.
      this.device.queue.writeBuffer(this.uniformArena.buffer, 0, this.uniformShadow.buffer, 0, this.uniformSlot * this.uniformSlotSize);
      this.uniformSlot = 0;
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
    this.ctx.assertAlive();
    if (size === 0) return new ArrayBuffer(0);
    const padded = Math.ceil(size / 4) * 4;
    const staging = this.pool.acquire(padded, STAGING_USAGE);
    this.commandEncoder().copyBufferToBuffer(buffer, offset, staging.buffer, 0, padded);
    this.flush();
    try {
      await this.waiter.wait(staging.buffer.mapAsync(MapMode.READ, 0, padded));
    } catch (e) {
      await this.checkErrors();
      throw this.ctx.lost ?? new GpuError('internal', `readback failed: ${(e as Error).message}`, this.context());
    }
    const out = staging.buffer.getMappedRange(0, padded).slice(0, size);
    staging.buffer.unmap();
    this.pool.release(staging);
    await this.checkErrors();
    return out;
  }

  /** Throws the device loss, the first shader compile error, or the first device error collected. */
  async checkErrors(): Promise<void> {
    if (this.ctx.lost) throw this.ctx.lost;
    try {
      await this.pipelines.throwCompileErrors();
    } catch (e) {
      this.errors.length = 0; // the pipeline/bind-group errors that follow from it add nothing
      throw e;
    }
    // Uncaptured errors are delivered as events; give them a turn of the event loop to arrive.
    await new Promise((r) => setImmediate(r));
    if (this.errors.length) {
      const [first] = this.errors.splice(0);
      throw first;
    }
    if (this.ctx.lost) throw this.ctx.lost;
  }

  /** The last few dispatches' labels, for error messages. */
  private context(): string {
    return this.recentLabels.length ? `recent dispatches: ${this.recentLabels.join(', ')}` : '';
  }
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
