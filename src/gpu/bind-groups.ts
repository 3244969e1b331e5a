// Bind groups reused across dispatches that bind the same buffer ranges to the same pipeline.
//
// A training step records the same kernels on the same pooled buffers step after step (after a few
// steps the pool hands the same buffers back in the same order), and Dawn's createBindGroup is the
// largest host cost of recording a dispatch (validation plus a Vulkan descriptor set: ~45-50 us on a
// loaded lavapipe machine, about half of the total). A bind group names buffers and byte ranges, not
// tensors, so reusing one for a later dispatch with the same pipeline, buffers, offsets and sizes binds
// exactly what a new one would. Entries of a destroyed buffer are dropped when the pool destroys it
// (`forgetBuffer`); the least recently used entries go beyond `capacity`. A reused group keeps the label
// of the dispatch that made it (Dawn's messages may name that one; the recorder's own error context
// lists the recent dispatches).

/** A storage or uniform buffer range at one binding. */
export interface BufferEntry {
  binding: number;
  buffer: GPUBuffer;
  offset: number;
  size: number;
}

export class BindGroupCache {
  private readonly groups = new Map<string, { group: GPUBindGroup; buffers: GPUBuffer[] }>();
  /** Cache keys by buffer, to drop a destroyed buffer's groups. */
  private readonly keysByBuffer = new Map<GPUBuffer, Set<string>>();
  private readonly bufferIds = new WeakMap<GPUBuffer, number>();
  private readonly pipelineIds = new WeakMap<GPUComputePipeline, { id: number; layout: GPUBindGroupLayout }>();
  private nextId = 1;
  hits = 0;
  misses = 0;

  constructor(
    private readonly device: GPUDevice,
    readonly capacity = 4096,
  ) {}

  get size(): number {
    return this.groups.size;
  }

  /** The bind group at group 0 of `pipeline` for these entries, created on first use. */
  get(pipeline: GPUComputePipeline, entries: readonly BufferEntry[], label: string): GPUBindGroup {
    let p = this.pipelineIds.get(pipeline);
    if (!p) this.pipelineIds.set(pipeline, (p = { id: this.nextId++, layout: pipeline.getBindGroupLayout(0) }));
    let key = `${p.id}`;
    for (const e of entries) key += `|${e.binding}:${this.bufferId(e.buffer)}:${e.offset}:${e.size}`;
    const cached = this.groups.get(key);
    if (cached) {
      this.hits++;
      // Map order is insertion order: re-inserting marks the entry most recently used.
      this.groups.delete(key);
      this.groups.set(key, cached);
      return cached.group;
    }
    this.misses++;
    const group = this.device.createBindGroup({
      layout: p.layout,
      entries: entries.map((e) => ({ binding: e.binding, resource: { buffer: e.buffer, offset: e.offset, size: e.size } })),
      label,
    });
    const buffers = entries.map((e) => e.buffer);
    this.groups.set(key, { group, buffers });
    for (const b of buffers) {
      let keys = this.keysByBuffer.get(b);
      if (!keys) this.keysByBuffer.set(b, (keys = new Set()));
      keys.add(key);
    }
    if (this.groups.size > this.capacity) this.remove(this.groups.keys().next().value!);
    return group;
  }

  /** Drops every group that binds `buffer` (called before the pool destroys it). */
  forgetBuffer(buffer: GPUBuffer): void {
    for (const key of this.keysByBuffer.get(buffer) ?? []) this.remove(key);
  }

  private remove(key: string): void {
    const entry = this.groups.get(key);
    if (!entry) return;
    this.groups.delete(key);
    for (const b of entry.buffers) {
      const keys = this.keysByBuffer.get(b);
      keys?.delete(key);
      if (keys?.size === 0) this.keysByBuffer.delete(b);
    }
  }

  private bufferId(buffer: GPUBuffer): number {
    let id = this.bufferIds.get(buffer);
    if (id === undefined) this.bufferIds.set(buffer, (id = this.nextId++));
    return id;
  }
}
