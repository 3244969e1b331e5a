// Size-bucketed reuse of GPU buffers.
//
// Creating and destroying GPUBuffers every step is slow and fragments memory, so released buffers are
// kept in free lists keyed by a rounded size. A released buffer may still be read by commands that are
// recorded but not yet submitted; it only becomes reusable after that submit (see `afterSubmit`).
// Later writes to it are queued after that submit, so queue order keeps them safe.
//
// The free lists may be capped (`maxPooledBytes`): past the cap, the buffers released longest ago are
// destroyed. Buffers awaiting a submit count against the cap too (they cannot be destroyed yet, so free ones
// make room for them): bytes allocated stay within bytes in use + the cap, unless one recording alone
// releases more than the cap. Without a cap the pool keeps what the work in flight needed at its peak, per
// size bucket; a long-running process whose tensor sizes vary (an anomaly detector scoring images of any size from several
// callers) keeps meeting new combinations of sizes, and its pool keeps growing, though boundedly.

export interface PooledBuffer {
  readonly buffer: GPUBuffer;
  /** Size of the underlying GPUBuffer (the bucket size), >= what was asked for. */
  readonly capacity: number;
  /** Bytes asked for. */
  byteLength: number;
  refs: number;
  readonly usage: number;
}

/** Bucket sizes: powers of two split in four steps (x1, x1.25, x1.5, x1.75), at least 256 bytes. */
export function bucketSize(bytes: number): number {
  if (bytes <= 256) return 256;
  const p = 2 ** Math.floor(Math.log2(bytes));
  for (const f of [1, 1.25, 1.5, 1.75, 2]) {
    const s = Math.ceil((p * f) / 256) * 256;
    if (s >= bytes) return s;
  }
  return p * 2;
}

export interface MemoryStats {
  /** Bytes of buffers handed out and not yet released (bucket sizes). */
  bytesInUse: number;
  /** Bytes of all GPUBuffers that exist (in use + pooled + waiting for a submit). */
  bytesAllocated: number;
  /** Buffers handed out and not yet released. */
  liveBuffers: number;
  /** Buffers in the free lists. */
  pooledBuffers: number;
}

export class BufferPool {
  private free = new Map<string, GPUBuffer[]>();
  /** Every free buffer, oldest release first (a Set keeps insertion order). */
  private freeOrder = new Set<GPUBuffer>();
  private pooledBytes = 0;
  private waiting: GPUBuffer[] = [];
  private waitingBytes = 0;
  private stats = { bytesInUse: 0, bytesAllocated: 0, liveBuffers: 0, pooledBuffers: 0 };
  /** Called with each buffer just before the pool destroys it (the recorder drops its cached bind groups). */
  onDestroy: ((buffer: GPUBuffer) => void) | undefined;

  constructor(
    private readonly device: GPUDevice,
    private readonly maxBufferSize: number,
    private readonly onTooLarge: (bytes: number, max: number) => never,
    /** Largest total size of the free buffers and those awaiting a submit (default: no limit). */
    readonly maxPooledBytes = Infinity,
  ) {}

  acquire(byteLength: number, usage: number): PooledBuffer {
    const capacity = bucketSize(Math.max(4, byteLength));
    if (capacity > this.maxBufferSize) {
      if (byteLength > this.maxBufferSize) this.onTooLarge(byteLength, this.maxBufferSize);
    }
    const size = Math.min(capacity, this.maxBufferSize);
    const key = `${usage}:${size}`;
    const list = this.free.get(key);
    let buffer = list?.pop();
    if (buffer) {
      this.stats.pooledBuffers--;
      this.freeOrder.delete(buffer);
      this.pooledBytes -= buffer.size;
    } else {
      buffer = this.device.createBuffer({ size, usage });
      this.stats.bytesAllocated += size;
    }
    this.stats.bytesInUse += size;
    this.stats.liveBuffers++;
    return { buffer, capacity: size, byteLength, refs: 1, usage };
  }

  /** Gives the buffer back; it joins the free list after the next submit. */
  release(b: PooledBuffer): void {
    if (b.refs <= 0) throw new Error('wgsl-nn: buffer released twice');
    if (--b.refs > 0) return;
    this.stats.bytesInUse -= b.capacity;
    this.stats.liveBuffers--;
    this.waiting.push(b.buffer);
    this.waitingBytes += b.buffer.size;
    this.enforceCap();
  }

  /** Called once the commands recorded so far have been submitted. */
  afterSubmit(): void {
    for (const buffer of this.waiting) {
      const key = `${buffer.usage}:${buffer.size}`;
      let list = this.free.get(key);
      if (!list) this.free.set(key, (list = []));
      list.push(buffer);
      this.freeOrder.add(buffer);
      this.pooledBytes += buffer.size;
      this.stats.pooledBuffers++;
    }
    this.waiting.length = 0;
    this.waitingBytes = 0;
    this.enforceCap();
  }

  /** Destroys every pooled (free) buffer. Buffers in use are untouched. */
  trim(): void {
    this.destroyFreeOver(0);
    this.free.clear();
  }

  /** Keeps free + awaiting-a-submit bytes within the cap, destroying free buffers (the waiting ones cannot be yet). */
  private enforceCap(): void {
    this.destroyFreeOver(Math.max(0, this.maxPooledBytes - this.waitingBytes));
  }

  /**
   * Destroys free buffers, those released longest ago first, until at most `limit` bytes stay pooled (they
   * have been submitted: nothing recorded later reads them).
   */
  private destroyFreeOver(limit: number): void {
    for (const buffer of this.freeOrder) {
      if (this.pooledBytes <= limit) break;
      const list = this.free.get(`${buffer.usage}:${buffer.size}`)!;
      list.splice(list.indexOf(buffer), 1);
      this.freeOrder.delete(buffer);
      this.pooledBytes -= buffer.size;
      this.stats.pooledBuffers--;
      this.stats.bytesAllocated -= buffer.size;
      this.onDestroy?.(buffer);
      buffer.destroy();
    }
  }

  memory(): MemoryStats {
    return { ...this.stats };
  }
}
