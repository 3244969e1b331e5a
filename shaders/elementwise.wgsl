//! import common
// Elementwise arithmetic on float32 tensors.
//   binary          : out = a (op) b with numpy-style broadcasting (op = OP override: add/sub/mul/div)
//   scale           : out = alpha * x + beta
//   scale_by_scalar : out = alpha * s[0] * x   (s is a 1-element tensor, read on the GPU: no readback)

const WG: u32 = 256u;

// ---------------------------------------------------------------- binary with broadcasting

const OP_ADD: u32 = 0u;
const OP_SUB: u32 = 1u;
const OP_MUL: u32 = 2u;
const OP_DIV: u32 = 3u;
override OP: u32 = OP_ADD;
// Outputs per invocation (see binary, scale).
override V: u32 = 1u;

// The host coalesces the broadcast problem into at most 8 dims, stored INNERMOST FIRST
// (dim 0 varies fastest). A stride of 0 means that operand is broadcast along the dim.
// Uniform arrays need a 16-byte element stride, hence 2 x vec4u for 8 values.
struct BinaryParams {
  shape: array<vec4u, 2>,
  stride_a: array<vec4u, 2>,
  stride_b: array<vec4u, 2>,
  n: u32,
  ndim: u32,
}

@group(0) @binding(0) var<uniform> bp: BinaryParams;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

fn apply_op(x: f32, y: f32) -> f32 {
  switch OP {
    case 1u: { return x - y; }
    case 2u: { return x * y; }
    case 3u: { return x / y; }
    default: { return x + y; }
  }
}

// Offsets into a and b of output element i: decompose i dim by dim (innermost first).
fn operand_offsets(i: u32) -> vec2u {
  var rem = i;
  var off = vec2u(0u);
  for (var d = 0u; d < bp.ndim; d++) {
    let size = bp.shape[d / 4u][d % 4u];
    let coord = rem % size;
    rem = rem / size;
    off += coord * vec2u(bp.stride_a[d / 4u][d % 4u], bp.stride_b[d / 4u][d % 4u]);
  }
  return off;
}

// Each invocation writes V consecutive outputs. Along the innermost dim the operand offsets just
// advance by their strides, so the divisions of operand_offsets run once per invocation and once per
// innermost row crossed, not per element (integer division is slow on CPU implementations such as
// lavapipe, and per-invocation overhead dominates there). V = 1 gives one element per invocation,
// coalesced across a warp, for real GPUs.
@compute @workgroup_size(WG)
fn binary(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let g = linear_index(gid, nwg, WG);
  var i = g * V;
  if (i >= bp.n) { return; }
  let end = min(bp.n, i + V);
  // Innermost dim (after merging; the whole tensor when nothing is broadcast). ndim == 0: a single element.
  let d0 = select(1u, bp.shape[0].x, bp.ndim > 0u);
  let step = vec2u(bp.stride_a[0].x, bp.stride_b[0].x);
  while (i < end) {
    var off = operand_offsets(i);
    let run = min(end - i, d0 - i % d0);
    for (var k = 0u; k < run; k++) {
      out[i + k] = apply_op(a[off.x], b[off.y]);
      off += step;
    }
    i += run;
  }
}

// ---------------------------------------------------------------- scale

struct ScaleParams {
  n: u32,
  alpha: f32,
  beta: f32,
}

@group(0) @binding(0) var<uniform> sp: ScaleParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(WG)
fn scale(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let start = linear_index(gid, nwg, WG) * V;
  let end = min(sp.n, start + V);
  for (var i = start; i < end; i++) { y[i] = sp.alpha * x[i] + sp.beta; }
}

@group(0) @binding(3) var<storage, read> s: array<f32>;

@compute @workgroup_size(WG)
fn scale_by_scalar(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let start = linear_index(gid, nwg, WG) * V;
  let end = min(sp.n, start + V);
  let factor = sp.alpha * s[0];
  for (var i = start; i < end; i++) { y[i] = factor * x[i]; }
}
