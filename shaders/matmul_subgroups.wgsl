//! import enable_subgroups
//! import common
//! import generated:gemm_params
//! import gemm
// The register-block GEMM of shaders/matmul.wgsl (gemm_register), with its A loads shared through
// subgroup broadcasts. On lavapipe every load inside a loop is a per-invocation gather (about as
// costly as a dozen multiply-adds), even when all invocations read the same address, and the 16 A
// values per k step are the same for every invocation of a workgroup. Here invocation r of each
// subgroup loads rows r and 8 + r only, and subgroupBroadcast hands the 16 values to the others, which
// a CPU implementation turns into register shuffles: 2 + 8 loads per k step instead of 16 + 8.
//
// Needs subgroups of at least 8 invocations whose members all share the workgroup's rows (always so
// here: rows come from workgroup_id only). The host uses it for TM = 16 without SPLIT_LANES.

// rows r and 8 + r of the block += their A values times the 8 B values.
fn row_pair(r: u32, a0: f32, a1: f32, b_lo: vec4f, b_hi: vec4f, acc_lo: ptr<function, array<vec4f, TM_MAX>>, acc_hi: ptr<function, array<vec4f, TM_MAX>>) {
  (*acc_lo)[r] += a0 * b_lo;
  (*acc_hi)[r] += a0 * b_hi;
  (*acc_lo)[r + 8u] += a1 * b_lo;
  (*acc_hi)[r + 8u] += a1 * b_hi;
}

fn subgroup_tile(s: Slice, m0: u32, j0: u32, sid: u32) {
  let cols = block_cols(s, j0);
  // This invocation's two A rows (clamped: rows past M read a valid one and are not written).
  let row_lo = a_row(min(m0 + sid % 8u, p.M - 1u), s);
  let row_hi = a_row(min(m0 + 8u + sid % 8u, p.M - 1u), s);
  var acc_lo: array<vec4f, TM_MAX>;   // columns 0..3
  var acc_hi: array<vec4f, TM_MAX>;   // columns 4..7
  var ka = a_k(s.k0, s);
  var kb = b_k(s.k0, s);
  for (var k = s.k0; k < s.k1; k++) {
    let b_lo = vec4f(b_read(cols[0], kb), b_read(cols[1], kb), b_read(cols[2], kb), b_read(cols[3], kb));
    let b_hi = vec4f(b_read(cols[4], kb), b_read(cols[5], kb), b_read(cols[6], kb), b_read(cols[7], kb));
    let a_lo = a_read(row_lo, ka);
    let a_hi = a_read(row_hi, ka);
    // subgroupBroadcast takes a constant lane, hence the unrolled calls.
    row_pair(0u, subgroupBroadcast(a_lo, 0u), subgroupBroadcast(a_hi, 0u), b_lo, b_hi, &acc_lo, &acc_hi);
    row_pair(1u, subgroupBroadcast(a_lo, 1u), subgroupBroadcast(a_hi, 1u), b_lo, b_hi, &acc_lo, &acc_hi);
    row_pair(2u, subgroupBroadcast(a_lo, 2u), subgroupBroadcast(a_hi, 2u), b_lo, b_hi, &acc_lo, &acc_hi);
    row_pair(3u, subgroupBroadcast(a_lo, 3u), subgroupBroadcast(a_hi, 3u), b_lo, b_hi, &acc_lo, &acc_hi);
    row_pair(4u, subgroupBroadcast(a_lo, 4u), subgroupBroadcast(a_hi, 4u), b_lo, b_hi, &acc_lo, &acc_hi);
    row_pair(5u, subgroupBroadcast(a_lo, 5u), subgroupBroadcast(a_hi, 5u), b_lo, b_hi, &acc_lo, &acc_hi);
    row_pair(6u, subgroupBroadcast(a_lo, 6u), subgroupBroadcast(a_hi, 6u), b_lo, b_hi, &acc_lo, &acc_hi);
    row_pair(7u, subgroupBroadcast(a_lo, 7u), subgroupBroadcast(a_hi, 7u), b_lo, b_hi, &acc_lo, &acc_hi);
    ka = a_next(ka, s);
    kb = b_next(kb, s);
  }
  write_block(s, m0, j0, acc_lo, acc_hi);
}

// Grid as gemm_register without SPLIT_LANES: x = column blocks of WG*TN, y = row blocks of 16,
// z = batch * splits or phases; grid-stride loops (uniform, as subgroup operations require).
@compute @workgroup_size(WG)
fn gemm_subgroup(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) lid: u32,
  @builtin(subgroup_invocation_id) sid: u32,
) {
  for (var z = wid.z; z < p.batch * p.splits; z += nwg.z) {
    let s = make_slice(z);
    for (var m0 = wid.y * 16u; m0 < p.M; m0 += nwg.y * 16u) {
      for (var jb = wid.x * WG * TN; jb < s.n; jb += nwg.x * WG * TN) {
        subgroup_tile(s, m0, jb + lid, sid);
      }
    }
  }
}
