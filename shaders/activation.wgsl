//! import common
// Elementwise activations: ReLU, leaky ReLU, sigmoid, tanh (codes in lib/common.wgsl).
//   forward : y = act(x)
//   backward: dx = dy * act'(x), with act' written from the output y (see activate_grad_from_output)

override ACT: u32 = 1u;
// Consecutive elements per invocation: many on CPU implementations (lavapipe), where per-invocation
// overhead dominates (as in elementwise.wgsl); 1 on real GPUs.
override V: u32 = 1u;
const WG: u32 = 256u;

struct Params {
  n: u32,
  slope: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;        // forward: x; backward: y
@group(0) @binding(2) var<storage, read_write> out: array<f32>; // forward: y; backward: dx

@compute @workgroup_size(WG)
fn forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let start = linear_index(gid, nwg, WG) * V;
  let end = min(p.n, start + V);
  for (var i = start; i < end; i++) { out[i] = activate(ACT, a[i], p.slope); }
}

@group(0) @binding(3) var<storage, read> dy: array<f32>;

@compute @workgroup_size(WG)
fn backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let start = linear_index(gid, nwg, WG) * V;
  let end = min(p.n, start + V);
  for (var i = start; i < end; i++) { out[i] = dy[i] * activate_grad_from_output(ACT, a[i], p.slope); }
}
