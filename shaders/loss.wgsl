//! import common
// Mean-reduced losses and their gradients.
//
// Forward entries: invocation g sums the loss terms of one contiguous chunk (`chunk` elements, or
// `chunk` rows for cross-entropy), times alpha = 1/count, into partial[g]. With a single chunk that
// partial is the 0-d loss itself; otherwise the host sums the partials with the reduce kernel. No
// atomics, no shared memory.
//
// Backward entries: V elements per invocation (one row for cross-entropy). The upstream gradient
// of the loss is read from grad_out[0] on the GPU, so no readback is needed between passes.
//
//   bce               term = -(t log p + (1-t) log(1-p)), each log clamped at >= -100 (as PyTorch)
//                     dp   = g * (p - t) / max(p (1-p), 1e-12) / n                (PyTorch's formula)
//   bce_with_logits   term = max(z,0) - z t + log(1 + exp(-|z|))                  (no overflow at +-80)
//                     dz   = g * (sigmoid(z) - t) / n
//   cross_entropy     term = logsumexp(z_row) - z_row[label]   (z viewed as [rows, k])
//                     dz   = g * (softmax(z_row) - onehot(label)) / rows
// Labels are clamped into [0, k) so a bad label cannot read out of bounds; callers validate them.

const WG: u32 = 64u;
// Elements per invocation in the elementwise backward entries: many on CPU implementations
// (lavapipe) where per-invocation overhead dominates, 1 on real GPUs.
override V: u32 = 1u;

struct Params {
  n: u32,       // elements (bce, bce_with_logits) or rows (cross_entropy)
  k: u32,       // classes (cross_entropy only)
  chunk: u32,   // forward: elements or rows per invocation
  alpha: f32,   // 1 / count: the mean
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;            // p, z or logits
@group(0) @binding(2) var<storage, read> tgt: array<f32>;          // bce targets
@group(0) @binding(2) var<storage, read> labels: array<i32>;       // cross-entropy labels
@group(0) @binding(3) var<storage, read_write> partial: array<f32>; // forward output
@group(0) @binding(3) var<storage, read> grad_out: array<f32>;      // backward: upstream gradient [1]
@group(0) @binding(4) var<storage, read_write> da: array<f32>;      // backward output

// log(1 + e) for 0 <= e <= 1 without losing e when it is tiny (1 + e rounds to 1 for e < 6e-8).
fn log1p_small(e: f32) -> f32 {
  let u = 1.0 + e;
  if (u == 1.0) { return e; }
  return log(u) * (e / (u - 1.0));
}

fn bce_term(pv: f32, t: f32) -> f32 {
  let lp = max(log(pv), -100.0);
  let lq = max(log(1.0 - pv), -100.0);
  return -(t * lp + (1.0 - t) * lq);
}

fn bce_logits_term(z: f32, t: f32) -> f32 {
  return max(z, 0.0) - z * t + log1p_small(exp(-abs(z)));
}

fn label_of(row: u32) -> u32 {
  return u32(clamp(labels[row], 0, i32(p.k) - 1));
}

// logsumexp of row `row` (max subtracted first so +-100 does not overflow).
fn row_logsumexp(base: u32) -> f32 {
  var m = a[base];
  for (var j = 1u; j < p.k; j++) { m = max(m, a[base + j]); }
  var s = 0.0;
  for (var j = 0u; j < p.k; j++) { s += exp(a[base + j] - m); }
  return m + log(s);
}

@compute @workgroup_size(WG)
fn bce_forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let g = linear_index(gid, nwg, WG);
  let start = g * p.chunk;
  if (start >= p.n) { return; }
  let end = min(p.n, start + p.chunk);
  var acc = 0.0;
  for (var i = start; i < end; i++) { acc += bce_term(a[i], tgt[i]); }
  partial[g] = p.alpha * acc;
}

@compute @workgroup_size(WG)
fn bce_with_logits_forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let g = linear_index(gid, nwg, WG);
  let start = g * p.chunk;
  if (start >= p.n) { return; }
  let end = min(p.n, start + p.chunk);
  var acc = 0.0;
  for (var i = start; i < end; i++) { acc += bce_logits_term(a[i], tgt[i]); }
  partial[g] = p.alpha * acc;
}

@compute @workgroup_size(WG)
fn cross_entropy_forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let g = linear_index(gid, nwg, WG);
  let start = g * p.chunk;
  if (start >= p.n) { return; }
  let end = min(p.n, start + p.chunk);
  var acc = 0.0;
  for (var row = start; row < end; row++) {
    let base = row * p.k;
    acc += row_logsumexp(base) - a[base + label_of(row)];
  }
  partial[g] = p.alpha * acc;
}

@compute @workgroup_size(WG)
fn bce_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let start = linear_index(gid, nwg, WG) * V;
  let end = min(p.n, start + V);
  let scale = grad_out[0] * p.alpha;
  for (var i = start; i < end; i++) {
    let pv = a[i];
    da[i] = scale * (pv - tgt[i]) / max(pv * (1.0 - pv), 1e-12);
  }
}

@compute @workgroup_size(WG)
fn bce_with_logits_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let start = linear_index(gid, nwg, WG) * V;
  let end = min(p.n, start + V);
  let scale = grad_out[0] * p.alpha;
  for (var i = start; i < end; i++) { da[i] = scale * (sigmoid_f(a[i]) - tgt[i]); }
}

@compute @workgroup_size(WG)
fn cross_entropy_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let row = linear_index(gid, nwg, WG);
  if (row >= p.n) { return; }
  let base = row * p.k;
  var m = a[base];
  for (var j = 1u; j < p.k; j++) { m = max(m, a[base + j]); }
  var s = 0.0;
  for (var j = 0u; j < p.k; j++) { s += exp(a[base + j] - m); }
  let scale = grad_out[0] * p.alpha;
  let inv = 1.0 / s;
  let label = label_of(row);
  for (var j = 0u; j < p.k; j++) {
    let onehot = select(0.0, 1.0, j == label);
    da[base + j] = scale * (exp(a[base + j] - m) * inv - onehot);
  }
}
