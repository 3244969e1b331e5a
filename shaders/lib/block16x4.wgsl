// One step of the 16 x 4 register block that gemm_vec4 (matmul_vec4.wgsl) and nearest_subgroup
// (nearest_subgroups.wgsl) keep per invocation: 16 rows, 4 columns as one vec4 per row, advanced over 4
// steps of k at once. Needs `enable subgroups` in the importing shader (its first import).
//
// The 16 rows' A values are the same for every invocation of a subgroup: lane r loads rows r and r + 8
// as vec4 over the 4 steps (a_lo, a_hi) and subgroupBroadcast hands them to the other lanes (register
// shuffles on a CPU; a load with a subgroup-uniform address gets no fast path on lavapipe, so loading
// them in every lane would cost 16 loads instead of 2). bk[kk] holds the 4 columns' values at step kk.
// The four steps of one accumulator run back to back: lavapipe does not fuse fma(), and with 32 vector
// registers the 64 accumulators cannot all stay in registers; this way each accumulator is fetched once
// per 4 multiply-adds, while the 16 B values stay live.

const BLOCK_ROWS: u32 = 16u;

// Rows r and r + 8 += their A values at the 4 steps times bk.
fn block_row_pair(r: u32, a_lo: vec4f, a_hi: vec4f, bk: array<vec4f, 4>, acc: ptr<function, array<vec4f, BLOCK_ROWS>>) {
  var lo = (*acc)[r];
  lo += a_lo.x * bk[0];
  lo += a_lo.y * bk[1];
  lo += a_lo.z * bk[2];
  lo += a_lo.w * bk[3];
  (*acc)[r] = lo;
  var hi = (*acc)[r + 8u];
  hi += a_hi.x * bk[0];
  hi += a_hi.y * bk[1];
  hi += a_hi.z * bk[2];
  hi += a_hi.w * bk[3];
  (*acc)[r + 8u] = hi;
}

// The whole block += A (this lane's a_lo / a_hi, shared by broadcasts) times bk.
fn block_step(a_lo: vec4f, a_hi: vec4f, bk: array<vec4f, 4>, acc: ptr<function, array<vec4f, BLOCK_ROWS>>) {
  // subgroupBroadcast takes a constant lane, hence the unrolled calls.
  block_row_pair(0u, subgroupBroadcast(a_lo, 0u), subgroupBroadcast(a_hi, 0u), bk, acc);
  block_row_pair(1u, subgroupBroadcast(a_lo, 1u), subgroupBroadcast(a_hi, 1u), bk, acc);
  block_row_pair(2u, subgroupBroadcast(a_lo, 2u), subgroupBroadcast(a_hi, 2u), bk, acc);
  block_row_pair(3u, subgroupBroadcast(a_lo, 3u), subgroupBroadcast(a_hi, 3u), bk, acc);
  block_row_pair(4u, subgroupBroadcast(a_lo, 4u), subgroupBroadcast(a_hi, 4u), bk, acc);
  block_row_pair(5u, subgroupBroadcast(a_lo, 5u), subgroupBroadcast(a_hi, 5u), bk, acc);
  block_row_pair(6u, subgroupBroadcast(a_lo, 6u), subgroupBroadcast(a_hi, 6u), bk, acc);
  block_row_pair(7u, subgroupBroadcast(a_lo, 7u), subgroupBroadcast(a_hi, 7u), bk, acc);
}
