// Nearest-neighbour squared distance: out[i] = min over j of |q_i - m_j|^2 for queries q [n, C] and a
// memory m [M, C] (the feature memory of src/anomaly/feature-memory.ts), computed as
//   |q|^2 + min_j (|m_j|^2 - 2 q.m_j)
// in one pass, so the [n, M] matrix of dot products is never written (n x M floats: 340 MB for one
// 5,000-cell image against 16,384 vectors). Clamped at 0 (float rounding can make it slightly negative
// when q is one of the m_j).
//
// Two entry points here (no subgroups needed): row_norms, the |m_j|^2 that every variant takes as input,
// and nearest_tiled, the portable kernel (made for GPUs with fast workgroup memory). The variant for CPU
// implementations (lavapipe) is shaders/nearest_subgroups.wgsl.

struct Params {
  n: u32,   // queries
  M: u32,   // memory vectors
  C: u32,   // features per vector
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read> m: array<f32>;
@group(0) @binding(4) var<storage, read> mnorm: array<f32>;

// out[i] = |q_i|^2 for the n rows of binding 1 (the host binds the memory there to get its norms).
// One invocation per row.
@compute @workgroup_size(64)
fn row_norms(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  for (var i = gid.x; i < p.n; i += nwg.x * 64u) {
    var s = 0.0;
    for (var k = 0u; k < p.C; k++) {
      let v = q[i * p.C + k];
      s += v * v;
    }
    out[i] = s;
  }
}

const TQ: u32 = 64u;   // queries per workgroup (one per invocation)
const TJ: u32 = 64u;   // memory vectors per tile
const TK: u32 = 16u;   // features per tile

// A tile of TJ memory vectors x TK features, read by every invocation at the same address (a
// broadcast from workgroup memory on a GPU).
var<workgroup> tile: array<array<f32, TK>, TJ>;

// One query per invocation; the memory streams through workgroup memory in TJ x TK tiles, each
// invocation keeping the TJ dot products of the current memory block and its running minimum.
@compute @workgroup_size(TQ)
fn nearest_tiled(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) lid: u32,
) {
  for (var i0 = wid.x * TQ; i0 < p.n; i0 += nwg.x * TQ) {
    // Queries past n compute on a valid row and are not written (every invocation joins the barriers).
    let i = min(i0 + lid, p.n - 1u);
    var best = 3.4e38;
    for (var j0 = 0u; j0 < p.M; j0 += TJ) {
      // Zeroed explicitly: on lavapipe the declaration alone kept the previous block's sums.
      var acc: array<f32, TJ>;
      for (var jj = 0u; jj < TJ; jj++) {
        acc[jj] = 0.0;
      }
      for (var k0 = 0u; k0 < p.C; k0 += TK) {
        workgroupBarrier();
        // TJ * TK = 1024 values, 16 per invocation; memory vectors past M repeat the last one
        // (harmless for a minimum), features past C are 0.
        for (var e = lid; e < TJ * TK; e += TQ) {
          let jj = e / TK;
          let kk = e % TK;
          let j = min(j0 + jj, p.M - 1u);
          let k = k0 + kk;
          tile[jj][kk] = select(0.0, m[j * p.C + min(k, p.C - 1u)], k < p.C);
        }
        workgroupBarrier();
        var qk: array<f32, TK>;
        for (var kk = 0u; kk < TK; kk++) {
          let k = k0 + kk;
          qk[kk] = select(0.0, q[i * p.C + min(k, p.C - 1u)], k < p.C);
        }
        for (var jj = 0u; jj < TJ; jj++) {
          var s = acc[jj];
          for (var kk = 0u; kk < TK; kk++) {
            s += qk[kk] * tile[jj][kk];
          }
          acc[jj] = s;
        }
      }
      for (var jj = 0u; jj < TJ; jj++) {
        let j = min(j0 + jj, p.M - 1u);
        best = min(best, mnorm[j] - 2.0 * acc[jj]);
      }
    }
    if (i0 + lid < p.n) {
      var qq = 0.0;
      for (var k = 0u; k < p.C; k++) {
        let v = q[i * p.C + k];
        qq += v * v;
      }
      out[i] = max(0.0, qq + best);
    }
  }
}
