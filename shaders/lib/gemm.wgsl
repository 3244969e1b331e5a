// The GEMM core shared by shaders/matmul.wgsl, shaders/matmul_subgroups.wgsl and shaders/matmul_vec4.wgsl:
// operand readers, output writer, epilogue and the register-block write-out. See shaders/matmul.wgsl for
// the design.

override A_MODE: u32 = 0u;
override B_MODE: u32 = 0u;
override C_MODE: u32 = 0u;
// The im2col readers test each element against x's bounds (zero padding) only when the conv pads:
// unpadded, every pixel + tap lies inside x (floor-mode output size), so the test and its selects
// would only cost ALU work in the inner loop.
override IM2COL_PADDED: bool = true;
// Invocations per workgroup of gemm_register (the host picks it from the number of columns).
override WG: u32 = 64u;
// gemm_register: invocations of a workgroup take different k chunks instead of different columns.
override SPLIT_LANES: bool = false;

// The uniform struct `Params` and the mode constants (A_PLAIN, A_CONV_W_T, ..., B_*, C_*, BIAS_*,
// B_SCALAR / B_VEC4_K / B_VEC4_COLUMNS) are declared once in src/kernels/gemm-layout.ts and reach the
// shader through `//! import generated:gemm_params` (imported before this library).

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
// Always bound (the host binds `a` again when there is no bias, bias_mode 0) so that every pipeline
// of this shader has the same bindings.
@group(0) @binding(4) var<storage, read> bias: array<f32>;

// A fused activation's backward, folded into the operand that is dy (the backward passes of a conv or
// dense layer whose forward applied the activation): that operand is read as dy * act'(y), with y the
// layer's forward output bound at `gate`. y has dy's shape and layout, so the element at index i of
// the operand's buffer pairs with gate[i] whatever the reader's mode. A_GATE / B_GATE hold the ACT_*
// code of the operand's activation, ACT_NONE (the default) for an operand read as it is; the slope of
// a leaky ReLU is p.gate_slope. Always bound (the host binds `a` again without a gate). This saves the
// separate activation-backward pass that would write dz = dy * act'(y) for the GEMMs to read.
override A_GATE: u32 = 0u;
override B_GATE: u32 = 0u;
@group(0) @binding(5) var<storage, read> gate: array<f32>;

// v, the operand's element at index i, times act'(y[i]).
fn gated(act: u32, v: f32, i: i32) -> f32 {
  if (act == ACT_NONE) {
    return v;
  }
  return v * activate_grad_from_output(act, gate[i], p.gate_slope);
}

// The same for the four elements at i..i+3 (i a multiple of 4: the vec4 readers' elements).
fn gated4(act: u32, v: vec4f, i: i32) -> vec4f {
  if (act == ACT_NONE) {
    return v;
  }
  let g = vec4f(
    activate_grad_from_output(act, gate[i], p.gate_slope),
    activate_grad_from_output(act, gate[i + 1], p.gate_slope),
    activate_grad_from_output(act, gate[i + 2], p.gate_slope),
    activate_grad_from_output(act, gate[i + 3], p.gate_slope),
  );
  return v * g;
}

struct Ix {
  off: i32,
  h: i32,
  w: i32,
}

// One z slice: a batch entry (or stride phase) and a k range.
struct Slice {
  z: u32,       // full z index (selects the output slab in C_PLAIN)
  zb: u32,      // batch entry / phase
  n: u32,       // columns in this slice
  k0: u32,
  k1: u32,
  // stride-phase geometry (B_PHASE / A_CONV_W_T / C_PHASE only)
  rh: i32, rw: i32,    // phase
  th0: i32, tw0: i32,  // first t = (ih + p) div s of the phase
  nth: i32, ntw: i32,  // number of output rows / columns in the phase
  khp: i32, kwp: i32,  // taps u' / v' in the phase
}

// ceil(a / b) for b > 0 and any sign of a.
fn ceil_div(a: i32, b: i32) -> i32 {
  return select(-((-a) / b), (a + b - 1) / b, a > 0);
}

fn make_slice(z: u32) -> Slice {
  var s: Slice;
  s.z = z;
  s.zb = z / p.splits;
  let zs = z % p.splits;
  s.n = p.N;
  s.k0 = zs * p.k_chunk;
  s.k1 = min(p.K, s.k0 + p.k_chunk);
  if (B_MODE == B_PHASE) {
    s.rh = i32(s.zb) / p.sw;
    s.rw = i32(s.zb) % p.sw;
    s.th0 = ceil_div(p.ph - s.rh, p.sh);
    s.tw0 = ceil_div(p.pw - s.rw, p.sw);
    s.nth = max(ceil_div(p.xh + p.ph - s.rh, p.sh) - s.th0, 0);
    s.ntw = max(ceil_div(p.xw + p.pw - s.rw, p.sw) - s.tw0, 0);
    s.khp = max(ceil_div(p.kh - s.rh, p.sh), 0);
    s.kwp = max(ceil_div(p.kw - s.rw, p.sw), 0);
    s.n = u32(p.nimg * s.nth * s.ntw);
    s.k0 = 0u;
    s.k1 = u32(p.yc * s.khp * s.kwp);
  }
  return s;
}

// ------------------------------------------------------------------------------------ conv pieces

// The conv readers are built from these: x read through im2col (pixel j = (n, oh, ow) gives the top-left
// corner of its window, tap k = (c, u, v) the offset inside it; the element exists iff the summed
// coordinates lie inside x, zero padding otherwise), and an NCHW tensor of the forward output's shape
// (dy) read by channel o at k = (n, pixel).

fn im2col_pixel(j: i32) -> Ix {
  let hw = p.yh * p.yw;
  let n = j / hw;
  let r = j % hw;
  let h = (r / p.yw) * p.sh - p.ph;
  let w = (r % p.yw) * p.sw - p.pw;
  return Ix(n * p.xc * p.xh * p.xw + h * p.xw + w, h, w);
}

// The pixel after `k` (incrementally: no division).
fn im2col_next_pixel(k: Ix) -> Ix {
  var r = k;
  r.w += p.sw;
  r.off += p.sw;
  if (r.w == p.yw * p.sw - p.pw) {
    r.w = -p.pw;
    r.h += p.sh;
    r.off += p.sh * p.xw - p.yw * p.sw;
    if (r.h == p.yh * p.sh - p.ph) {
      r.h = -p.ph;
      r.off += (p.xc * p.xh - p.yh * p.sh) * p.xw;
    }
  }
  return r;
}

fn im2col_tap(k: i32) -> Ix {
  let taps = p.kh * p.kw;
  let ch = k / taps;
  let r = k % taps;
  let u = r / p.kw;
  let v = r % p.kw;
  return Ix(ch * p.xh * p.xw + u * p.xw + v, u, v);
}

// The tap after `k` (incrementally).
fn im2col_next_tap(k: Ix) -> Ix {
  var r = k;
  r.w += 1;
  r.off += 1;
  if (r.w == p.kw) {
    r.w = 0;
    r.h += 1;
    r.off += p.xw - p.kw;
    if (r.h == p.kh) {
      r.h = 0;
      r.off += (p.xh - p.kh) * p.xw;
    }
  }
  return r;
}

// Whether pixel + tap lies inside x (both orders: the sum is symmetric).
fn im2col_inside(i: Ix, k: Ix) -> bool {
  return u32(i.h + k.h) < u32(p.xh) && u32(i.w + k.w) < u32(p.xw);
}

fn nchw_channel(o: i32) -> Ix {
  return Ix(o * p.yh * p.yw, 0, 0);
}

// k = (n, pixel) -> dy[n, ., pixel]; h holds the pixel.
fn nchw_k(k: i32) -> Ix {
  let hw = p.yh * p.yw;
  let n = k / hw;
  let pix = k % hw;
  return Ix(n * p.yc * hw + pix, pix, 0);
}

fn nchw_next(k: Ix) -> Ix {
  var r = k;
  r.h += 1;
  r.off += 1;
  if (r.h == p.yh * p.yw) {
    r.h = 0;
    r.off += (p.yc - 1) * p.yh * p.yw;
  }
  return r;
}

// ------------------------------------------------------------------------------------ A operand

fn a_row(m: u32, s: Slice) -> Ix {
  let mi = i32(m);
  switch A_MODE {
    case A_CONV_W_T: { return Ix(mi * p.kh * p.kw, 0, 0); }           // row = input channel
    case A_NCHW_ROWS: { return nchw_channel(mi); }                    // row = output channel
    case A_IM2COL: { return im2col_pixel(mi); }                       // row = pixel
    case A_IM2COL_T: { return im2col_tap(mi); }                       // row = tap
    default: { return Ix(i32(s.zb) * p.a_sb + mi * p.a_sm, 0, 0); }
  }
}

fn a_k(k: u32, s: Slice) -> Ix {
  let ki = i32(k);
  switch A_MODE {
    case A_CONV_W_T: {
      // k = (o, u', v'); tap (u, v) = (rh + sh*u', rw + sw*v')
      let taps = s.khp * s.kwp;
      let o = ki / taps;
      let r = ki % taps;
      let uq = r / s.kwp;
      let vq = r % s.kwp;
      let u = s.rh + p.sh * uq;
      let v = s.rw + p.sw * vq;
      return Ix(o * p.xc * p.kh * p.kw + u * p.kw + v, uq, vq);
    }
    case A_NCHW_ROWS: { return nchw_k(ki); }
    case A_IM2COL: { return im2col_tap(ki); }
    case A_IM2COL_T: { return im2col_pixel(ki); }
    default: { return Ix(ki * p.a_sk, 0, 0); }
  }
}

fn a_next(k: Ix, s: Slice) -> Ix {
  var r = k;
  switch A_MODE {
    case A_CONV_W_T: {
      r.w += 1;
      r.off += p.sw;
      if (r.w == s.kwp) {
        r.w = 0;
        r.h += 1;
        r.off += p.sh * p.kw - p.sw * s.kwp;
        if (r.h == s.khp) {
          r.h = 0;
          r.off += p.xc * p.kh * p.kw - p.sh * p.kw * s.khp;
        }
      }
    }
    case A_NCHW_ROWS: { r = nchw_next(k); }
    case A_IM2COL: { r = im2col_next_tap(k); }
    case A_IM2COL_T: { r = im2col_next_pixel(k); }
    default: { r.off += p.a_sk; }
  }
  return r;
}

fn a_read(row: Ix, k: Ix) -> f32 {
  if ((A_MODE == A_IM2COL || A_MODE == A_IM2COL_T) && IM2COL_PADDED) {
    // Bounded, as b_read: zero padding outside x; the index is clamped to 0 there.
    let inside = im2col_inside(row, k);
    let i = select(0, row.off + k.off, inside);
    return select(0.0, gated(A_GATE, a[i], i), inside);
  }
  let i = row.off + k.off;
  return gated(A_GATE, a[i], i);
}

// ------------------------------------------------------------------------------------ B operand

fn b_col(j: u32, s: Slice) -> Ix {
  let ji = i32(j);
  switch B_MODE {
    case B_IM2COL: { return im2col_pixel(ji); }                       // j = (n, oh, ow)
    case B_PHASE: {
      // B_PHASE: j = (n, qh, qw) -> t = t0 + q
      let per = s.nth * s.ntw;
      let n = ji / per;
      let r = ji % per;
      let th = s.th0 + r / s.ntw;
      let tw = s.tw0 + r % s.ntw;
      return Ix(n * p.yc * p.yh * p.yw + th * p.yw + tw, th, tw);
    }
    case B_IM2COL_T: { return im2col_tap(ji); }                       // j = (c, u, v)
    case B_NCHW_COLS: { return nchw_channel(ji); }                    // j = o
    default: { return Ix(i32(s.zb) * p.b_sb + ji * p.b_sn, 0, 0); }
  }
}

fn b_k(k: u32, s: Slice) -> Ix {
  let ki = i32(k);
  switch B_MODE {
    case B_IM2COL: { return im2col_tap(ki); }                         // k = (c, u, v)
    case B_PHASE: {
      // k = (o, u', v'): dy[n, o, t_h - u', t_w - v']
      let taps = s.khp * s.kwp;
      let o = ki / taps;
      let r = ki % taps;
      let uq = r / s.kwp;
      let vq = r % s.kwp;
      return Ix(o * p.yh * p.yw - uq * p.yw - vq, -uq, -vq);
    }
    case B_IM2COL_T: { return im2col_pixel(ki); }                     // k = (n, oh, ow)
    case B_NCHW_COLS: { return nchw_k(ki); }                          // k = (n, pixel)
    default: { return Ix(ki * p.b_sk, 0, 0); }
  }
}

fn b_next(k: Ix, s: Slice) -> Ix {
  var r = k;
  switch B_MODE {
    case B_IM2COL: { r = im2col_next_tap(k); }
    case B_PHASE: {
      r.w -= 1;
      r.off -= 1;
      if (r.w == -s.kwp) {
        r.w = 0;
        r.h -= 1;
        r.off += s.kwp - p.yw;
        if (r.h == -s.khp) {
          r.h = 0;
          r.off += (s.khp + p.yh) * p.yw;
        }
      }
    }
    case B_IM2COL_T: { r = im2col_next_pixel(k); }
    case B_NCHW_COLS: { r = nchw_next(k); }
    default: { r.off += p.b_sk; }
  }
  return r;
}

fn b_read(col: Ix, k: Ix) -> f32 {
  if (B_MODE == B_PLAIN || B_MODE == B_NCHW_COLS || (B_MODE != B_PHASE && !IM2COL_PADDED)) {
    let i = col.off + k.off;
    return gated(B_GATE, b[i], i);
  }
  // Bounded readers: the element exists iff the summed coordinates are inside the image read
  // (x for the im2col readers, dy for the phase reader); outside is zero padding. The index is
  // clamped to 0 there so the load itself stays in bounds.
  let bh = select(p.xh, p.yh, B_MODE == B_PHASE);
  let bw = select(p.xw, p.yw, B_MODE == B_PHASE);
  let inside = u32(col.h + k.h) < u32(bh) && u32(col.w + k.w) < u32(bw);
  let i = select(0, col.off + k.off, inside);
  return select(0.0, gated(B_GATE, b[i], i), inside);
}

// ------------------------------------------------------------------------------------ vec4 readers

// Four consecutive k of an operand at once, for gemm_vec4 (shaders/matmul_vec4.wgsl). On lavapipe each
// load is emulated per lane (about 40 cycles for 8 lanes, plus a bounds-check branch per element), so
// one vec4 load costs about as much as one scalar load: where the layout allows it, the readers fetch
// four floats with one load from these vec4 views of the operands (the host binds the same buffers
// again; a binding that is never read still needs 16 bytes, see gemm() in src/kernels/matmul.ts).
// Elsewhere they make four scalar reads. The host chooses per problem (override constants):
//   A_VEC4:  A is A_PLAIN with a_sk = 1 and a_sb, a_sm multiples of 4 (rows 16-byte aligned), so
//            A[m, k..k+3] is one aligned vec4 for k a multiple of 4.
//   B_VEC4:  B_VEC4_K:       B_PLAIN with b_sk = 1 (B^T rows), b_sb, b_sn multiples of 4: B[k..k+3, j]
//                            is one vec4.
//            B_VEC4_COLUMNS: B_PLAIN with b_sn = 1, b_sb, b_sk multiples of 4: B[k, j..j+3] is one vec4
//                            for j a multiple of 4 (an invocation's 4 columns are then adjacent).
//            B_SCALAR:       any other layout, including every conv reader.
// K need not be a multiple of 4: the last, partial group of 4 steps takes the scalar reads, masked.
override A_VEC4: bool = false;
override B_VEC4: u32 = 0u;   // B_SCALAR, B_VEC4_K or B_VEC4_COLUMNS

@group(0) @binding(6) var<storage, read> a4: array<vec4f>;
@group(0) @binding(7) var<storage, read> b4: array<vec4f>;

// The k descriptors of steps k, k+1, k+2, k+3, from that of step k.
fn a_k4(k: Ix, s: Slice) -> array<Ix, 4> {
  var ks: array<Ix, 4>;
  ks[0] = k;
  for (var kk = 1u; kk < 4u; kk++) {
    ks[kk] = a_next(ks[kk - 1u], s);
  }
  return ks;
}

fn b_k4(k: Ix, s: Slice) -> array<Ix, 4> {
  var ks: array<Ix, 4>;
  ks[0] = k;
  for (var kk = 1u; kk < 4u; kk++) {
    ks[kk] = b_next(ks[kk - 1u], s);
  }
  return ks;
}

// A[row, k..k+3] for the steps ks; steps kk >= left (past the end of the slice, in its last group)
// read as 0. That group always takes the scalar reads: a vec4 there could reach past the operand.
fn a_read4(row: Ix, ks: array<Ix, 4>, left: u32) -> vec4f {
  if (A_VEC4 && left >= 4u) {
    let i = row.off + ks[0].off;
    return gated4(A_GATE, a4[i >> 2u], i);
  }
  var v: vec4f;
  for (var kk = 0u; kk < 4u; kk++) {
    v[kk] = select(0.0, a_read(row, ks[kk]), kk < left);
  }
  return v;
}

// B at the steps ks and the 4 columns cols, as one vec4 over the columns per step:
// result[kk][t] = B[k + kk, column t] (0 for steps kk >= left, as in a_read4). With B_VEC4_COLUMNS
// the columns are adjacent and cols[0] is 16-byte aligned when in range (an out-of-range block reads
// the aligned vec4 around its clamped column: harmless, such columns are never written).
fn b_read4(cols: array<Ix, 4>, ks: array<Ix, 4>, left: u32) -> array<vec4f, 4> {
  var r: array<vec4f, 4>;
  if (B_VEC4 == B_VEC4_K && left >= 4u) {
    // One vec4 over k per column, transposed in registers (free where each invocation is a SIMD lane).
    let i0 = cols[0].off + ks[0].off;
    let i1 = cols[1].off + ks[0].off;
    let i2 = cols[2].off + ks[0].off;
    let i3 = cols[3].off + ks[0].off;
    let c0 = gated4(B_GATE, b4[i0 >> 2u], i0);
    let c1 = gated4(B_GATE, b4[i1 >> 2u], i1);
    let c2 = gated4(B_GATE, b4[i2 >> 2u], i2);
    let c3 = gated4(B_GATE, b4[i3 >> 2u], i3);
    r[0] = vec4f(c0.x, c1.x, c2.x, c3.x);
    r[1] = vec4f(c0.y, c1.y, c2.y, c3.y);
    r[2] = vec4f(c0.z, c1.z, c2.z, c3.z);
    r[3] = vec4f(c0.w, c1.w, c2.w, c3.w);
    return r;
  }
  if (B_VEC4 == B_VEC4_COLUMNS && left >= 4u) {
    for (var kk = 0u; kk < 4u; kk++) {
      // (rounded down to the vec4's first element, as the load: see the out-of-range note above)
      let i = (cols[0].off + ks[kk].off) & ~3;
      r[kk] = gated4(B_GATE, b4[i >> 2u], i);
    }
    return r;
  }
  for (var kk = 0u; kk < 4u; kk++) {
    let v = vec4f(b_read(cols[0], ks[kk]), b_read(cols[1], ks[kk]), b_read(cols[2], ks[kk]), b_read(cols[3], ks[kk]));
    r[kk] = select(vec4f(0.0), v, kk < left);
  }
  return r;
}

// ------------------------------------------------------------------------------------ C (epilogue)

// Where column j of row 0 goes, and the distance between consecutive rows (see c_at).
struct CCol {
  base: i32,
  row_stride: i32,
}

fn c_col(j: u32, s: Slice) -> CCol {
  let ji = i32(j);
  switch C_MODE {
    case C_NCHW: {
      // C_NCHW: j = (n, pix) -> y[n, m, pix]
      let hw = p.yh * p.yw;
      let n = ji / hw;
      return CCol(n * p.yc * hw + ji % hw, hw);
    }
    case C_PHASE: {
      // C_PHASE: j = (n, qh, qw) -> dx[n, m, sh*t_h + rh - ph, sw*t_w + rw - pw]
      let per = s.nth * s.ntw;
      let n = ji / per;
      let r = ji % per;
      let ih = p.sh * (s.th0 + r / s.ntw) + s.rh - p.ph;
      let iw = p.sw * (s.tw0 + r % s.ntw) + s.rw - p.pw;
      return CCol(n * p.xc * p.xh * p.xw + ih * p.xw + iw, p.xh * p.xw);
    }
    case C_NCHW_T: {
      // C_NCHW_T: j = output channel; rows m = (n, pix) are placed by c_at
      return CCol(ji * p.yh * p.yw, 0);
    }
    default: { return CCol(i32(s.z) * p.c_sb + ji * p.c_sn, p.c_sm); }
  }
}

// Offset of row m in c, for a column whose rows are row_stride apart (the same for every column of a
// GEMM). The element (m, column) is at col.base + c_row(m, col.row_stride), see c_at.
fn c_row(m: u32, row_stride: i32) -> i32 {
  if (C_MODE == C_NCHW_T) {
    // m = (n, pix) -> y[n, column, pix]: rows are not evenly spaced (each image skips the other channels).
    let hw = u32(p.yh * p.yw);
    return i32((m / hw) * u32(p.yc) * hw + m % hw);
  }
  return i32(m) * row_stride;
}

fn c_at(col: CCol, m: u32) -> i32 {
  return col.base + c_row(m, col.row_stride);
}

// The bias of row m / column j (0 without bias). Loaded once per row or column by the callers.
fn bias_row(m: u32) -> f32 {
  if (p.bias_mode == BIAS_PER_ROW) {
    return bias[m];
  }
  return 0.0;
}

fn bias_col(j: u32) -> f32 {
  if (p.bias_mode == BIAS_PER_COLUMN) {
    return bias[j];
  }
  return 0.0;
}

fn epilogue(v: f32) -> f32 {
  return activate(p.act, v, p.slope);
}

// ------------------------------------------------------------------------------------ register blocks

// Register block per invocation: TM rows x TN = 8 columns (two vec4 per row). Per k step that is
// TM + 8 loads for 8*TM multiply-adds. TM is 16, or 4 for GEMMs with at most 4 rows (conv d/dx of an
// RGB or grey input, batch-1 dense layers); the arrays are sized for TM_MAX and the unused part is
// optimised away once TM is known.
override TM: u32 = 16u;
const TM_MAX: u32 = 16u;
const TN: u32 = 8u;

// Column t of an invocation: lanes side by side (j0 + t*WG) normally, or 8 adjacent columns (j0 + t)
// when the lanes split k instead.
fn col_of(j0: u32, t: u32) -> u32 {
  return select(j0 + t * WG, j0 + t, SPLIT_LANES);
}

// The first column descriptors of an invocation's block (out-of-range columns read a valid neighbour).
fn block_cols(s: Slice, j0: u32) -> array<Ix, TN> {
  var cols: array<Ix, TN>;
  for (var t = 0u; t < TN; t++) {
    cols[t] = b_col(min(col_of(j0, t), s.n - 1u), s);
  }
  return cols;
}

// Writes an invocation's TM x TN block (rows m0.., columns col_of(j0, t)) through the epilogue.
fn write_block(s: Slice, m0: u32, j0: u32, acc_lo: array<vec4f, TM_MAX>, acc_hi: array<vec4f, TM_MAX>) {
  let jl = s.n - 1u;
  // The rows are a run-time loop (not unrolled): a fully unrolled epilogue of TM*TN scattered
  // stores makes lavapipe's shader compile several times slower.
  var out_cols: array<CCol, TN>;
  var col_ok: array<bool, TN>;
  var cb_lo: vec4f;
  var cb_hi: vec4f;
  for (var t = 0u; t < TN; t++) {
    let j = col_of(j0, t);
    col_ok[t] = j < s.n;
    out_cols[t] = c_col(min(j, jl), s);
    let cb = bias_col(min(j, jl));
    if (t < 4u) {
      cb_lo[t] = cb;
    } else {
      cb_hi[t - 4u] = cb;
    }
  }
  let rows_left = min(TM, p.M - m0);
  for (var i = 0u; i < rows_left; i++) {
    let m = m0 + i;
    let br = bias_row(m);
    let lo = acc_lo[i] + cb_lo + br;
    let hi = acc_hi[i] + cb_hi + br;
    for (var t = 0u; t < TN; t++) {
      if (col_ok[t]) {
        let v = select(hi[t % 4u], lo[t % 4u], t < 4u);
        c[c_at(out_cols[t], m)] = epilogue(v);
      }
    }
  }
}

