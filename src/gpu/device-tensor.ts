// A typed, shaped array in GPU memory: what kernels read and write. It knows nothing of autograd.
import type { Engine } from './engine.js';
import type { PooledBuffer } from './buffer-pool.js';
import { ShapeError } from './errors.js';

export type DType = 'f32' | 'i32';

export function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new ShapeError(`invalid shape [${shape.join(', ')}]`);
    n *= d;
  }
  return n;
}

export function shapeString(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

export class DeviceTensor {
  readonly size: number;
  private disposed = false;

  constructor(
    readonly engine: Engine,
    readonly storage: PooledBuffer,
    readonly shape: readonly number[],
    readonly dtype: DType = 'f32',
    /** Where the data start in the buffer: 0, or a range of another tensor's buffer (see view()). */
    readonly byteOffset = 0,
  ) {
    this.size = sizeOf(shape);
    if (byteOffset + this.size * 4 > storage.byteLength)
      throw new ShapeError(`shape ${shapeString(shape)} at byte ${byteOffset} needs ${byteOffset + this.size * 4} bytes, buffer has ${storage.byteLength}`);
  }

  get buffer(): GPUBuffer {
    if (this.disposed) throw new Error(`wgsl-nn: tensor ${shapeString(this.shape)} used after dispose()`);
    return this.storage.buffer;
  }

  get byteLength(): number {
    return this.size * 4;
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  /** Same data, another shape of the same size; shares (and retains) the buffer. */
  reshape(shape: readonly number[]): DeviceTensor {
    if (sizeOf(shape) !== this.size)
      throw new ShapeError(`cannot reshape ${shapeString(this.shape)} (${this.size} elements) to ${shapeString(shape)}`);
    this.storage.refs++;
    return new DeviceTensor(this.engine, this.storage, shape, this.dtype, this.byteOffset);
  }

  /**
   * The elements [offset, offset + size(shape)) of this tensor as a tensor of `shape`, sharing (and
   * retaining) the buffer: kernels bind just that range. Made by the batch-split kernels
   * (src/kernels/batch-split.ts); a view bound in a dispatch must start at a multiple of the device's
   * minStorageBufferOffsetAlignment (engine.limits), which engine.dispatch checks.
   */
  view(offset: number, shape: readonly number[]): DeviceTensor {
    const n = sizeOf(shape);
    if (!Number.isInteger(offset) || offset < 0 || offset + n > this.size)
      throw new ShapeError(`view of ${n} elements at ${offset} is outside tensor ${shapeString(this.shape)} (${this.size} elements)`);
    this.storage.refs++;
    return new DeviceTensor(this.engine, this.storage, shape, this.dtype, this.byteOffset + offset * 4);
  }

  /** Reads the data back (flushes pending GPU work first). */
  async toArray(): Promise<Float32Array | Int32Array> {
    const bytes = await this.engine.read(this.buffer, this.byteOffset, this.byteLength);
    return this.dtype === 'i32' ? new Int32Array(bytes) : new Float32Array(bytes);
  }

  async toFloat32Array(): Promise<Float32Array> {
    if (this.dtype !== 'f32') throw new Error('wgsl-nn: toFloat32Array() on an i32 tensor');
    return (await this.toArray()) as Float32Array;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.engine.releaseBuffer(this.storage);
  }
}
