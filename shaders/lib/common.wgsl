// Shared helpers, prepended to shaders that start with `//! import common`.

// Linear index of an invocation in a 1-D problem dispatched with Engine.grid(n, WG): the grid is
// folded into y when it exceeds 65535 workgroups.
fn linear_index(gid: vec3u, nwg: vec3u, wg_size: u32) -> u32 {
  return gid.x + gid.y * nwg.x * wg_size;
}

// Activation codes (ACT_NONE, ACT_RELU, ...) shared by every fused epilogue and by the activation
// kernels: declared once, as ACTIVATION_CODE in src/kernels/activation.ts.
//! import generated:activation_codes

// Numerically safe sigmoid: exp of a negative argument only, so +-80 neither overflows nor gives NaN.
fn sigmoid_f(x: f32) -> f32 {
  if (x >= 0.0) {
    return 1.0 / (1.0 + exp(-x));
  }
  let e = exp(x);
  return e / (1.0 + e);
}

// tanh through exp(-2|x|) (WGSL's tanh may overflow for |x| > ~44 on some drivers).
fn tanh_f(x: f32) -> f32 {
  let e = exp(-2.0 * abs(x));
  let t = (1.0 - e) / (1.0 + e);
  return select(-t, t, x >= 0.0);
}

fn activate(act: u32, x: f32, slope: f32) -> f32 {
  switch act {
    case 1u: { return max(x, 0.0); }
    case 2u: { return select(slope * x, x, x > 0.0); }
    case 3u: { return sigmoid_f(x); }
    case 4u: { return tanh_f(x); }
    default: { return x; }
  }
}

// d activation / d pre-activation, written in terms of the activation's OUTPUT y (so backward passes
// need only the output; for ReLU/leaky ReLU the sign of y equals the sign of x).
fn activate_grad_from_output(act: u32, y: f32, slope: f32) -> f32 {
  switch act {
    case 1u: { return select(0.0, 1.0, y > 0.0); }
    case 2u: { return select(slope, 1.0, y > 0.0); }
    case 3u: { return y * (1.0 - y); }
    case 4u: { return 1.0 - y * y; }
    default: { return 1.0; }
  }
}
