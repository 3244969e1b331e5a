// WebGPU flag values as plain numbers (the WebGPU spec fixes them), so that no module needs the
// GPUBufferUsage / GPUMapMode namespaces as globals (see device.ts).

/** GPUBufferUsage flags. */
export const BufferUsage = {
  MAP_READ: 0x0001,
  MAP_WRITE: 0x0002,
  COPY_SRC: 0x0004,
  COPY_DST: 0x0008,
  INDEX: 0x0010,
  VERTEX: 0x0020,
  UNIFORM: 0x0040,
  STORAGE: 0x0080,
  INDIRECT: 0x0100,
  QUERY_RESOLVE: 0x0200,
} as const;

/** GPUMapMode flags. */
export const MapMode = { READ: 0x0001, WRITE: 0x0002 } as const;

/** Tensor storage: bound to kernels, copied from and to. */
export const STORAGE_USAGE = BufferUsage.STORAGE | BufferUsage.COPY_SRC | BufferUsage.COPY_DST;
/** Uniform structs, written through the queue. */
export const UNIFORM_USAGE = BufferUsage.UNIFORM | BufferUsage.COPY_DST;
/** Readback staging buffers. */
export const STAGING_USAGE = BufferUsage.MAP_READ | BufferUsage.COPY_DST;
