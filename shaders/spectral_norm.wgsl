// Spectral normalisation of a weight viewed as the matrix W [rows, cols] (Miyato et al. 2018; torch's
// spectral_norm, dim 0), forward and backward, each as ONE dispatch of ONE workgroup.
//
// Forward: from the stored estimates u_in [rows], v_in [cols], `steps` power steps
//     v = normalize(Wᵀ u),  u = normalize(W v),   normalize(x) = x / max(|x|, eps)
// (steps = 0: u and v as stored, torch's eval mode), then sigma = uᵀ (W v) and out = W / sigma. The new
// u, v and sigma are written for the caller to keep and for the backward.
// Backward (u, v constant, as in torch): dW = g / sigma - (sum(g ∘ W) / sigma²) u vᵀ.
//
// Why one workgroup: composed from generic ops the same work took about 25 dispatches per forward (and
// more in the backward), each a pass over a small tensor (a discriminator's weights are 10^3-10^6
// values): on the software adapter the per-dispatch cost dominated, and the GAN discriminator runs it at
// every forward. One workgroup sees its own storage writes after a storageBarrier, so the steps chain
// without leaving the kernel; the norms and sums are workgroup reductions.
//
// Loops are arranged so that neighbouring invocations read neighbouring addresses where they can: Wᵀu
// gives each invocation columns and walks the rows; W v gives each invocation rows (its lanes then read
// rows apart, but each walks its row in order: what a CPU's caches want, and the matrices are small).

const WG: u32 = 256u;

struct Params {
  rows: u32,
  cols: u32,
  steps: u32,
  eps: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> w: array<f32>;
// Forward.
@group(0) @binding(2) var<storage, read> u_in: array<f32>;
@group(0) @binding(3) var<storage, read> v_in: array<f32>;
@group(0) @binding(4) var<storage, read_write> u: array<f32>;
@group(0) @binding(5) var<storage, read_write> v: array<f32>;
@group(0) @binding(6) var<storage, read_write> sigma: array<f32>; // [1]
@group(0) @binding(7) var<storage, read_write> out: array<f32>;   // W / sigma
// Backward.
@group(0) @binding(2) var<storage, read> g: array<f32>;           // dL/d(W / sigma)
@group(0) @binding(3) var<storage, read> u_saved: array<f32>;
@group(0) @binding(4) var<storage, read> v_saved: array<f32>;
@group(0) @binding(5) var<storage, read> sigma_saved: array<f32>;
@group(0) @binding(6) var<storage, read_write> dw: array<f32>;

var<workgroup> red: array<f32, WG>;

/** The sum of every invocation's x, returned to all of them (call from uniform control flow). */
fn workgroup_sum(lid: u32, x: f32) -> f32 {
  red[lid] = x;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s >> 1u) {
    if (lid < s) {
      red[lid] += red[lid + s];
    }
    workgroupBarrier();
  }
  let total = red[0];
  workgroupBarrier(); // red is reused by the next call
  return total;
}

@compute @workgroup_size(WG)
fn spectral_norm_forward(@builtin(local_invocation_index) lid: u32) {
  let rows = p.rows;
  let cols = p.cols;
  for (var i = lid; i < rows; i += WG) {
    u[i] = u_in[i];
  }
  for (var j = lid; j < cols; j += WG) {
    v[j] = v_in[j];
  }
  storageBarrier();
  // sigma = uᵀ (W v) after the steps: the last step's u is W v / |W v|, so sigma = |W v|² / max(|W v|, eps),
  // from the reduction that step already made (no further pass over W).
  var sig = 0.0;
  for (var s = 0u; s < p.steps; s++) {
    // v = normalize(Wᵀ u)
    var ss = 0.0;
    for (var j = lid; j < cols; j += WG) {
      var acc = 0.0;
      for (var i = 0u; i < rows; i++) {
        acc += w[i * cols + j] * u[i];
      }
      v[j] = acc;
      ss += acc * acc;
    }
    let inv_v = 1.0 / max(sqrt(workgroup_sum(lid, ss)), p.eps);
    for (var j = lid; j < cols; j += WG) {
      v[j] = v[j] * inv_v; // this invocation's own writes: no barrier needed before
    }
    storageBarrier();
    // u = normalize(W v)
    ss = 0.0;
    for (var i = lid; i < rows; i += WG) {
      var acc = 0.0;
      let row = i * cols;
      for (var j = 0u; j < cols; j++) {
        acc += w[row + j] * v[j];
      }
      u[i] = acc;
      ss += acc * acc;
    }
    let wv_squared = workgroup_sum(lid, ss);
    let inv_u = 1.0 / max(sqrt(wv_squared), p.eps);
    for (var i = lid; i < rows; i += WG) {
      u[i] = u[i] * inv_u;
    }
    sig = wv_squared * inv_u;
    storageBarrier();
  }
  if (p.steps == 0u) {
    // sigma = uᵀ (W v) from the stored u and v (torch's eval mode).
    var d = 0.0;
    for (var i = lid; i < rows; i += WG) {
      var acc = 0.0;
      let row = i * cols;
      for (var j = 0u; j < cols; j++) {
        acc += w[row + j] * v[j];
      }
      d += u[i] * acc;
    }
    sig = workgroup_sum(lid, d);
  }
  if (lid == 0u) {
    sigma[0] = sig;
  }
  let inv_sigma = 1.0 / sig;
  let n = rows * cols;
  for (var k = lid; k < n; k += WG) {
    out[k] = w[k] * inv_sigma;
  }
}

@compute @workgroup_size(WG)
fn spectral_norm_backward(@builtin(local_invocation_index) lid: u32) {
  let rows = p.rows;
  let cols = p.cols;
  let n = rows * cols;
  var d = 0.0;
  for (var k = lid; k < n; k += WG) {
    d += g[k] * w[k];
  }
  let gw = workgroup_sum(lid, d);
  let sig = sigma_saved[0];
  let inv_sigma = 1.0 / sig;
  let c = gw * inv_sigma * inv_sigma;
  for (var j = lid; j < cols; j += WG) {
    let cv = c * v_saved[j];
    for (var i = 0u; i < rows; i++) {
      let k = i * cols + j;
      dw[k] = g[k] * inv_sigma - cv * u_saved[i];
    }
  }
}
