//! import common
// Softmax over the last dimension: x viewed as [rows, k], one invocation per row.
//   forward : y = exp(x - max) / sum(exp(x - max))   (subtracting the row max keeps exp <= 1, so
//             rows holding +-100 neither overflow nor lose their largest term)
//   backward: dx = y * (dy - sum_j dy_j y_j)
// One invocation per row: rows are short in this engine's models (classes, attention-free), and a
// serial loop needs no workgroup barriers, which are slow on lavapipe.

const WG: u32 = 64u;

struct Params {
  rows: u32,
  k: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;          // forward: x; backward: y
@group(0) @binding(2) var<storage, read_write> out: array<f32>;  // forward: y; backward: dx

@compute @workgroup_size(WG)
fn forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let row = linear_index(gid, nwg, WG);
  if (row >= p.rows) { return; }
  let base = row * p.k;
  var m = a[base];
  for (var j = 1u; j < p.k; j++) { m = max(m, a[base + j]); }
  var s = 0.0;
  for (var j = 0u; j < p.k; j++) {
    let e = exp(a[base + j] - m);
    out[base + j] = e;
    s += e;
  }
  let inv = 1.0 / s;
  for (var j = 0u; j < p.k; j++) { out[base + j] = out[base + j] * inv; }
}

@group(0) @binding(3) var<storage, read> dy: array<f32>;

@compute @workgroup_size(WG)
fn backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let row = linear_index(gid, nwg, WG);
  if (row >= p.rows) { return; }
  let base = row * p.k;
  var d = 0.0;
  for (var j = 0u; j < p.k; j++) { d += dy[base + j] * a[base + j]; }
  for (var j = 0u; j < p.k; j++) { out[base + j] = a[base + j] * (dy[base + j] - d); }
}
