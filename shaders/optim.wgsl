//! import common
// Optimizer updates, in place, one invocation per element (memory-bound: every element is read and
// written once). The float64 constants (bias corrections, 1 - beta) are computed on the CPU.
//
// adam (PyTorch torch.optim.Adam, L2 weight decay added to the gradient, not AdamW):
//   g = grad + wd * param
//   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
//   param -= step_size * m / (sqrt(v) / sqrt_bc2 + eps),  step_size = lr / (1 - b1^t), sqrt_bc2 = sqrt(1 - b2^t)
// eps is added after the bias correction of sqrt(v), as PyTorch does (it matters when |g| ~ eps).
//
// sgd (PyTorch torch.optim.SGD):
//   g = grad + wd * param
//   momentum: buf = first_step ? g : momentum buf + (1 - dampening) g
//             g = nesterov ? g + momentum buf : buf
//   param -= lr g

const WG: u32 = 256u;

struct AdamParams {
  n: u32,
  beta1: f32,
  one_minus_beta1: f32,
  beta2: f32,
  one_minus_beta2: f32,
  step_size: f32,
  sqrt_bc2: f32,
  eps: f32,
  weight_decay: f32,
}

@group(0) @binding(0) var<uniform> adam_p: AdamParams;
@group(0) @binding(1) var<storage, read_write> adam_param: array<f32>;
@group(0) @binding(2) var<storage, read> adam_grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> exp_avg: array<f32>;
@group(0) @binding(4) var<storage, read_write> exp_avg_sq: array<f32>;

@compute @workgroup_size(WG)
fn adam(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = linear_index(gid, nwg, WG);
  if (i >= adam_p.n) { return; }
  let w = adam_param[i];
  let g = adam_grad[i] + adam_p.weight_decay * w;
  let m = adam_p.beta1 * exp_avg[i] + adam_p.one_minus_beta1 * g;
  let v = adam_p.beta2 * exp_avg_sq[i] + adam_p.one_minus_beta2 * g * g;
  exp_avg[i] = m;
  exp_avg_sq[i] = v;
  adam_param[i] = w - adam_p.step_size * m / (sqrt(v) / adam_p.sqrt_bc2 + adam_p.eps);
}

struct SgdParams {
  n: u32,
  first_step: u32, // 1 on the first momentum step: the buffer starts as g
  nesterov: u32,
  lr: f32,
  momentum: f32,
  one_minus_dampening: f32,
  weight_decay: f32,
}

@group(0) @binding(0) var<uniform> sgd_p: SgdParams;
@group(0) @binding(1) var<storage, read_write> sgd_param: array<f32>;
@group(0) @binding(2) var<storage, read> sgd_grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> velocity: array<f32>;

// Without momentum there is no buffer to bind.
@compute @workgroup_size(WG)
fn sgd_plain(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = linear_index(gid, nwg, WG);
  if (i >= sgd_p.n) { return; }
  let w = sgd_param[i];
  let g = sgd_grad[i] + sgd_p.weight_decay * w;
  sgd_param[i] = w - sgd_p.lr * g;
}

@compute @workgroup_size(WG)
fn sgd_momentum(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = linear_index(gid, nwg, WG);
  if (i >= sgd_p.n) { return; }
  let w = sgd_param[i];
  var g = sgd_grad[i] + sgd_p.weight_decay * w;
  var buf = g;
  if (sgd_p.first_step == 0u) {
    buf = sgd_p.momentum * velocity[i] + sgd_p.one_minus_dampening * g;
  }
  velocity[i] = buf;
  if (sgd_p.nesterov != 0u) {
    g = g + sgd_p.momentum * buf;
  } else {
    g = buf;
  }
  sgd_param[i] = w - sgd_p.lr * g;
}

// ---------------------------------------------------------------- multi-tensor Adam
// One dispatch updates up to 3 (adam_multi3) or 7 (adam_multi7) parameter tensors: each slot k binds
// its parameter and gradient; the moment estimates of every slot live in two shared buffers (the
// optimizer's flat state) at state_off[k]. Workgroups [wg_start[k], wg_start[k + 1]) take slot k, so a
// workgroup reads one slot only. The update is adam's above, the same f32 operations in the same order
// (bit-identical results).

struct AdamMultiParams {
  n: array<vec4u, 2>,          // elements of slot k
  state_off: array<vec4u, 2>,  // first element of slot k in exp_avg_all / exp_avg_sq_all
  wg_start: array<vec4u, 2>,   // first workgroup of slot k; wg_start[slots] = all workgroups
  slots: u32,
  beta1: f32,
  one_minus_beta1: f32,
  beta2: f32,
  one_minus_beta2: f32,
  step_size: f32,
  sqrt_bc2: f32,
  eps: f32,
  weight_decay: f32,
}

@group(0) @binding(0) var<uniform> am: AdamMultiParams;
@group(0) @binding(1) var<storage, read_write> exp_avg_all: array<f32>;
@group(0) @binding(2) var<storage, read_write> exp_avg_sq_all: array<f32>;
@group(0) @binding(3) var<storage, read_write> param0: array<f32>;
@group(0) @binding(4) var<storage, read> grad0: array<f32>;
@group(0) @binding(5) var<storage, read_write> param1: array<f32>;
@group(0) @binding(6) var<storage, read> grad1: array<f32>;
@group(0) @binding(7) var<storage, read_write> param2: array<f32>;
@group(0) @binding(8) var<storage, read> grad2: array<f32>;
@group(0) @binding(9) var<storage, read_write> param3: array<f32>;
@group(0) @binding(10) var<storage, read> grad3: array<f32>;
@group(0) @binding(11) var<storage, read_write> param4: array<f32>;
@group(0) @binding(12) var<storage, read> grad4: array<f32>;
@group(0) @binding(13) var<storage, read_write> param5: array<f32>;
@group(0) @binding(14) var<storage, read> grad5: array<f32>;
@group(0) @binding(15) var<storage, read_write> param6: array<f32>;
@group(0) @binding(16) var<storage, read> grad6: array<f32>;

fn multi_at(v: array<vec4u, 2>, k: u32) -> u32 {
  return v[k / 4u][k % 4u];
}

// Slots 0-2 (adam_multi3 binds only these).
fn param_load3(k: u32, i: u32) -> f32 {
  switch k {
    case 0u: { return param0[i]; }
    case 1u: { return param1[i]; }
    default: { return param2[i]; }
  }
}

fn grad_load3(k: u32, i: u32) -> f32 {
  switch k {
    case 0u: { return grad0[i]; }
    case 1u: { return grad1[i]; }
    default: { return grad2[i]; }
  }
}

fn param_store3(k: u32, i: u32, w: f32) {
  switch k {
    case 0u: { param0[i] = w; }
    case 1u: { param1[i] = w; }
    default: { param2[i] = w; }
  }
}

// Slots 0-6 (adam_multi7).
fn param_load7(k: u32, i: u32) -> f32 {
  switch k {
    case 3u: { return param3[i]; }
    case 4u: { return param4[i]; }
    case 5u: { return param5[i]; }
    case 6u: { return param6[i]; }
    default: { return param_load3(k, i); }
  }
}

fn grad_load7(k: u32, i: u32) -> f32 {
  switch k {
    case 3u: { return grad3[i]; }
    case 4u: { return grad4[i]; }
    case 5u: { return grad5[i]; }
    case 6u: { return grad6[i]; }
    default: { return grad_load3(k, i); }
  }
}

fn param_store7(k: u32, i: u32, w: f32) {
  switch k {
    case 3u: { param3[i] = w; }
    case 4u: { param4[i] = w; }
    case 5u: { param5[i] = w; }
    case 6u: { param6[i] = w; }
    default: { param_store3(k, i, w); }
  }
}

// The element of this invocation: slot k, index i in it (i >= n: nothing to do).
struct MultiElement {
  k: u32,
  i: u32,
  ok: bool,
}

fn multi_element(wid: vec3u, nwg: vec3u, lid: u32) -> MultiElement {
  let wg = wid.x + wid.y * nwg.x;
  var r = MultiElement(0u, 0u, false);
  if (wg >= multi_at(am.wg_start, am.slots)) { return r; }
  for (var k = 1u; k < am.slots; k++) {
    if (wg >= multi_at(am.wg_start, k)) { r.k = k; }
  }
  r.i = (wg - multi_at(am.wg_start, r.k)) * WG + lid;
  r.ok = r.i < multi_at(am.n, r.k);
  return r;
}

// Updates the moments of state element s from parameter w and gradient grad; returns the new parameter.
fn adam_multi_update(s: u32, w: f32, grad: f32) -> f32 {
  let g = grad + am.weight_decay * w;
  let m = am.beta1 * exp_avg_all[s] + am.one_minus_beta1 * g;
  let v = am.beta2 * exp_avg_sq_all[s] + am.one_minus_beta2 * g * g;
  exp_avg_all[s] = m;
  exp_avg_sq_all[s] = v;
  return w - am.step_size * m / (sqrt(v) / am.sqrt_bc2 + am.eps);
}

@compute @workgroup_size(WG)
fn adam_multi3(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let e = multi_element(wid, nwg, lid);
  if (!e.ok) { return; }
  let s = multi_at(am.state_off, e.k) + e.i;
  param_store3(e.k, e.i, adam_multi_update(s, param_load3(e.k, e.i), grad_load3(e.k, e.i)));
}

@compute @workgroup_size(WG)
fn adam_multi7(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let e = multi_element(wid, nwg, lid);
  if (!e.ok) { return; }
  let s = multi_at(am.state_off, e.k) + e.i;
  param_store7(e.k, e.i, adam_multi_update(s, param_load7(e.k, e.i), grad_load7(e.k, e.i)));
}

// ---------------------------------------------------------------- multi-tensor Adam on vec4s
// The same update four elements at a time: each component goes through the same f32 operations as
// adam_multi_update, so the results are bit-identical, with one storage access per 4 elements for each
// of the step's seven (on CPU adapters every access is emulated per lane, and the step waits for them).
// The bindings alias the scalar ones above (an entry point uses one kind only). The host sends here the
// parameters whose size, moment offset and binding offsets are multiples of 4 elements; n, state_off and
// the element index are then in units of vec4.

@group(0) @binding(1) var<storage, read_write> exp_avg_all4: array<vec4f>;
@group(0) @binding(2) var<storage, read_write> exp_avg_sq_all4: array<vec4f>;
@group(0) @binding(3) var<storage, read_write> param0_4: array<vec4f>;
@group(0) @binding(4) var<storage, read> grad0_4: array<vec4f>;
@group(0) @binding(5) var<storage, read_write> param1_4: array<vec4f>;
@group(0) @binding(6) var<storage, read> grad1_4: array<vec4f>;
@group(0) @binding(7) var<storage, read_write> param2_4: array<vec4f>;
@group(0) @binding(8) var<storage, read> grad2_4: array<vec4f>;
@group(0) @binding(9) var<storage, read_write> param3_4: array<vec4f>;
@group(0) @binding(10) var<storage, read> grad3_4: array<vec4f>;
@group(0) @binding(11) var<storage, read_write> param4_4: array<vec4f>;
@group(0) @binding(12) var<storage, read> grad4_4: array<vec4f>;
@group(0) @binding(13) var<storage, read_write> param5_4: array<vec4f>;
@group(0) @binding(14) var<storage, read> grad5_4: array<vec4f>;
@group(0) @binding(15) var<storage, read_write> param6_4: array<vec4f>;
@group(0) @binding(16) var<storage, read> grad6_4: array<vec4f>;

fn param4_load3(k: u32, i: u32) -> vec4f {
  switch k {
    case 0u: { return param0_4[i]; }
    case 1u: { return param1_4[i]; }
    default: { return param2_4[i]; }
  }
}

fn grad4_load3(k: u32, i: u32) -> vec4f {
  switch k {
    case 0u: { return grad0_4[i]; }
    case 1u: { return grad1_4[i]; }
    default: { return grad2_4[i]; }
  }
}

fn param4_store3(k: u32, i: u32, w: vec4f) {
  switch k {
    case 0u: { param0_4[i] = w; }
    case 1u: { param1_4[i] = w; }
    default: { param2_4[i] = w; }
  }
}

fn param4_load7(k: u32, i: u32) -> vec4f {
  switch k {
    case 3u: { return param3_4[i]; }
    case 4u: { return param4_4[i]; }
    case 5u: { return param5_4[i]; }
    case 6u: { return param6_4[i]; }
    default: { return param4_load3(k, i); }
  }
}

fn grad4_load7(k: u32, i: u32) -> vec4f {
  switch k {
    case 3u: { return grad3_4[i]; }
    case 4u: { return grad4_4[i]; }
    case 5u: { return grad5_4[i]; }
    case 6u: { return grad6_4[i]; }
    default: { return grad4_load3(k, i); }
  }
}

fn param4_store7(k: u32, i: u32, w: vec4f) {
  switch k {
    case 3u: { param3_4[i] = w; }
    case 4u: { param4_4[i] = w; }
    case 5u: { param5_4[i] = w; }
    case 6u: { param6_4[i] = w; }
    default: { param4_store3(k, i, w); }
  }
}

fn adam_multi_update4(s: u32, w: vec4f, grad: vec4f) -> vec4f {
  let g = grad + am.weight_decay * w;
  let m = am.beta1 * exp_avg_all4[s] + am.one_minus_beta1 * g;
  let v = am.beta2 * exp_avg_sq_all4[s] + am.one_minus_beta2 * g * g;
  exp_avg_all4[s] = m;
  exp_avg_sq_all4[s] = v;
  return w - am.step_size * m / (sqrt(v) / am.sqrt_bc2 + am.eps);
}

@compute @workgroup_size(WG)
fn adam_multi3_vec4(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let e = multi_element(wid, nwg, lid);
  if (!e.ok) { return; }
  let s = multi_at(am.state_off, e.k) + e.i;
  param4_store3(e.k, e.i, adam_multi_update4(s, param4_load3(e.k, e.i), grad4_load3(e.k, e.i)));
}

@compute @workgroup_size(WG)
fn adam_multi7_vec4(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let e = multi_element(wid, nwg, lid);
  if (!e.ok) { return; }
  let s = multi_at(am.state_off, e.k) + e.i;
  param4_store7(e.k, e.i, adam_multi_update4(s, param4_load7(e.k, e.i), grad4_load7(e.k, e.i)));
}
