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
