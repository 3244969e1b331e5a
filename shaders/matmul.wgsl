//! import common
// One GEMM core for dense layers, conv2d (implicit GEMM) and both conv2d backward passes.
//
//   C[z][m, j] = act( sum_{k in slice z} A[z][m, k] * B[z][k, j] + bias )
//
// How A and B are read and where C is written are chosen by override constants (A_MODE, B_MODE,
// C_MODE), so every use is its own pipeline with the unused paths folded away at compile time:
//
//   use                 | A[m, k]                     | B[k, j]                          | C[m, j] goes to
//   --------------------+-----------------------------+----------------------------------+----------------------
//   matmul / dense      | A_PLAIN: a[z*sb + m*sm + k*sk] | B_PLAIN: b[z*sb + k*sk + j*sn] | C_PLAIN: c[z*sb + m*sm + j*sn]
//   conv2d forward      | A_PLAIN: w as [O, C*kH*kW]  | B_IM2COL: x[n, c, oh*s-p+u, ...] | C_NCHW: y[n, m, oh, ow]
//                       |                             |   k = (c,u,v), j = (n,oh,ow)     |
//   conv2d d/dx         | A_CONV_W_T: w[o, m, u, v]   | B_PHASE: dy[n, o, t-u', ...]     | C_PHASE: dx[n, m, ih, iw]
//   (= conv-transpose   |   k = (o,u',v')             |   j = (n,th,tw), see below       |
//    forward)           |                             |                                  |
//   conv2d d/dw         | A_NCHW_ROWS: dy[n, m, pix]  | B_IM2COL_T: x[n, c, oh*s-p+u,..] | C_PLAIN: dw[m, (c,u,v)]
//                       |   k = (n, pix)              |   k = (n,oh,ow), j = (c,u,v)     |
//
// Conv geometry (uniforms) is always that of the forward conv: input x [nimg, xc, xh, xw], output
// y [nimg, yc, yh, yw], kernel kh x kw, stride sh/sw, padding ph/pw.
//
// d/dx by stride phases: dx[ih] gathers dy[oh] * w[u] over ih + p = oh*s + u. For a fixed phase
// r = (ih + p) mod s only the taps u = r + s*u' contribute, and then oh = t - u' with t = (ih + p) div s.
// So z enumerates the s_h*s_w phases, each an ordinary GEMM with no wasted (zero) taps: columns are
// the output pixels of that phase, k runs over (o, u', v'). With stride 1 there is one phase.
//
// Every operand is addressed through an `Ix` (flat offset plus the two spatial coordinates needed for
// the bounds test). A row/column contributes one Ix, the k index another; the element is at
// row.off + k.off, and for the bounded (conv) readers it exists iff the summed coordinates lie inside
// the image (zero padding otherwise). The k Ix is advanced incrementally (`*_next`) in the hot loop
// so the register kernel never divides there; `*_k` computes it from scratch (tiled loads, split
// starts).
//
// Split-K: for long reductions with few outputs (conv d/dw), z also enumerates `splits` chunks of k;
// each writes its partial sums to its own slab of c, and `reduce_splits` adds them up. With
// SPLIT_LANES the chunks are spread over the invocations of a workgroup instead of over columns
// (for results too narrow to fill a workgroup's columns, such as d/dw of a first conv layer).
//
// Two kernels use this core:
//   gemm_register: each invocation owns a TM x TN block of C in registers; no shared memory and no
//     barriers (fast on CPU implementations such as lavapipe, where every load is a per-invocation
//     gather: the larger the block, the fewer loads per multiply-add).
//   gemm_tiled: the classic shared-memory tiling for GPUs: 64x64 C tiles, 16x16 invocations each
//     computing 4x4, k in steps of 16 staged in workgroup memory.
//
// Bias mode and activation are uniforms rather than override constants: the epilogue runs once per
// output, so the branch costs nothing, while each extra pipeline costs a shader compile (about a
// second on lavapipe).

override A_MODE: u32 = 0u;
override B_MODE: u32 = 0u;
override C_MODE: u32 = 0u;
// Invocations per workgroup of gemm_register (the host picks it from the number of columns).
override WG: u32 = 64u;
// gemm_register: invocations of a workgroup take different k chunks instead of different columns.
override SPLIT_LANES: bool = false;

const A_PLAIN: u32 = 0u;
const A_CONV_W_T: u32 = 1u;
const A_NCHW_ROWS: u32 = 2u;
const B_PLAIN: u32 = 0u;
const B_IM2COL: u32 = 1u;
const B_PHASE: u32 = 2u;
const B_IM2COL_T: u32 = 3u;
const C_PLAIN: u32 = 0u;
const C_NCHW: u32 = 1u;
const C_PHASE: u32 = 2u;

struct Params {
  M: u32,
  N: u32,        // columns (for B_PHASE: the largest phase's count, for grid sizing only)
  K: u32,
  batch: u32,    // batch of plain GEMMs, or number of stride phases
  splits: u32,   // split-K chunks per batch entry
  k_chunk: u32,  // k per chunk
  slope: f32,    // leaky ReLU slope
  act: u32,      // ACT_* code of the activation applied after the bias
  bias_mode: u32,  // 0: none; 1: bias[j] (per column, dense); 2: bias[m] (per row, conv channels)
  a_sb: i32, a_sm: i32, a_sk: i32,
  b_sb: i32, b_sk: i32, b_sn: i32,
  c_sb: i32, c_sm: i32, c_sn: i32,
  nimg: i32, xc: i32, xh: i32, xw: i32,
  yc: i32, yh: i32, yw: i32,
  kh: i32, kw: i32, sh: i32, sw: i32, ph: i32, pw: i32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
// Always bound (the host binds `a` again when there is no bias, bias_mode 0) so that every pipeline
// of this shader has the same bindings.
@group(0) @binding(4) var<storage, read> bias: array<f32>;

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

// ------------------------------------------------------------------------------------ A operand

fn a_row(m: u32, s: Slice) -> Ix {
  let mi = i32(m);
  switch A_MODE {
    case 1u: { return Ix(mi * p.kh * p.kw, 0, 0); }                   // A_CONV_W_T: row = input channel
    case 2u: { return Ix(mi * p.yh * p.yw, 0, 0); }                   // A_NCHW_ROWS: row = output channel
    default: { return Ix(i32(s.zb) * p.a_sb + mi * p.a_sm, 0, 0); }
  }
}

fn a_k(k: u32, s: Slice) -> Ix {
  let ki = i32(k);
  switch A_MODE {
    case 1u: {
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
    case 2u: {
      // k = (n, pix)
      let hw = p.yh * p.yw;
      let n = ki / hw;
      let pix = ki % hw;
      return Ix(n * p.yc * hw + pix, pix, 0);
    }
    default: { return Ix(ki * p.a_sk, 0, 0); }
  }
}

fn a_next(k: Ix, s: Slice) -> Ix {
  var r = k;
  switch A_MODE {
    case 1u: {
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
    case 2u: {
      r.h += 1;
      r.off += 1;
      if (r.h == p.yh * p.yw) {
        r.h = 0;
        r.off += (p.yc - 1) * p.yh * p.yw;
      }
    }
    default: { r.off += p.a_sk; }
  }
  return r;
}

fn a_read(row: Ix, k: Ix) -> f32 {
  return a[row.off + k.off];
}

// ------------------------------------------------------------------------------------ B operand

fn b_col(j: u32, s: Slice) -> Ix {
  let ji = i32(j);
  switch B_MODE {
    case 1u: {
      // B_IM2COL: j = (n, oh, ow); the window's top-left corner in x
      let hw = p.yh * p.yw;
      let n = ji / hw;
      let r = ji % hw;
      let h = (r / p.yw) * p.sh - p.ph;
      let w = (r % p.yw) * p.sw - p.pw;
      return Ix(n * p.xc * p.xh * p.xw + h * p.xw + w, h, w);
    }
    case 2u: {
      // B_PHASE: j = (n, qh, qw) -> t = t0 + q
      let per = s.nth * s.ntw;
      let n = ji / per;
      let r = ji % per;
      let th = s.th0 + r / s.ntw;
      let tw = s.tw0 + r % s.ntw;
      return Ix(n * p.yc * p.yh * p.yw + th * p.yw + tw, th, tw);
    }
    case 3u: {
      // B_IM2COL_T: j = (c, u, v)
      let taps = p.kh * p.kw;
      let ch = ji / taps;
      let r = ji % taps;
      let u = r / p.kw;
      let v = r % p.kw;
      return Ix(ch * p.xh * p.xw + u * p.xw + v, u, v);
    }
    default: { return Ix(i32(s.zb) * p.b_sb + ji * p.b_sn, 0, 0); }
  }
}

fn b_k(k: u32, s: Slice) -> Ix {
  let ki = i32(k);
  switch B_MODE {
    case 1u: {
      // k = (c, u, v)
      let taps = p.kh * p.kw;
      let ch = ki / taps;
      let r = ki % taps;
      let u = r / p.kw;
      let v = r % p.kw;
      return Ix(ch * p.xh * p.xw + u * p.xw + v, u, v);
    }
    case 2u: {
      // k = (o, u', v'): dy[n, o, t_h - u', t_w - v']
      let taps = s.khp * s.kwp;
      let o = ki / taps;
      let r = ki % taps;
      let uq = r / s.kwp;
      let vq = r % s.kwp;
      return Ix(o * p.yh * p.yw - uq * p.yw - vq, -uq, -vq);
    }
    case 3u: {
      // k = (n, oh, ow)
      let hw = p.yh * p.yw;
      let n = ki / hw;
      let r = ki % hw;
      let h = (r / p.yw) * p.sh - p.ph;
      let w = (r % p.yw) * p.sw - p.pw;
      return Ix(n * p.xc * p.xh * p.xw + h * p.xw + w, h, w);
    }
    default: { return Ix(ki * p.b_sk, 0, 0); }
  }
}

fn b_next(k: Ix, s: Slice) -> Ix {
  var r = k;
  switch B_MODE {
    case 1u: {
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
    }
    case 2u: {
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
    case 3u: {
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
    }
    default: { r.off += p.b_sk; }
  }
  return r;
}

fn b_read(col: Ix, k: Ix) -> f32 {
  if (B_MODE == B_PLAIN) {
    return b[col.off + k.off];
  }
  // Bounded readers: the element exists iff the summed coordinates are inside the image read
  // (x for the im2col readers, dy for the phase reader); outside is zero padding. The index is
  // clamped to 0 there so the load itself stays in bounds.
  let bh = select(p.xh, p.yh, B_MODE == B_PHASE);
  let bw = select(p.xw, p.yw, B_MODE == B_PHASE);
  let inside = u32(col.h + k.h) < u32(bh) && u32(col.w + k.w) < u32(bw);
  let v = b[select(0, col.off + k.off, inside)];
  return select(0.0, v, inside);
}

// ------------------------------------------------------------------------------------ C (epilogue)

// Where column j of row 0 goes, and the distance between consecutive rows.
struct CCol {
  base: i32,
  row_stride: i32,
}

fn c_col(j: u32, s: Slice) -> CCol {
  let ji = i32(j);
  switch C_MODE {
    case 1u: {
      // C_NCHW: j = (n, pix) -> y[n, m, pix]
      let hw = p.yh * p.yw;
      let n = ji / hw;
      return CCol(n * p.yc * hw + ji % hw, hw);
    }
    case 2u: {
      // C_PHASE: j = (n, qh, qw) -> dx[n, m, sh*t_h + rh - ph, sw*t_w + rw - pw]
      let per = s.nth * s.ntw;
      let n = ji / per;
      let r = ji % per;
      let ih = p.sh * (s.th0 + r / s.ntw) + s.rh - p.ph;
      let iw = p.sw * (s.tw0 + r % s.ntw) + s.rw - p.pw;
      return CCol(n * p.xc * p.xh * p.xw + ih * p.xw + iw, p.xh * p.xw);
    }
    default: { return CCol(i32(s.z) * p.c_sb + ji * p.c_sn, p.c_sm); }
  }
}

// The bias of row m / column j (0 without bias). Loaded once per row or column by the callers.
fn bias_row(m: u32) -> f32 {
  if (p.bias_mode == 2u) {
    return bias[m];
  }
  return 0.0;
}

fn bias_col(j: u32) -> f32 {
  if (p.bias_mode == 1u) {
    return bias[j];
  }
  return 0.0;
}

fn epilogue(v: f32) -> f32 {
  return activate(p.act, v, p.slope);
}

// ------------------------------------------------------------------------------------ register kernel

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

fn register_tile(s: Slice, m0: u32, j0: u32) {
  // Out-of-range columns and rows read a valid neighbour and are not written.
  let jl = s.n - 1u;
  var cols: array<Ix, TN>;
  for (var t = 0u; t < TN; t++) {
    cols[t] = b_col(min(col_of(j0, t), jl), s);
  }
  var rows: array<Ix, TM_MAX>;
  for (var i = 0u; i < TM; i++) {
    rows[i] = a_row(min(m0 + i, p.M - 1u), s);
  }
  var acc_lo: array<vec4f, TM_MAX>;   // columns 0..3
  var acc_hi: array<vec4f, TM_MAX>;   // columns 4..7
  var ka = a_k(s.k0, s);
  var kb = b_k(s.k0, s);
  for (var k = s.k0; k < s.k1; k++) {
    let b_lo = vec4f(b_read(cols[0], kb), b_read(cols[1], kb), b_read(cols[2], kb), b_read(cols[3], kb));
    let b_hi = vec4f(b_read(cols[4], kb), b_read(cols[5], kb), b_read(cols[6], kb), b_read(cols[7], kb));
    for (var i = 0u; i < TM; i++) {
      let av = a_read(rows[i], ka);
      acc_lo[i] += av * b_lo;
      acc_hi[i] += av * b_hi;
    }
    ka = a_next(ka, s);
    kb = b_next(kb, s);
  }
  // The write-out loops over the rows at run time (not unrolled): a fully unrolled epilogue of
  // TM*TN scattered stores makes lavapipe's shader compile several times slower.
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
        c[out_cols[t].base + i32(m) * out_cols[t].row_stride] = epilogue(v);
      }
    }
  }
}

// Grid: x = column blocks (WG*TN columns, or TN with SPLIT_LANES), y = row blocks of TM, z = batch *
// splits or phases (with SPLIT_LANES: groups of WG splits). Each dimension loops with the grid's
// stride, so grids larger than the device limit can be clamped.
@compute @workgroup_size(WG)
fn gemm_register(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) lid: u32,
) {
  let zn = p.batch * p.splits;
  let col_step = select(WG * TN, TN, SPLIT_LANES);
  for (var zb = wid.z; zb < select(zn, (zn + WG - 1u) / WG, SPLIT_LANES); zb += nwg.z) {
    // With SPLIT_LANES each invocation takes its own split; surplus invocations have nothing to do.
    let z = select(zb, zb * WG + lid, SPLIT_LANES);
    if (z >= zn) {
      break;
    }
    let s = make_slice(z);
    for (var m0 = wid.y * TM; m0 < p.M; m0 += nwg.y * TM) {
      for (var jb = wid.x * col_step; jb < s.n; jb += nwg.x * col_step) {
        register_tile(s, m0, select(jb + lid, jb, SPLIT_LANES));
      }
    }
  }
}

// ------------------------------------------------------------------------------------ tiled kernel

const TILE: u32 = 64u;   // C tile is TILE x TILE
const TK: u32 = 16u;     // k step staged in workgroup memory
const TS: u32 = 16u;     // invocations per tile side (each computes 4x4)
const TR: u32 = 4u;      // = TILE / TS

var<workgroup> As: array<array<f32, TILE>, TK>;   // As[k][m]
var<workgroup> Bs: array<array<f32, TILE>, TK>;   // Bs[k][j]

fn tiled_tile(s: Slice, m0: u32, j0: u32, lx: u32, ly: u32) {
  let li = ly * TS + lx;
  // Row / column descriptors this invocation loads from: 4 rows of A and 4 columns of B per k step
  // (TILE*TK / (TS*TS) = 4 elements each). Load slot e = li + q*256 -> (kk = e / TILE, mm = e % TILE);
  // since 256 is a multiple of TILE, mm is the same for every q and kk advances by 4.
  let mm = li % TILE;
  let kq = li / TILE;   // 0..3
  let lrow = a_row(min(m0 + mm, p.M - 1u), s);
  let lcol = b_col(min(j0 + mm, s.n - 1u), s);
  let row_ok = m0 + mm < p.M;
  let col_ok = j0 + mm < s.n;

  var acc: array<array<f32, TR>, TR>;
  for (var kt = s.k0; kt < s.k1; kt += TK) {
    for (var q = 0u; q < TK / 4u; q++) {
      let kk = kq + 4u * q;
      let k = kt + kk;
      let k_ok = k < s.k1;
      let kc = min(k, s.k1 - 1u);
      As[kk][mm] = select(0.0, a_read(lrow, a_k(kc, s)), row_ok && k_ok);
      Bs[kk][mm] = select(0.0, b_read(lcol, b_k(kc, s)), col_ok && k_ok);
    }
    workgroupBarrier();
    for (var kk = 0u; kk < TK; kk++) {
      var bv: array<f32, TR>;
      for (var t = 0u; t < TR; t++) {
        bv[t] = Bs[kk][lx + t * TS];
      }
      for (var i = 0u; i < TR; i++) {
        let av = As[kk][ly + i * TS];
        for (var t = 0u; t < TR; t++) {
          acc[i][t] += av * bv[t];
        }
      }
    }
    workgroupBarrier();
  }
  for (var t = 0u; t < TR; t++) {
    let j = j0 + lx + t * TS;
    if (j < s.n) {
      let cc = c_col(j, s);
      for (var i = 0u; i < TR; i++) {
        let m = m0 + ly + i * TS;
        if (m < p.M) {
          c[cc.base + i32(m) * cc.row_stride] = epilogue(acc[i][t] + bias_row(m) + bias_col(j));
        }
      }
    }
  }
}

// Grid: x = column tiles, y = row tiles, z = batch * splits (or phases); grid-stride loops as above.
// The loop bounds are uniform across the workgroup, so the barriers inside are in uniform control flow.
@compute @workgroup_size(16, 16)
fn gemm_tiled(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_id) lid: vec3u,
) {
  for (var z = wid.z; z < p.batch * p.splits; z += nwg.z) {
    let s = make_slice(z);
    for (var m0 = wid.y * TILE; m0 < p.M; m0 += nwg.y * TILE) {
      for (var j0 = wid.x * TILE; j0 < s.n; j0 += nwg.x * TILE) {
        tiled_tile(s, m0, j0, lid.x, lid.y);
      }
    }
  }
}

// ------------------------------------------------------------------------------------ split-K reduction

// c[m*c_sm + j*c_sn] = epilogue(sum_s a[s*M*N + m*N + j]) for batch 1: adds the partial slabs that a
// split-K gemm wrote (in C_PLAIN layout with c_sb = M*N, c_sm = N, c_sn = 1). A 1-D grid that loops
// with its own stride, so the host may clamp it to the device limit.
@compute @workgroup_size(256)
fn reduce_splits(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let mn = p.M * p.N;
  for (var e = gid.x; e < mn; e += nwg.x * 256u) {
    var sum = 0.0;
    for (var s = 0u; s < p.splits; s++) {
      sum += a[s * mn + e];
    }
    // `b` is not needed here (the host binds the partials to it as well); this dead-at-run-time read
    // keeps it in the 'auto' layout so all entry points share one binding list.
    if (p.splits == 0u) {
      sum = b[0];
    }
    let m = e / p.N;
    let j = e % p.N;
    c[i32(m) * p.c_sm + i32(j) * p.c_sn] = epilogue(sum + bias_row(m) + bias_col(j));
  }
}
