//! import common
// DiffAugment (Zhao et al., NeurIPS 2020): differentiable augmentations applied to everything the
// discriminator of a GAN sees. x is NCHW; every sample n has its own parameters, drawn on the CPU and
// passed as a small [N, k] f32 table `params` (integers are stored exactly as f32), so the forward and
// the backward pass use the same draw.
//
//   translate : y[n,c,i,j] = x[n,c,i-dy,j-dx] where that pixel exists, else 0; params (dx, dy).
//               Its adjoint is the translation by (-dx, -dy) with the same zero fill, so the backward
//               pass is this entry with shift_sign = -1.
//   cutout    : y = 0 inside the half-open box x0 <= j < x1, y0 <= i < y1 (may extend past the border),
//               y = x elsewhere; params (x0, y0, x1, y1). Linear and diagonal: the backward pass is the
//               same masking of dy.
//   color     : brightness b, saturation s, contrast c, applied in that order as DiffAugment's
//               rand_brightness, rand_saturation and rand_contrast; params (b, s, c):
//                   y = c s (x - mc) + c (mc - m) + m + b
//               with mc the mean over channels of one pixel and m the mean over (C, H, W) of the
//               sample (the brightness shifts both means by b, so they are taken of x). Without b this
//               is a polynomial in two symmetric averaging operators, hence self-adjoint: the backward
//               pass is the same entry applied to dy with with_brightness = 0 (and m = mean of dy).
//               For C = 1, mc = x and this is contrast only: dx = c dy + (1 - c) mean(dy).
//   sample_mean: m[n] = mean of a[n, :, :, :], needed by `color`.
//
// The elementwise entries use one invocation per output element (translate, cutout) or per pixel
// (color, which loops over the channels); they read the per-sample parameters directly.

const WG: u32 = 256u;
const MEAN_WG: u32 = 64u;

struct Params {
  samples: u32,         // N
  channels: u32,        // C
  height: u32,          // H
  width: u32,           // W
  shift_sign: i32,      // translate: +1 forward, -1 backward (the adjoint)
  with_brightness: u32, // color: 1 forward, 0 backward (the additive term has no derivative)
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> a: array<f32>;       // x (forward) or dy (backward)
@group(0) @binding(3) var<storage, read> params: array<f32>;  // [N, k] per-sample parameters
@group(0) @binding(4) var<storage, read> means: array<f32>;   // [N] sample means of a (color only)

@compute @workgroup_size(WG)
fn translate(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let idx = linear_index(gid, nwg, WG);
  let hw = p.height * p.width;
  if (idx >= p.samples * p.channels * hw) { return; }
  let n = idx / (p.channels * hw);
  let ij = idx % hw;
  let i = i32(ij / p.width);
  let j = i32(ij % p.width);
  let dx = i32(params[2u * n]) * p.shift_sign;
  let dy = i32(params[2u * n + 1u]) * p.shift_sign;
  let si = i - dy;
  let sj = j - dx;
  var v = 0.0;
  if (si >= 0 && si < i32(p.height) && sj >= 0 && sj < i32(p.width)) {
    v = a[idx - ij + u32(si) * p.width + u32(sj)];
  }
  out[idx] = v;
}

@compute @workgroup_size(WG)
fn cutout(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let idx = linear_index(gid, nwg, WG);
  let hw = p.height * p.width;
  if (idx >= p.samples * p.channels * hw) { return; }
  let n = idx / (p.channels * hw);
  let ij = idx % hw;
  let i = i32(ij / p.width);
  let j = i32(ij % p.width);
  let x0 = i32(params[4u * n]);
  let y0 = i32(params[4u * n + 1u]);
  let x1 = i32(params[4u * n + 2u]);
  let y1 = i32(params[4u * n + 3u]);
  let inside = j >= x0 && j < x1 && i >= y0 && i < y1;
  // select() rather than a multiply by 0: a cut element is exactly 0 even if a[idx] is inf.
  out[idx] = select(a[idx], 0.0, inside);
}

var<workgroup> partial: array<f32, MEAN_WG>;

// One workgroup per sample (grid-stride over samples): each invocation sums a strided share of the
// C*H*W elements, then a tree reduction in workgroup memory adds the MEAN_WG partial sums.
@compute @workgroup_size(MEAN_WG)
fn sample_mean(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) lid: u32,
) {
  let len = p.channels * p.height * p.width;
  for (var n = wid.x; n < p.samples; n += nwg.x) {
    var s = 0.0;
    for (var k = lid; k < len; k += MEAN_WG) {
      s += a[n * len + k];
    }
    partial[lid] = s;
    workgroupBarrier();
    for (var half = MEAN_WG / 2u; half > 0u; half /= 2u) {
      if (lid < half) {
        partial[lid] += partial[lid + half];
      }
      workgroupBarrier();
    }
    // Only invocation 0 writes and reads partial[0], so the next sample may start at once.
    if (lid == 0u) {
      out[n] = partial[0] / f32(len);
    }
  }
}

@compute @workgroup_size(WG)
fn color(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let pix = linear_index(gid, nwg, WG);
  let hw = p.height * p.width;
  if (pix >= p.samples * hw) { return; }
  let n = pix / hw;
  let base = n * p.channels * hw + pix % hw;
  var mc = 0.0;
  for (var c = 0u; c < p.channels; c++) {
    mc += a[base + c * hw];
  }
  mc /= f32(p.channels);
  let b = select(0.0, params[3u * n], p.with_brightness != 0u);
  let sat = params[3u * n + 1u];
  let con = params[3u * n + 2u];
  let m = means[n];
  let offset = con * (mc - m) + m + b;
  for (var c = 0u; c < p.channels; c++) {
    let k = base + c * hw;
    out[k] = con * sat * (a[k] - mc) + offset;
  }
}
