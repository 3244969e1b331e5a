//! import common
//! import generated:batchnorm2d_params
// Batch normalisation over NCHW tensors: statistics per channel c over the m = N*H*W elements
// x[n, c, :, :].
//
// Per-channel reductions (batch statistics, and sum(dy), sum(dy * (x - mean)) for the backward pass)
// run in two dispatches, without float atomics or workgroup barriers:
//   *_partial: invocation (c, t), t < parts, reduces its share of channel c's elements into partials;
//   *_combine: invocation c merges the `parts` partials of channel c in order.
// The share of invocation t is chosen on the CPU through uniforms, which gives the two variants:
//   chunked     : a contiguous run of `chunk` elements starting at j = t * chunk (step 1);
//   interleaved : elements j = t, t + parts, t + 2 parts, ... (start_mul 1, step = parts), so
//                 neighbouring invocations read neighbouring addresses.
// j indexes channel c's elements in (n, h*w) order; the walk keeps (n, s = h*w) and steps them without
// a division per element (step = step_n * hw + step_s, step_s < hw).
//
// Statistics are numerically sound for large m and far-from-zero means: each invocation computes
// (count, mean, M2 = sum of squared deviations) of its share with the two-pass algorithm on shifted
// values, and the combine pass merges these with Chan et al.'s pairwise formula. No sum of squares of
// raw values is ever formed.
//
// A batch over one storage binding is processed in ranges of images (src/kernels/batch-split.ts): the
// partial and elementwise passes run per range (m, parts, planes of the range), the combine passes
// once over the partials of all ranges (parts_total, m_total).
//
// Elementwise passes (normalize, grad_input) give each invocation `elems` consecutive elements of one
// (n, c) plane, so the channel index is found once per `elems` elements (16 for lavapipe, 1 for GPUs).
//
// SPREAD_IS_VAR: the `spread` buffer holds a variance (eval mode: running_var, inv_std computed here as
// 1/sqrt(var + eps)); otherwise it holds inv_std directly (training mode: the batch statistics).

override SPREAD_IS_VAR: bool = false;

// `Params` (the uniform block: sizes, the partial-reduction walk, eps, momentum, the range's place among
// the whole batch's partials) and WG, the workgroup size of every entry point, are declared once in
// src/kernels/batchnorm2d.ts and reach the shader through `//! import generated:batchnorm2d_params`.

@group(0) @binding(0) var<uniform> p: Params;

// ------------------------------------------------------------------ walking one partial's elements

struct Walk {
  n: u32,
  s: u32,
  count: u32,
}

fn walk_start(t: u32) -> Walk {
  let j0 = t * p.start_mul;
  var count = 0u;
  if (j0 < p.m) {
    count = min(p.chunk, (p.m - 1u - j0) / p.step + 1u);
  }
  return Walk(j0 / p.hw, j0 % p.hw, count);
}

fn walk_address(w: Walk, c: u32) -> u32 {
  return (w.n * p.channels + c) * p.hw + w.s;
}

fn walk_advance(w: ptr<function, Walk>) {
  (*w).s += p.step_s;
  (*w).n += p.step_n;
  if ((*w).s >= p.hw) {
    (*w).s -= p.hw;
    (*w).n += 1u;
  }
}

fn inv_std_of(c: u32) -> f32 {
  if (SPREAD_IS_VAR) {
    return 1.0 / sqrt(spread[c] + p.eps);
  }
  return spread[c];
}

// ------------------------------------------------------------------ bindings
// Numbers are per entry point; variables sharing a number belong to different entry points.

@group(0) @binding(1) var<storage, read> x: array<f32>;

@group(0) @binding(2) var<storage, read_write> stat_parts: array<f32>;  // stats_partial: [C, parts, 3] count, mean, M2
@group(0) @binding(1) var<storage, read> stat_parts_in: array<f32>;     // stats_combine
@group(0) @binding(2) var<storage, read_write> mean_out: array<f32>;    // [C]
@group(0) @binding(3) var<storage, read_write> inv_std_out: array<f32>; // [C]
@group(0) @binding(4) var<storage, read_write> running_mean: array<f32>;
@group(0) @binding(5) var<storage, read_write> running_var: array<f32>;

@group(0) @binding(2) var<storage, read_write> y: array<f32>;           // normalize
@group(0) @binding(2) var<storage, read> dy: array<f32>;                // grad_partial, grad_input
@group(0) @binding(3) var<storage, read> center: array<f32>;            // batch mean or running mean
@group(0) @binding(4) var<storage, read> spread: array<f32>;            // inv_std, or running var (SPREAD_IS_VAR)
@group(0) @binding(5) var<storage, read> gamma: array<f32>;
@group(0) @binding(6) var<storage, read> beta: array<f32>;              // normalize
@group(0) @binding(6) var<storage, read_write> dx: array<f32>;          // grad_partial (eval), grad_input
@group(0) @binding(7) var<storage, read_write> grad_parts: array<f32>;  // grad_partial: [C, parts, 2] sum dy, sum dy (x - center)

@group(0) @binding(1) var<storage, read> grad_parts_in: array<f32>;     // grad_combine
@group(0) @binding(2) var<storage, read_write> dgamma_out: array<f32>;
@group(0) @binding(3) var<storage, read_write> dbeta_out: array<f32>;
@group(0) @binding(7) var<storage, read> dgamma_in: array<f32>;         // grad_input
@group(0) @binding(8) var<storage, read> dbeta_in: array<f32>;

// ------------------------------------------------------------------ batch statistics

// Two passes over this invocation's share: the mean first, then the sum of squared deviations from
// it (plus the usual correction term, which is ~0 unless the first pass rounded). Values are shifted by
// the share's first element k0 so that the sums are of numbers of the data's spread, not its
// magnitude: with a mean 100x the standard deviation, an unshifted float32 running mean loses digits.
@compute @workgroup_size(WG)
fn stats_partial(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let id = linear_index(gid, nwg, WG);
  if (id >= p.channels * p.parts) { return; }
  let c = id / p.parts;
  let start = walk_start(id % p.parts);
  var mean = 0.0;
  var m2 = 0.0;
  if (start.count > 0u) {
    let k0 = x[walk_address(start, c)];
    var w = start;
    var s1 = 0.0;
    for (var k = 0u; k < w.count; k++) {
      s1 += x[walk_address(w, c)] - k0;
      walk_advance(&w);
    }
    let count = f32(start.count);
    let shifted_mean = s1 / count;
    w = start;
    var sd = 0.0;
    for (var k = 0u; k < w.count; k++) {
      let d = x[walk_address(w, c)] - k0 - shifted_mean;
      sd += d;
      m2 += d * d;
      walk_advance(&w);
    }
    m2 -= sd * sd / count;
    mean = k0 + shifted_mean;
  }
  let slot = 3u * (c * p.parts_total + p.part_offset + id % p.parts);
  stat_parts[slot] = f32(start.count);
  stat_parts[slot + 1u] = mean;
  stat_parts[slot + 2u] = max(m2, 0.0);
}

// Chan's merge of (count, mean, M2) partials; then the normalisation statistics and the in-place
// running-statistics update: running = (1 - momentum) running + momentum stat, where running_var
// takes the unbiased variance M2 / (m - 1) (the biased one when m = 1).
@compute @workgroup_size(WG)
fn stats_combine(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let c = linear_index(gid, nwg, WG);
  if (c >= p.channels) { return; }
  // Means are merged relative to the first partial's mean k0 (as in the partial pass, so the running
  // mean holds small numbers and does not drift by an ulp of |mean| per merge).
  let k0 = stat_parts_in[3u * c * p.parts_total + 1u];
  var count = 0.0;
  var mean = 0.0; // of the values minus k0
  var m2 = 0.0;
  for (var t = 0u; t < p.parts_total; t++) {
    let base = 3u * (c * p.parts_total + t);
    let nb = stat_parts_in[base];
    if (nb == 0.0) { continue; }
    let total = count + nb;
    let delta = (stat_parts_in[base + 1u] - k0) - mean;
    mean += delta * (nb / total);
    m2 += stat_parts_in[base + 2u] + delta * delta * (count * (nb / total));
    count = total;
  }
  mean += k0;
  m2 = max(m2, 0.0);
  let biased = m2 * p.inv_m;
  var unbiased = biased;
  if (p.m_total > 1u) {
    unbiased = m2 / f32(p.m_total - 1u);
  }
  mean_out[c] = mean;
  inv_std_out[c] = 1.0 / sqrt(biased + p.eps);
  running_mean[c] = (1.0 - p.momentum) * running_mean[c] + p.momentum * mean;
  running_var[c] = (1.0 - p.momentum) * running_var[c] + p.momentum * unbiased;
}

// y = (x - center) * (gamma * inv_std) + beta; `elems` consecutive elements of one plane per invocation.
@compute @workgroup_size(WG)
fn normalize(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let g = linear_index(gid, nwg, WG);
  let plane = g / p.chunks_per_plane;
  if (plane >= p.planes) { return; }
  let c = plane % p.channels;
  let s0 = (g % p.chunks_per_plane) * p.elems;
  let base = plane * p.hw;
  let mu = center[c];
  let scale = gamma[c] * inv_std_of(c);
  let shift = beta[c];
  for (var k = 0u; k < p.elems; k++) {
    let s = s0 + k;
    if (s < p.hw) {
      y[base + s] = (x[base + s] - mu) * scale + shift;
    }
  }
}

// ------------------------------------------------------------------ backward

// Partial sums of dy and dy * (x - center) over this invocation's share. In eval mode the input
// gradient is elementwise, dx = dy * gamma * inv_std, and is written in the same walk.
@compute @workgroup_size(WG)
fn grad_partial(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let id = linear_index(gid, nwg, WG);
  if (id >= p.channels * p.parts) { return; }
  let c = id / p.parts;
  var w = walk_start(id % p.parts);
  let mu = center[c];
  var coef = 0.0;
  if (SPREAD_IS_VAR) {
    coef = gamma[c] * inv_std_of(c);
  }
  var s1 = 0.0;
  var s2 = 0.0;
  for (var k = 0u; k < w.count; k++) {
    let a = walk_address(w, c);
    let g = dy[a];
    s1 += g;
    s2 += g * (x[a] - mu);
    if (SPREAD_IS_VAR) {
      dx[a] = g * coef;
    }
    walk_advance(&w);
  }
  let slot = 2u * (c * p.parts_total + p.part_offset + id % p.parts);
  grad_parts[slot] = s1;
  grad_parts[slot + 1u] = s2;
}

// dbeta = sum dy, dgamma = inv_std * sum dy (x - center) = sum dy * xhat.
@compute @workgroup_size(WG)
fn grad_combine(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let c = linear_index(gid, nwg, WG);
  if (c >= p.channels) { return; }
  var s1 = 0.0;
  var s2 = 0.0;
  for (var t = 0u; t < p.parts_total; t++) {
    let base = 2u * (c * p.parts_total + t);
    s1 += grad_parts_in[base];
    s2 += grad_parts_in[base + 1u];
  }
  dbeta_out[c] = s1;
  dgamma_out[c] = s2 * inv_std_of(c);
}

// Training-mode input gradient, with the batch statistics' own dependence on x:
//   dx = gamma * inv_std * (dy - dbeta / m - xhat * dgamma / m),  xhat = (x - mean) * inv_std
@compute @workgroup_size(WG)
fn grad_input(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let g = linear_index(gid, nwg, WG);
  let plane = g / p.chunks_per_plane;
  if (plane >= p.planes) { return; }
  let c = plane % p.channels;
  let s0 = (g % p.chunks_per_plane) * p.elems;
  let base = plane * p.hw;
  let mu = center[c];
  let inv = inv_std_of(c);
  let coef = gamma[c] * inv;
  let mean_dy = dbeta_in[c] * p.inv_m;
  let mean_dy_xhat = dgamma_in[c] * p.inv_m;
  for (var k = 0u; k < p.elems; k++) {
    let s = s0 + k;
    if (s < p.hw) {
      let xhat = (x[base + s] - mu) * inv;
      dx[base + s] = coef * (dy[base + s] - mean_dy - xhat * mean_dy_xhat);
    }
  }
}
