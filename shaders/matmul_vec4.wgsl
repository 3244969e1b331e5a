//! import enable_subgroups
//! import block16x4
//! import common
//! import generated:gemm_params
//! import gemm
// gemm_vec4: a GEMM kernel on the shared core (lib/gemm.wgsl) made for CPU implementations such as
// lavapipe, where every invocation is one lane of a SIMD register and every load is emulated per lane
// (about 40 cycles for 8 lanes, the same for a vec4 as for a scalar, with a bounds check per element),
// even when all lanes read one address. So the kernel minimises loads per multiply-add:
//
//   - each invocation owns 16 rows x 4 columns of C (64 accumulators; the layout measured fastest on
//     lavapipe, issue 10);
//   - k advances in groups of 4, and operands are read as vec4 over those 4 steps wherever the layout
//     allows (a_read4 / b_read4 in lib/gemm.wgsl: one load instead of four);
//   - the 16 A rows are shared through subgroup broadcasts and the four k steps of one accumulator run
//     back to back (block_step, lib/block16x4.wgsl, which says why).
//
// Per group of 4 steps an invocation does 2 + 4 loads (vec4 readers) for 256 multiply-adds; the
// register kernel of matmul.wgsl does 4 * (16 + 8) for 512, matmul_subgroups.wgsl 4 * (2 + 8).
//
// With scalar reads only, the 16 x 4 block loads more per multiply-add than gemm_subgroup's 16 x 8 (an
// A value serves 4 columns instead of 8), so the host uses this kernel for GEMMs of more than 4 rows
// where at least one operand is read as vec4 (runsVec4 in src/kernels/matmul.ts), and then prefers the
// form of the problem (C or C^T) with the fewer loads.
//
// Needs subgroups of at least 8 invocations whose members all share the workgroup's rows (always so
// here: rows come from workgroup_id only).

const V4_ROWS: u32 = BLOCK_ROWS;   // rows of C per invocation (the same for the whole workgroup; lib/block16x4.wgsl)
const V4_COLS: u32 = 4u;    // columns of C per invocation
// Invocations per workgroup: two lavapipe subgroups of 8 (the size measured fastest).
const V4_WG: u32 = 16u;
const V4_BLOCK_COLS: u32 = V4_WG * V4_COLS;   // columns of a workgroup's block

// Column t (0..3) of invocation `lid` in the block starting at column jb.
fn v4_col(jb: u32, lid: u32, t: u32) -> u32 {
  if (B_VEC4 == B_VEC4_COLUMNS) {
    // Adjacent: the 4 columns are one vec4 of a row of B.
    return jb + V4_COLS * lid + t;
  }
  // Strided by 8: each 8 invocations hold 32 consecutive columns, and their stores of one t are
  // adjacent.
  return jb + (lid / 8u) * 32u + lid % 8u + 8u * t;
}

// Writes the 16 x 4 block (rows m0.., columns js) through the epilogue.
fn v4_write(s: Slice, m0: u32, js: array<u32, V4_COLS>, acc: array<vec4f, V4_ROWS>) {
  var out_cols: array<CCol, V4_COLS>;
  var col_ok: array<bool, V4_COLS>;
  var col_bias: vec4f;
  for (var t = 0u; t < V4_COLS; t++) {
    let j = min(js[t], s.n - 1u);
    col_ok[t] = js[t] < s.n;
    out_cols[t] = c_col(j, s);
    col_bias[t] = bias_col(j);
  }
  // A run-time loop over rows (not unrolled), as in write_block: unrolled scattered stores make
  // lavapipe's compile much slower.
  let rows_left = min(V4_ROWS, p.M - m0);
  for (var i = 0u; i < rows_left; i++) {
    let m = m0 + i;
    let v = acc[i] + col_bias + bias_row(m);
    // Once per row: C_NCHW_T divides there, and a division per element is costly on a CPU.
    let row_off = c_row(m, out_cols[0].row_stride);
    for (var t = 0u; t < V4_COLS; t++) {
      if (col_ok[t]) {
        c[out_cols[t].base + row_off] = epilogue(v[t]);
      }
    }
  }
}

fn v4_tile(s: Slice, m0: u32, jb: u32, lid: u32, sid: u32) {
  // Out-of-range rows and columns read a valid neighbour and are not written.
  var js: array<u32, V4_COLS>;
  var cols: array<Ix, V4_COLS>;
  for (var t = 0u; t < V4_COLS; t++) {
    js[t] = v4_col(jb, lid, t);
    cols[t] = b_col(min(js[t], s.n - 1u), s);
  }
  // This lane's two rows to load for the subgroup.
  let loader = sid % 8u;
  let row_lo = a_row(min(m0 + loader, p.M - 1u), s);
  let row_hi = a_row(min(m0 + 8u + loader, p.M - 1u), s);
  var acc: array<vec4f, V4_ROWS>;
  var ka = a_k(s.k0, s);
  var kb = b_k(s.k0, s);
  for (var k = s.k0; k < s.k1; k += 4u) {
    let left = s.k1 - k;   // uniform: the last group may have fewer than 4 steps
    let ksa = a_k4(ka, s);
    let ksb = b_k4(kb, s);
    let a_lo = a_read4(row_lo, ksa, left);
    let a_hi = a_read4(row_hi, ksa, left);
    let bk = b_read4(cols, ksb, left);
    block_step(a_lo, a_hi, bk, &acc);
    ka = a_next(ksa[3], s);
    kb = b_next(ksb[3], s);
  }
  v4_write(s, m0, js, acc);
}

// Grid: x = column blocks of V4_BLOCK_COLS, y = row blocks of 16, z = batch * splits or phases;
// grid-stride loops (uniform, as subgroup operations require), so the host may clamp the grid.
@compute @workgroup_size(V4_WG)
fn gemm_vec4(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) lid: u32,
  @builtin(subgroup_invocation_id) sid: u32,
) {
  for (var z = wid.z; z < p.batch * p.splits; z += nwg.z) {
    let s = make_slice(z);
    for (var m0 = wid.y * V4_ROWS; m0 < p.M; m0 += nwg.y * V4_ROWS) {
      for (var jb = wid.x * V4_BLOCK_COLS; jb < s.n; jb += nwg.x * V4_BLOCK_COLS) {
        v4_tile(s, m0, jb, lid, sid);
      }
    }
  }
}
