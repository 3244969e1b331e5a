//! import common
// Direct conv2d forward (NCHW, OIHW weights, zero padding), with fused bias and activation:
//   y[n,o,oh,ow] = act( b[o] + sum_{c,u,v} x[n, c, oh*sh - ph + u, ow*sw - pw + v] * w[o,c,u,v] )
//
// Each invocation computes OT output channels x PT horizontally adjacent output pixels, in registers
// (no shared memory, no barriers: made for CPU implementations such as lavapipe). For each input row
// (c, u) it loads the (PT-1)*SW + KW input values its PT windows span once, and reuses them for every
// tap v and every output channel. (On lavapipe the implicit GEMM of matmul.wgsl still measured
// faster for 3x3 convs: the OT*KW weight loads per row dominate here.)
//
// The kernel size and stride are override constants, so the tap loops have constant trip counts and
// the window row lives in registers. The host uses this kernel only when (PT-1)*SW + KW <= SPAN_MAX.

override KH: u32 = 3u;
override KW: u32 = 3u;
override SH: u32 = 1u;
override SW: u32 = 1u;

const OT: u32 = 8u;        // output channels per invocation
const PT: u32 = 8u;        // adjacent output pixels per invocation (two vec4)
const WG: u32 = 64u;
const SPAN_MAX: u32 = 32u;

struct Params {
  nimg: u32,
  xc: u32,
  xh: u32,
  xw: u32,
  yc: u32,
  yh: u32,
  yw: u32,
  ph: i32,
  pw: i32,
  has_bias: u32,
  act: u32,     // ACT_* code (a uniform: one pipeline serves every activation)
  slope: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
// Bound to w when there is no bias (has_bias = 0).
@group(0) @binding(4) var<storage, read> bias: array<f32>;

fn block(o0: u32, blk: u32) {
  // blk = (n, oh, ow block)
  let owb = (p.yw + PT - 1u) / PT;
  let n = blk / (p.yh * owb);
  let r = blk % (p.yh * owb);
  let oh = r / owb;
  let ow0 = (r % owb) * PT;
  let ih0 = i32(oh * SH) - p.ph;
  let iw0 = i32(ow0 * SW) - p.pw;
  let span = (PT - 1u) * SW + KW;
  let x_img = i32(n * p.xc * p.xh * p.xw);

  // Channel rows past yc read a valid one and are not written.
  var wrow: array<u32, OT>;
  for (var i = 0u; i < OT; i++) {
    wrow[i] = min(o0 + i, p.yc - 1u) * p.xc * KH * KW;
  }
  var acc_lo: array<vec4f, OT>;   // pixels 0..3
  var acc_hi: array<vec4f, OT>;   // pixels 4..7
  for (var ch = 0u; ch < p.xc; ch++) {
    let x_ch = x_img + i32(ch * p.xh * p.xw);
    let w_ch = ch * KH * KW;
    for (var u = 0u; u < KH; u++) {
      let ih = ih0 + i32(u);
      let row_ok = u32(ih) < p.xh;
      let x_row = x_ch + ih * i32(p.xw);
      var xs: array<f32, SPAN_MAX>;
      for (var q = 0u; q < span; q++) {
        let iw = iw0 + i32(q);
        let ok = row_ok && u32(iw) < p.xw;
        xs[q] = select(0.0, x[select(0, x_row + iw, ok)], ok);
      }
      for (var v = 0u; v < KW; v++) {
        let x_lo = vec4f(xs[v], xs[SW + v], xs[2u * SW + v], xs[3u * SW + v]);
        let x_hi = vec4f(xs[4u * SW + v], xs[5u * SW + v], xs[6u * SW + v], xs[7u * SW + v]);
        let tap = w_ch + u * KW + v;
        for (var i = 0u; i < OT; i++) {
          let wv = w[wrow[i] + tap];
          acc_lo[i] += wv * x_lo;
          acc_hi[i] += wv * x_hi;
        }
      }
    }
  }
  // Written with a run-time loop over the channels (an unrolled one compiles much slower on lavapipe).
  let y_row = n * p.yc * p.yh * p.yw + oh * p.yw;
  let chans = min(OT, p.yc - o0);
  for (var i = 0u; i < chans; i++) {
    let o = o0 + i;
    var bo = 0.0;
    if (p.has_bias == 1u) {
      bo = bias[o];
    }
    let lo = acc_lo[i] + bo;
    let hi = acc_hi[i] + bo;
    let base = y_row + o * p.yh * p.yw + ow0;
    for (var t = 0u; t < PT; t++) {
      if (ow0 + t < p.yw) {
        y[base + t] = activate(p.act, select(hi[t % 4u], lo[t % 4u], t < 4u), p.slope);
      }
    }
  }
}

// Grid: x = pixel blocks / WG, y = channel blocks of OT; both loop with the grid's stride, so the host
// may clamp them to the device limit.
@compute @workgroup_size(WG)
fn forward_direct(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) lid: u32,
) {
  let blocks = p.nimg * p.yh * ((p.yw + PT - 1u) / PT);
  for (var o0 = wid.y * OT; o0 < p.yc; o0 += nwg.y * OT) {
    for (var blk = wid.x * WG + lid; blk < blocks; blk += nwg.x * WG) {
      block(o0, blk);
    }
  }
}
