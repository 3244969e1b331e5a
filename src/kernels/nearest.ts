// Nearest-neighbour squared distance: out[i] = min over j of |q_i - m_j|^2 for queries q [n, C] and a
// memory m [M, C], without writing the [n, M] matrix of distances (shaders/nearest.wgsl,
// shaders/nearest_subgroups.wgsl). The search of the anomaly detector's feature memory
// (src/anomaly/feature-memory.ts) runs on it.
//
// Variants:
//   - 'tiled': one query per invocation, the memory streamed through workgroup memory (GPUs);
//   - 'subgroup-vec4': 16 queries x 64 vectors per workgroup step, features read as vec4 and the query
//     rows shared by subgroup broadcasts (the GEMM layout that is fastest on lavapipe, issue 10). It
//     needs subgroups of >= 8 invocations and C a multiple of 4; elsewhere it runs as 'tiled'.
// Queries over one storage binding run per range of rows (src/kernels/batch-split.ts); the memory must
// fit one binding.
//
// nearestSquaredDistanceInRanges: the same minimum over part of the memory, per block of 16 queries its
// own list of row ranges (the subgroup kernel only). An index that clusters the memory plans the ranges so
// that every query's nearest row lies inside them (src/anomaly/nearest-index.ts); the result is then the
// full search's, value for value, at a fraction of its work.
import { shapeString, type DeviceTensor } from '../gpu/device-tensor.js';
import { formatBytes, type Engine } from '../gpu/engine.js';
import { ShapeError, TensorTooLargeError } from '../gpu/errors.js';
import { forEachSplit } from './batch-split.js';
import { hasSubgroups } from './matmul.js';
import { defineOp, log2Bucket } from './registry.js';

export type NearestFn = (queries: DeviceTensor, memory: DeviceTensor) => DeviceTensor;

/** Queries per workgroup of each entry point. */
const TILED_QUERIES = 64;
const SUBGROUP_QUERIES = 16;

function checkNearest(queries: DeviceTensor, memory: DeviceTensor): void {
  const what = `nearest.squaredDistance: queries ${queries.dtype} ${shapeString(queries.shape)}, memory ${memory.dtype} ${shapeString(memory.shape)}`;
  if (queries.dtype !== 'f32' || memory.dtype !== 'f32') throw new ShapeError(`${what}: both must be float32`);
  if (queries.shape.length !== 2 || memory.shape.length !== 2) throw new ShapeError(`${what}: both must be 2-D [rows, features]`);
  if (queries.shape[1] !== memory.shape[1]) throw new ShapeError(`${what}: the feature counts differ`);
  if (memory.shape[0] < 1 || memory.shape[1] < 1) throw new ShapeError(`${what}: the memory needs at least one vector of at least one feature`);
}

/** |m_j|^2 for each row of memory [M, C]. */
function rowNorms(e: Engine, memory: DeviceTensor): DeviceTensor {
  const [M, C] = memory.shape;
  const norms = e.empty([M]);
  e.dispatch({
    shader: 'nearest',
    entry: 'row_norms',
    uniforms: [M, 0, C],
    bindings: [memory, norms],
    workgroups: [Math.min(Math.ceil(M / 64), e.limits.maxComputeWorkgroupsPerDimension)],
    label: `nearest.squaredDistance norms ${shapeString(memory.shape)}`,
  });
  return norms;
}

/** Whether nearest_subgroup can run this call (else 'subgroup-vec4' runs as 'tiled'). */
export function runsSubgroup(e: Engine, features: number): boolean {
  return hasSubgroups(e) && features % 4 === 0;
}

function nearestWith(queries: DeviceTensor, memory: DeviceTensor, subgroup: boolean): DeviceTensor {
  const e = queries.engine;
  const [n, C] = queries.shape;
  const M = memory.shape[0];
  const out = e.empty([n]);
  if (n === 0) return out;
  const max = e.limits.maxStorageBufferBindingSize;
  if (memory.byteLength > max)
    throw new TensorTooLargeError(`nearest.squaredDistance: the memory ${shapeString(memory.shape)} (${formatBytes(memory.byteLength)}) is over one storage binding (${formatBytes(max)}); split it and take the minimum of the parts`);
  const norms = rowNorms(e, memory);
  const vec4 = subgroup && runsSubgroup(e, C);
  const label = `nearest.squaredDistance q ${shapeString(queries.shape)} m ${shapeString(memory.shape)}${vec4 ? ' (subgroup)' : ''}`;
  const operands = [
    { tensor: queries, name: 'queries', unit: C },
    { tensor: out, name: 'out', unit: 1, output: true },
  ];
  forEachSplit(e, label, n, operands, (r, [qs, outs]) => {
    const perGroup = vec4 ? SUBGROUP_QUERIES : TILED_QUERIES;
    e.dispatch({
      shader: vec4 ? 'nearest_subgroups' : 'nearest',
      entry: vec4 ? 'nearest_subgroup' : 'nearest_tiled',
      uniforms: [r.count, M, vec4 ? C / 4 : C],
      bindings: [qs, outs, memory, norms],
      workgroups: [Math.min(Math.ceil(r.count / perGroup), e.limits.maxComputeWorkgroupsPerDimension)],
      label,
    });
  }, { unitName: 'row' });
  norms.dispose();
  return out;
}

/** Queries per block of nearestSquaredDistanceInRanges (the subgroup kernel's workgroup). */
export const RANGE_BLOCK_QUERIES = SUBGROUP_QUERIES;

/**
 * For each query i: the minimum over the memory rows j in the ranges of its block b = floor(i / 16) of
 * |q_i - m_j|^2, i.e. over ranges[2r] <= j < ranges[2r + 1] for blockStart[b] <= r < blockStart[b + 1].
 * Every block needs at least one non-empty range. Needs the subgroup kernel (runsSubgroup) and queries
 * within one storage binding.
 */
export function nearestSquaredDistanceInRanges(queries: DeviceTensor, memory: DeviceTensor, ranges: Uint32Array, blockStart: Uint32Array): DeviceTensor {
  checkNearest(queries, memory);
  const e = queries.engine;
  const [n, C] = queries.shape;
  const M = memory.shape[0];
  const what = `nearest.squaredDistanceInRanges q ${shapeString(queries.shape)} m ${shapeString(memory.shape)}`;
  if (!runsSubgroup(e, C)) throw new ShapeError(`${what}: needs subgroups and a feature count divisible by 4`);
  const blocks = Math.ceil(n / RANGE_BLOCK_QUERIES);
  if (blockStart.length !== blocks + 1 || blockStart[0] !== 0 || blockStart[blocks] * 2 !== ranges.length)
    throw new ShapeError(`${what}: blockStart needs ${blocks + 1} entries from 0 to ${ranges.length / 2} (the range pairs)`);
  for (let b = 0; b < blocks; b++) if (!(blockStart[b + 1] > blockStart[b])) throw new ShapeError(`${what}: block ${b} has no range`);
  for (let r = 0; r < ranges.length; r += 2)
    if (!(ranges[r] < ranges[r + 1] && ranges[r + 1] <= M)) throw new ShapeError(`${what}: range [${ranges[r]}, ${ranges[r + 1]}) is empty or past the memory's ${M} rows`);
  const max = e.limits.maxStorageBufferBindingSize;
  if (memory.byteLength > max || queries.byteLength > max) throw new TensorTooLargeError(`${what}: the queries and the memory must each fit one storage binding (${formatBytes(max)})`);
  const out = e.empty([n]);
  if (n === 0) return out;
  const norms = rowNorms(e, memory);
  const r = e.fromArray(new Int32Array(ranges.buffer, ranges.byteOffset, ranges.length), [ranges.length], 'i32');
  const s = e.fromArray(new Int32Array(blockStart.buffer, blockStart.byteOffset, blockStart.length), [blockStart.length], 'i32');
  e.dispatch({
    shader: 'nearest_subgroups',
    entry: 'nearest_subgroup_ranges',
    uniforms: [n, M, C / 4],
    bindings: [queries, out, memory, norms, r, s],
    workgroups: [Math.min(blocks, e.limits.maxComputeWorkgroupsPerDimension)],
    label: `${what} (${ranges.length / 2} ranges)`,
  });
  norms.dispose();
  r.dispose();
  s.dispose();
  return out;
}

/** min over the memory's rows of the squared distance to each query row: [n, C] x [M, C] -> [n]. */
export function nearestSquaredDistance(queries: DeviceTensor, memory: DeviceTensor): DeviceTensor {
  return nearestSquaredDistanceOp.get(queries.engine)(queries, memory);
}

export const nearestSquaredDistanceOp = defineOp<NearestFn>('nearest.squaredDistance', {
  check: checkNearest,
  bucket: (q, m) => `n${log2Bucket(q.shape[0])} M${log2Bucket(m.shape[0])} C${log2Bucket(q.shape[1])}`,
});
nearestSquaredDistanceOp.register('tiled', (q, m) => nearestWith(q, m, false), {
  description: 'one query per invocation, the memory streamed through workgroup memory in 64 x 16 tiles',
  preferredOn: ['hardware'],
});
nearestSquaredDistanceOp.register('subgroup-vec4', (q, m) => nearestWith(q, m, true), {
  description: "16 queries x 64 vectors per step, features as vec4, query rows shared by subgroup broadcasts (as the 'tiled' variant without subgroups or when C % 4 != 0)",
  preferredOn: ['software'],
});
