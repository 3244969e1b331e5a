//! import common
// col2im (torch.nn.functional.fold), with a fused per-channel bias and activation:
//   out[n,c,ih,iw] = act( b[c] + sum_{u,v} cols[n, (c*KH + u)*KW + v, oh, ow] )
// over the taps (u, v) for which ih = oh*SH - PH + u and iw = ow*SW - PW + v with 0 <= oh < yh,
// 0 <= ow < yw. cols is [nimg, xc*KH*KW, yh, yw]: a conv's input gradient (a conv-transpose's forward)
// as one GEMM into columns, cols[(c,u,v), (n,pix)] = sum_o w[o,c,u,v] dy[n,o,pix], then this gather.
// Used where the conv input has few channels (src/kernels/conv2d.ts): the phase GEMM would fill 1 of
// its 16 rows per block, while the column GEMM has xc*KH*KW rows.
//
// One invocation per output element; each reads at most ceil(KH/SH) * ceil(KW/SW) columns (a gather,
// so no atomics). Kernel size and stride are override constants: constant trip counts.

override KH: u32 = 4u;
override KW: u32 = 4u;
override SH: u32 = 2u;
override SW: u32 = 2u;
const WG: u32 = 64u;

struct Params {
  planes: u32,  // nimg * xc
  xc: u32,
  xh: u32,
  xw: u32,
  yh: u32,
  yw: u32,
  ph: u32,
  pw: u32,
  has_bias: u32,
  act: u32,     // ACT_* code
  slope: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> cols: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
// Bound to cols when there is no bias (has_bias = 0).
@group(0) @binding(3) var<storage, read> bias: array<f32>;

// Grid: x = blocks of WG columns iw, y = rows ih, z = (n, c) planes; y and z loop with the grid's
// stride (the host may clamp them to the device limit). Each invocation's position comes from the grid,
// not from dividing a linear index: integer division by a run-time value is scalarised on a CPU
// (lavapipe), four per element cost more than the sum itself.
@compute @workgroup_size(WG)
fn col2im(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let iw = gid.x;
  if (iw >= p.xw) {
    return;
  }
  let plane = p.yh * p.yw;
  for (var nc = gid.z; nc < p.planes; nc += nwg.z) {
    let c = nc % p.xc;
    var b = 0.0;
    if (p.has_bias == 1u) {
      b = bias[c];
    }
    // Column (c, u, v) of image n starts at ((n*xc + c)*KH*KW + u*KW + v) * plane.
    let base = nc * KH * KW * plane;
    for (var ih = gid.y; ih < p.xh; ih += nwg.y) {
      var acc = 0.0;
      for (var u = 0u; u < KH; u++) {
        // oh = (ih + ph - u) / SH where that is a whole number in [0, yh) (as i32: may be negative).
        let th = i32(ih + p.ph) - i32(u);
        let oh = th / i32(SH);
        if (th < 0 || th % i32(SH) != 0 || u32(oh) >= p.yh) {
          continue;
        }
        let row = base + u * KW * plane + u32(oh) * p.yw;
        for (var v = 0u; v < KW; v++) {
          // ow likewise from iw (SW is a constant: no run-time division).
          let tw = i32(iw + p.pw) - i32(v);
          let ow = tw / i32(SW);
          if (tw >= 0 && tw % i32(SW) == 0 && u32(ow) < p.yw) {
            acc += cols[row + v * plane + u32(ow)];
          }
        }
      }
      out[(nc * p.xh + ih) * p.xw + iw] = activate(p.act, acc + b, p.slope);
    }
  }
}
