//! import common
//! import generated:gemm_params
//! import gemm
// One GEMM core for dense layers, conv2d (implicit GEMM) and both conv2d backward passes. The core
// (operand readers, writer, epilogue) lives in lib/gemm.wgsl, shared with matmul_subgroups.wgsl and
// matmul_vec4.wgsl; this file holds the kernels without subgroup operations.
//
//   C[z][m, j] = act( sum_{k in slice z} A[z][m, k] * B[z][k, j] + bias )
//
// How A and B are read and where C is written are chosen by override constants (A_MODE, B_MODE,
// C_MODE), so every use is its own pipeline with the unused paths folded away at compile time:
//
//   use                 | A[m, k]                     | B[k, j]                          | C[m, j] goes to
//   --------------------+-----------------------------+----------------------------------+-----------------------
//   matmul / dense      | A_PLAIN: a[z*sb+m*sm+k*sk]  | B_PLAIN: b[z*sb+k*sk+j*sn]       | C_PLAIN: c[z*sb+m*sm+j*sn]
//   conv2d forward      | A_PLAIN: w as [O, C*kH*kW]  | B_IM2COL: x[n, c, oh*s-p+u, ...] | C_NCHW: y[n, m, oh, ow]
//                       |                             |   k = (c,u,v), j = (n,oh,ow)     |
//   conv2d d/dx         | A_CONV_W_T: w[o, m, u, v]   | B_PHASE: dy[n, o, t-u', ...]     | C_PHASE: dx[n, m, ih, iw]
//   (= conv-transpose   |   k = (o,u',v')             |   j = (n,th,tw), see below       |
//    forward)           |                             |                                  |
//   conv2d d/dw         | A_NCHW_ROWS: dy[n, m, pix]  | B_IM2COL_T: x[n, c, oh*s-p+u,..] | C_PLAIN: dw[m, (c,u,v)]
//                       |   k = (n, pix)              |   k = (n,oh,ow), j = (c,u,v)     |
//   conv2d forward,     | A_IM2COL: x[n, c, oh*s-p+u, | B_PLAIN: w as [C*kH*kW, O]      | C_NCHW_T: y[n, j, pix]
//   transposed          |   ...], m = (n,oh,ow)       |   (b_sk = 1)                     |   (m = (n, pix))
//   conv2d d/dw,        | A_IM2COL_T: x[n, c, oh*s-p  | B_NCHW_COLS: dy[n, j, pix]       | C_PLAIN: dw[j, m]
//   transposed          |   +u, ...], m = (c,u,v)     |   k = (n, pix)                   |
//
// (The transposed forms put the im2col operand on the rows, which gemm_vec4 shares by subgroup
// broadcasts; the host uses them on that kernel where they need fewer loads, see src/kernels/conv2d.ts.)
//
// Conv geometry (uniforms) is always that of the forward conv: input x [nimg, xc, xh, xw], output
// y [nimg, yc, yh, yw], kernel kh x kw, stride sh/sw, padding ph/pw.
//
// d/dx by stride phases: dx[ih] gathers dy[oh] * w[u] over ih + p = oh*s + u. For a fixed phase
// r = (ih + p) mod s only the taps u = r + s*u' contribute, and then oh = t - u' with t = (ih + p) div s.
// So z enumerates the s_h*s_w phases, each an ordinary GEMM with no wasted (zero) taps: columns are
// the output pixels of that phase, k runs over (o, u', v'). With stride 1 there is one phase.
//
// Every operand is addressed through an `Ix` (flat offset plus the two spatial coordinates needed for
// the bounds test). A row/column contributes one Ix, the k index another; the element is at
// row.off + k.off, and for the bounded (conv) readers it exists iff the summed coordinates lie inside
// the image (zero padding otherwise). The k Ix is advanced incrementally (`*_next`) in the hot loop
// so the register kernel never divides there; `*_k` computes it from scratch (tiled loads, split
// starts).
//
// Split-K: for long reductions with few outputs (conv d/dw), z also enumerates `splits` chunks of k;
// each writes its partial sums to its own slab of c, and `reduce_splits` adds them up. With
// SPLIT_LANES the chunks are spread over the invocations of a workgroup instead of over columns
// (for results too narrow to fill a workgroup's columns, such as d/dw of a first conv layer).
//
// Kernels on this core:
//   gemm_register: each invocation owns a TM x 8 block of C in registers; no shared memory and no
//     barriers. Made for CPU implementations such as lavapipe, where each invocation is a SIMD lane
//     and every load inside a loop is a per-lane gather costing about as much as a dozen
//     multiply-adds (even when all lanes read one address): the larger the block, the fewer loads per
//     multiply-add. 16 x 8 measured best; larger blocks spill and compile slowly.
//   gemm_subgroup (matmul_subgroups.wgsl): the same with the A loads shared by subgroup broadcasts.
//   gemm_vec4 (matmul_vec4.wgsl): 16 x 4 blocks, k in groups of 4 read as vec4 where the layout allows
//     (the vec4 readers in lib/gemm.wgsl), A rows shared by subgroup broadcasts; the fastest on lavapipe
//     where both operands are read as vec4 (matmul, dense layers).
//   gemm_tiled: the classic shared-memory tiling for GPUs: 64x64 C tiles, 16x16 invocations each
//     computing 4x4, k in steps of 16 staged in workgroup memory.
//
// Bias mode and activation are uniforms rather than override constants: the epilogue runs once per
// output, so the branch costs nothing, while each extra pipeline costs a shader compile (about a
// second on lavapipe).

// ------------------------------------------------------------------------------------ register kernel

fn register_tile(s: Slice, m0: u32, j0: u32) {
  // Out-of-range columns and rows read a valid neighbour and are not written.
  let cols = block_cols(s, j0);
  var rows: array<Ix, TM_MAX>;
  for (var i = 0u; i < TM; i++) {
    rows[i] = a_row(min(m0 + i, p.M - 1u), s);
  }
  var acc_lo: array<vec4f, TM_MAX>;   // columns 0..3
  var acc_hi: array<vec4f, TM_MAX>;   // columns 4..7
  var ka = a_k(s.k0, s);
  var kb = b_k(s.k0, s);
  for (var k = s.k0; k < s.k1; k++) {
    let b_lo = vec4f(b_read(cols[0], kb), b_read(cols[1], kb), b_read(cols[2], kb), b_read(cols[3], kb));
    let b_hi = vec4f(b_read(cols[4], kb), b_read(cols[5], kb), b_read(cols[6], kb), b_read(cols[7], kb));
    for (var i = 0u; i < TM; i++) {
      let av = a_read(rows[i], ka);
      acc_lo[i] += av * b_lo;
      acc_hi[i] += av * b_hi;
    }
    ka = a_next(ka, s);
    kb = b_next(kb, s);
  }
  write_block(s, m0, j0, acc_lo, acc_hi);
}

// Grid: x = column blocks (WG*TN columns, or TN with SPLIT_LANES), y = row blocks of TM, z = batch *
// splits or phases (with SPLIT_LANES: groups of WG splits). Each dimension loops with the grid's
// stride, so grids larger than the device limit can be clamped.
@compute @workgroup_size(WG)
fn gemm_register(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) lid: u32,
) {
  let zn = p.batch * p.splits;
  let col_step = select(WG * TN, TN, SPLIT_LANES);
  for (var zb = wid.z; zb < select(zn, (zn + WG - 1u) / WG, SPLIT_LANES); zb += nwg.z) {
    // With SPLIT_LANES each invocation takes its own split; surplus invocations have nothing to do.
    let z = select(zb, zb * WG + lid, SPLIT_LANES);
    if (z >= zn) {
      break;
    }
    let s = make_slice(z);
    for (var m0 = wid.y * TM; m0 < p.M; m0 += nwg.y * TM) {
      for (var jb = wid.x * col_step; jb < s.n; jb += nwg.x * col_step) {
        register_tile(s, m0, select(jb + lid, jb, SPLIT_LANES));
      }
    }
  }
}
// ------------------------------------------------------------------------------------ tiled kernel

const TILE: u32 = 64u;   // C tile is TILE x TILE
const TK: u32 = 16u;     // k step staged in workgroup memory
const TS: u32 = 16u;     // invocations per tile side (each computes 4x4)
const TR: u32 = 4u;      // = TILE / TS

var<workgroup> As: array<array<f32, TILE>, TK>;   // As[k][m]
var<workgroup> Bs: array<array<f32, TILE>, TK>;   // Bs[k][j]

fn tiled_tile(s: Slice, m0: u32, j0: u32, lx: u32, ly: u32) {
  let li = ly * TS + lx;
  // Staging: invocation li loads row/column mm = li % TILE of the tile at the 4 consecutive k
  // kk = 4*kq .. 4*kq+3 (kq = li / TILE): one k decomposition per tile, then incremental steps.
  let mm = li % TILE;
  let kq = li / TILE;   // 0..3
  let lrow = a_row(min(m0 + mm, p.M - 1u), s);
  let lcol = b_col(min(j0 + mm, s.n - 1u), s);
  let row_ok = m0 + mm < p.M;
  let col_ok = j0 + mm < s.n;

  var acc: array<array<f32, TR>, TR>;
  for (var kt = s.k0; kt < s.k1; kt += TK) {
    let k_first = kt + 4u * kq;
    var ka = a_k(min(k_first, s.k1 - 1u), s);
    var kb = b_k(min(k_first, s.k1 - 1u), s);
    for (var q = 0u; q < 4u; q++) {
      // Past the end of the slice the index may run off its tensor; such values are discarded (and
      // WebGPU bounds-checks the load itself).
      let k_ok = k_first + q < s.k1;
      As[4u * kq + q][mm] = select(0.0, a_read(lrow, ka), row_ok && k_ok);
      Bs[4u * kq + q][mm] = select(0.0, b_read(lcol, kb), col_ok && k_ok);
      ka = a_next(ka, s);
      kb = b_next(kb, s);
    }
    workgroupBarrier();
    for (var kk = 0u; kk < TK; kk++) {
      var bv: array<f32, TR>;
      for (var t = 0u; t < TR; t++) {
        bv[t] = Bs[kk][lx + t * TS];
      }
      for (var i = 0u; i < TR; i++) {
        let av = As[kk][ly + i * TS];
        for (var t = 0u; t < TR; t++) {
          acc[i][t] += av * bv[t];
        }
      }
    }
    workgroupBarrier();
  }
  for (var t = 0u; t < TR; t++) {
    let j = j0 + lx + t * TS;
    if (j < s.n) {
      let cc = c_col(j, s);
      let bj = bias_col(j);
      for (var i = 0u; i < TR; i++) {
        let m = m0 + ly + i * TS;
        if (m < p.M) {
          c[c_at(cc, m)] = epilogue(acc[i][t] + bias_row(m) + bj);
        }
      }
    }
  }
}

// Grid: x = column tiles, y = row tiles, z = batch * splits (or phases); grid-stride loops as above.
// The loop bounds are uniform across the workgroup, so the barriers inside are in uniform control flow.
@compute @workgroup_size(16, 16)
fn gemm_tiled(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_id) lid: vec3u,
) {
  for (var z = wid.z; z < p.batch * p.splits; z += nwg.z) {
    let s = make_slice(z);
    for (var m0 = wid.y * TILE; m0 < p.M; m0 += nwg.y * TILE) {
      for (var j0 = wid.x * TILE; j0 < s.n; j0 += nwg.x * TILE) {
        tiled_tile(s, m0, j0, lid.x, lid.y);
      }
    }
  }
}

// ------------------------------------------------------------------------------------ split-K reduction

// c[m*c_sm + j*c_sn] = epilogue(sum_s a[s*M*N + m*N + j]) for batch 1: adds the partial slabs that a
// split-K gemm wrote (in C_PLAIN layout with c_sb = M*N, c_sm = N, c_sn = 1). A 1-D grid that loops
// with its own stride, so the host may clamp it to the device limit.
@compute @workgroup_size(256)
fn reduce_splits(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let mn = p.M * p.N;
  for (var e = gid.x; e < mn; e += nwg.x * 256u) {
    var sum = 0.0;
    for (var s = 0u; s < p.splits; s++) {
      sum += a[s * mn + e];
    }
    // `b` is not needed here (the host binds the partials to it as well); this dead-at-run-time read
    // keeps it in the 'auto' layout so all entry points share one binding list.
    if (p.splits == 0u) {
      sum = b[0];
    }
    let m = e / p.N;
    let j = e % p.N;
    c[i32(m) * p.c_sm + i32(j) * p.c_sn] = epilogue(sum + bias_row(m) + bias_col(j));
  }
}
