//! import common
// 2-D max pooling, NCHW, floor mode, no padding.
//   forward : y[n,c,oh,ow] = max over the kh x kw window at (oh*sh, ow*sw); argmax = h*W + w of the
//             chosen element within its (n,c) plane.
//             Tie rule (as PyTorch's CPU kernel): windows are scanned in row-major order with a strict
//             `>`, so the FIRST maximum wins; a NaN wins over any number (and a later NaN over an
//             earlier one, as PyTorch's `val > max || isnan(val)`), so NaN propagates to y.
//   backward: gather, no atomics: each input element sums dy over the (at most ceil(kh/sh) x
//             ceil(kw/sw)) windows that contain it and chose it (argmax == its index). Elements no
//             window covers get 0.
//   RELU:     a ReLU folded in: y = max(window max, 0), which equals the max of the ReLU'd window
//             (max commutes with an increasing function), and backward passes dy only where y > 0,
//             which is the ReLU's own backward. So Conv -> ReLU -> MaxPool needs no ReLU pass over the
//             full-size map in either direction. (Where y = 0 the unfolded chain's gradient is 0 too:
//             ReLU's derivative is 0 at and below 0; so dx is the same whichever element is argmax.)

const WG: u32 = 64u;
// Elements per invocation: many on CPU implementations (lavapipe), where per-invocation overhead and
// integer division dominate; 1 on real GPUs.
override V: u32 = 1u;
// Backward only: set when kh <= sh and kw <= sw (e.g. the usual 2x2 stride 2), so each input element
// lies in at most one window and the window loops reduce to one test.
override NON_OVERLAPPING: bool = false;
override RELU: bool = false;

struct Params {
  planes: u32,   // N * C
  h: u32,
  w: u32,
  ho: u32,
  wo: u32,
  kh: u32,
  kw: u32,
  sh: u32,
  sw: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> argmax: array<i32>;

// NaN test on the bits: `v != v` is folded to false by some compilers (it is on lavapipe).
fn is_nan(v: f32) -> bool {
  return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
}

// Max of the window of output i = (plane, oh, ow).
fn pool_window(i: u32, plane: u32, oh: u32, ow: u32) {
  let h0 = oh * p.sh;
  let w0 = ow * p.sw;
  let base = plane * p.h * p.w;
  // Start from the window's first element (equivalent to PyTorch's start at -inf with the first
  // index: an all -inf window picks its first element, and a leading NaN is kept). WGSL cannot
  // spell -inf as a constant.
  var best_idx = h0 * p.w + w0;
  var best = x[base + best_idx];
  for (var u = 0u; u < p.kh; u++) {
    let row = (h0 + u) * p.w;
    for (var v = 0u; v < p.kw; v++) {
      let idx = row + w0 + v;
      let val = x[base + idx];
      if (val > best || is_nan(val)) {
        best = val;
        best_idx = idx;
      }
    }
  }
  y[i] = pooled(best);
  argmax[i] = i32(best_idx);
}

// The window's output: its max, through the folded ReLU when RELU (the fused epilogues' max(x, 0)).
fn pooled(best: f32) -> f32 {
  if (RELU) { return activate(ACT_RELU, best, 0.0); }
  return best;
}

// The output after (plane, oh, ow) = o.xyz, row by row (an odometer: no divisions per output).
fn next_output(o: vec3u) -> vec3u {
  var r = vec3u(o.x, o.y, o.z + 1u);
  if (r.z == p.wo) {
    r.z = 0u;
    r.y += 1u;
    if (r.y == p.ho) {
      r.y = 0u;
      r.x += 1u;
    }
  }
  return r;
}

// The first output of an invocation that computes V consecutive ones, as (plane, oh, ow).
fn first_output(start: u32) -> vec3u {
  return vec3u(start / (p.wo * p.ho), (start / p.wo) % p.ho, start % p.wo);
}

// Each invocation computes V consecutive outputs, stepping (plane, oh, ow) with next_output so the
// index divisions run once per invocation (see V).
@compute @workgroup_size(WG)
fn forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let start = linear_index(gid, nwg, WG) * V;
  let end = min(p.planes * p.ho * p.wo, start + V);
  var o = first_output(start);
  for (var i = start; i < end; i++) {
    pool_window(i, o.x, o.y, o.z);
    o = next_output(o);
  }
}

// forward_pairs: for kw == sw == 2 on an even width (the usual 2x2 stride 2 on even maps), each window
// row is one aligned vec2 of x: half the storage loads (each emulated per lane on CPU adapters), the same
// comparisons in the same order as pool_window. x2 aliases x (an entry point reads one or the other).
@group(0) @binding(1) var<storage, read> x2: array<vec2f>;

fn pool_window_pairs(i: u32, plane: u32, oh: u32, ow: u32) {
  let base = plane * p.h * p.w;   // even, as are the row offsets and w0: element e is x2[e / 2][e % 2]
  let w0 = ow * 2u;
  var best_idx = oh * p.sh * p.w + w0;
  var best = x2[(base + best_idx) / 2u].x;
  for (var u = 0u; u < p.kh; u++) {
    let idx = (oh * p.sh + u) * p.w + w0;
    let pair = x2[(base + idx) / 2u];
    if (pair.x > best || is_nan(pair.x)) {
      best = pair.x;
      best_idx = idx;
    }
    if (pair.y > best || is_nan(pair.y)) {
      best = pair.y;
      best_idx = idx + 1u;
    }
  }
  y[i] = pooled(best);
  argmax[i] = i32(best_idx);
}

@compute @workgroup_size(WG)
fn forward_pairs(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let start = linear_index(gid, nwg, WG) * V;
  let end = min(p.planes * p.ho * p.wo, start + V);
  var o = first_output(start);
  for (var i = start; i < end; i++) {
    pool_window_pairs(i, o.x, o.y, o.z);
    o = next_output(o);
  }
}

@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> am: array<i32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;
// RELU: the forward's output, whose sign gates dy (without RELU the host binds dy here; it is not read).
@group(0) @binding(4) var<storage, read> y_gate: array<f32>;

// dy of window o, through the folded ReLU's derivative.
fn window_grad(o: u32) -> f32 {
  if (RELU) { return dy[o] * activate_grad_from_output(ACT_RELU, y_gate[o], 0.0); }
  return dy[o];
}

// Window rows oh containing input row ih: oh*sh <= ih < oh*sh + kh, i.e.
// ceil((ih - kh + 1) / sh) <= oh <= ih / sh, clipped to [0, ho). Returns [lo, hi). u32 only.
fn window_rows(ih: u32) -> vec2u {
  let lo = select(0u, (ih + 1u - p.kh + p.sh - 1u) / p.sh, ih + 1u >= p.kh);
  let hi = min(ih / p.sh + 1u, p.ho);
  return vec2u(lo, max(lo, hi));
}

// Each invocation handles V consecutive input elements. Per element the only index arithmetic is an
// increment: q = iw / sw and r = iw % sw are stepped along the row, and the window rows are
// recomputed once per input row.
@compute @workgroup_size(WG)
fn backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let start = linear_index(gid, nwg, WG) * V;
  let total = p.planes * p.h * p.w;
  if (start >= total) { return; }
  let end = min(total, start + V);
  var iw = start % p.w;
  var ih = (start / p.w) % p.h;
  var plane = start / (p.w * p.h);
  var q = iw / p.sw;
  var r = iw - q * p.sw;
  var rows = window_rows(ih);
  // NON_OVERLAPPING: the last window read and its argmax and gradient. The kw neighbours of a row share
  // a window, so each window is read once per row instead of once per element (every storage load is
  // emulated per lane on CPU adapters; this is what the pass waits for).
  var cached_o = 0xffffffffu;
  var cached_am = 0;
  var cached_dy = 0.0;
  for (var i = start; i < end; i++) {
    let me = i32(ih * p.w + iw);
    let obase = plane * p.ho * p.wo;
    var acc = 0.0;
    if (NON_OVERLAPPING) {
      // kh <= sh and kw <= sw: at most one window, (rows.x, q), contains the element.
      if (rows.x < rows.y && q < p.wo && r < p.kw) {
        let o = obase + rows.x * p.wo + q;
        if (o != cached_o) {
          cached_o = o;
          cached_am = am[o];
          cached_dy = window_grad(o);
        }
        if (cached_am == me) { acc = cached_dy; }
      }
    } else {
      for (var oh = rows.x; oh < rows.y; oh++) {
        let orow = obase + oh * p.wo;
        // Windows ow <= iw / sw start at or before iw; walk left while they still reach past iw.
        var ow = i32(min(q, p.wo - 1u));
        loop {
          if (ow < 0 || u32(ow) * p.sw + p.kw <= iw) { break; }
          let o = orow + u32(ow);
          if (am[o] == me) { acc += window_grad(o); }
          ow -= 1;
        }
      }
    }
    dx[i] = acc;

    iw += 1u;
    r += 1u;
    if (r == p.sw) {
      r = 0u;
      q += 1u;
    }
    if (iw == p.w) {
      iw = 0u;
      q = 0u;
      r = 0u;
      ih += 1u;
      if (ih == p.h) {
        ih = 0u;
        plane += 1u;
      }
      rows = window_rows(ih);
    }
  }
}
