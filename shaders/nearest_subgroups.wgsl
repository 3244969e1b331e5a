//! import enable_subgroups
//! import block16x4
// Nearest-neighbour squared distance (see shaders/nearest.wgsl for the definition) for CPU
// implementations such as lavapipe: the 16 x 4 register block of gemm_vec4 (shaders/matmul_vec4.wgsl,
// lib/block16x4.wgsl, whose comments say why), with the column loop inside the kernel and a running
// minimum instead of a write:
//
//   - a workgroup owns 16 queries; its 16 invocations sweep the memory in blocks of 64 vectors, each
//     invocation 4 of them: 16 x 4 dot products in registers (vec4 accumulators over the 4 vectors);
//   - features advance 4 at a time, read as vec4 (C must be a multiple of 4: the host checks);
//   - the 16 query rows are the same for every invocation: lane r of each subgroup loads rows r and
//     r + 8, and subgroupBroadcast hands them to the others;
//   - after each block, |m|^2 - 2 q.m folds into a running minimum per query (16 floats); at the end
//     the 16 invocations' minima meet in workgroup memory.
//
// Per group of 4 features an invocation does 2 + 4 loads for 256 multiply-adds.
// Needs subgroups of at least 8 invocations (the host checks).
//
// nearest_subgroup_ranges is the same search over part of the memory: block b of 16 queries sweeps only
// the row ranges ranges[block_start[b] .. block_start[b + 1]) of it (src/anomaly/nearest-index.ts plans
// them so that the nearest vector of every query of the block lies inside; a minimum over fewer rows that
// include it is the same value).

struct Params {
  n: u32,    // queries
  M: u32,    // memory vectors
  C4: u32,   // features per vector / 4
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q4: array<vec4f>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read> m4: array<vec4f>;
@group(0) @binding(4) var<storage, read> mnorm: array<f32>;
// nearest_subgroup_ranges only: [start, end) row pairs, and each block's first pair (one more entry: the end).
@group(0) @binding(5) var<storage, read> ranges: array<vec2u>;
@group(0) @binding(6) var<storage, read> block_start: array<u32>;

const ROWS: u32 = BLOCK_ROWS;   // queries per workgroup (lib/block16x4.wgsl)
const COLS: u32 = 4u;    // memory vectors per invocation and block
const WG: u32 = 16u;     // two lavapipe subgroups of 8, as gemm_vec4

var<workgroup> lane_best: array<array<f32, ROWS>, WG>;

// The running minima of queries i0.. over the block of vectors starting at jb (none past row `last`).
fn block(i0: u32, jb: u32, last: u32, lid: u32, sid: u32, best: ptr<function, array<f32, ROWS>>) {
  // Vectors past `last` repeat it (harmless for a minimum); queries past n read a valid row.
  var cols: array<u32, COLS>;
  var nrm: vec4f;
  for (var t = 0u; t < COLS; t++) {
    let j = min(jb + COLS * lid + t, last);
    cols[t] = j * p.C4;
    nrm[t] = mnorm[j];
  }
  let loader = sid % 8u;
  let row_lo = min(i0 + loader, p.n - 1u) * p.C4;
  let row_hi = min(i0 + 8u + loader, p.n - 1u) * p.C4;
  var acc: array<vec4f, ROWS>;
  for (var k = 0u; k < p.C4; k++) {
    let a_lo = q4[row_lo + k];
    let a_hi = q4[row_hi + k];
    let c0 = m4[cols[0] + k];
    let c1 = m4[cols[1] + k];
    let c2 = m4[cols[2] + k];
    let c3 = m4[cols[3] + k];
    // Transposed in registers: bk[kk] = feature kk of the 4 vectors.
    let bk = array<vec4f, 4>(vec4f(c0.x, c1.x, c2.x, c3.x), vec4f(c0.y, c1.y, c2.y, c3.y), vec4f(c0.z, c1.z, c2.z, c3.z), vec4f(c0.w, c1.w, c2.w, c3.w));
    block_step(a_lo, a_hi, bk, &acc);
  }
  for (var r = 0u; r < ROWS; r++) {
    let d = nrm - 2.0 * acc[r];
    (*best)[r] = min((*best)[r], min(min(d.x, d.y), min(d.z, d.w)));
  }
}

// The minima of the workgroup's 16 invocations meet in workgroup memory; out = |q|^2 + the minimum.
fn finish(i0: u32, lid: u32, best: array<f32, ROWS>) {
  lane_best[lid] = best;
  workgroupBarrier();
  let i = i0 + lid;
  if (lid < ROWS && i < p.n) {
    var b = lane_best[0][lid];
    for (var l = 1u; l < WG; l++) {
      b = min(b, lane_best[l][lid]);
    }
    var qq = 0.0;
    for (var k = 0u; k < p.C4; k++) {
      let v = q4[i * p.C4 + k];
      qq += dot(v, v);
    }
    out[i] = max(0.0, qq + b);
  }
  // lane_best is rewritten by the next block of queries.
  workgroupBarrier();
}

fn no_best() -> array<f32, ROWS> {
  var best: array<f32, ROWS>;
  for (var r = 0u; r < ROWS; r++) {
    best[r] = 3.4e38;
  }
  return best;
}

// Grid: x = blocks of 16 queries (grid-stride: uniform, as subgroup operations and barriers require).
@compute @workgroup_size(WG)
fn nearest_subgroup(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) lid: u32,
  @builtin(subgroup_invocation_id) sid: u32,
) {
  for (var i0 = wid.x * ROWS; i0 < p.n; i0 += nwg.x * ROWS) {
    var best = no_best();
    for (var jb = 0u; jb < p.M; jb += WG * COLS) {
      block(i0, jb, p.M - 1u, lid, sid, &best);
    }
    finish(i0, lid, best);
  }
}

// As nearest_subgroup, over each block's own row ranges (the bounds come from read-only storage at a
// workgroup-uniform index: uniform, as the broadcasts and barriers require).
@compute @workgroup_size(WG)
fn nearest_subgroup_ranges(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) lid: u32,
  @builtin(subgroup_invocation_id) sid: u32,
) {
  for (var i0 = wid.x * ROWS; i0 < p.n; i0 += nwg.x * ROWS) {
    var best = no_best();
    let b = i0 / ROWS;
    for (var r = block_start[b]; r < block_start[b + 1u]; r++) {
      let range = ranges[r];
      for (var jb = range.x; jb < range.y; jb += WG * COLS) {
        block(i0, jb, range.y - 1u, lid, sid, &best);
      }
    }
    finish(i0, lid, best);
  }
}
