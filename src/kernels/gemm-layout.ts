// The GEMM core's uniform block and operand-mode constants (shaders/lib/gemm.wgsl), declared once:
// the shaders get the WGSL `Params` struct and the mode `const`s through `//! import generated:gemm_params`,
// and gemm() in matmul.ts packs a named object with GEMM_PARAMS and maps the mode names below to the
// override constants A_MODE, B_MODE, C_MODE and B_VEC4.
import { defineGeneratedLib } from '../gpu/shaders.js';
import { UniformLayout, wgslEnumConstants } from '../gpu/uniform-layout.js';

/** How A[m, k] is read (override A_MODE; the table in shaders/matmul.wgsl). WGSL: A_PLAIN, A_CONV_W_T, ... */
export const A_MODE = { plain: 0, convWT: 1, nchwRows: 2, im2col: 3, im2colT: 4 } as const;
/** How B[k, j] is read (override B_MODE). WGSL: B_PLAIN, B_IM2COL, ... */
export const B_MODE = { plain: 0, im2col: 1, phase: 2, im2colT: 3, nchwCols: 4 } as const;
/** Where C[m, j] is written (override C_MODE). WGSL: C_PLAIN, C_NCHW, ... */
export const C_MODE = { plain: 0, nchw: 1, phase: 2, nchwT: 3 } as const;
/** Which bias the epilogue adds (uniform bias_mode): per column (dense), per row (conv channels). */
export const BIAS_MODE = { none: 0, perColumn: 1, perRow: 2 } as const;
/** How gemm_vec4 reads B (override B_VEC4; see the vec4 readers in shaders/lib/gemm.wgsl). WGSL: B_SCALAR, B_VEC4_K, B_VEC4_COLUMNS. */
export const B_VEC4 = { scalar: 0, vec4K: 1, vec4Columns: 2 } as const;

export type AMode = keyof typeof A_MODE;
export type BMode = keyof typeof B_MODE;
export type CMode = keyof typeof C_MODE;
export type BiasMode = keyof typeof BIAS_MODE;
export type BVec4 = keyof typeof B_VEC4;

/** `Params` of shaders/lib/gemm.wgsl. */
export const GEMM_PARAMS = new UniformLayout('Params', [
  { name: 'M', type: 'u32' },
  { name: 'N', type: 'u32', doc: "columns (for B_PHASE: the largest phase's count, for grid sizing only)" },
  { name: 'K', type: 'u32' },
  { name: 'batch', type: 'u32', doc: 'batch of plain GEMMs, or number of stride phases' },
  { name: 'splits', type: 'u32', doc: 'split-K chunks per batch entry' },
  { name: 'k_chunk', type: 'u32', doc: 'k per chunk' },
  { name: 'slope', type: 'f32', doc: 'leaky ReLU slope' },
  { name: 'gate_slope', type: 'f32', doc: "leaky ReLU slope of the activation gate (A_GATE / B_GATE)" },
  { name: 'act', type: 'u32', doc: 'ACT_* code of the activation applied after the bias' },
  { name: 'bias_mode', type: 'u32', doc: 'BIAS_NONE, BIAS_PER_COLUMN (bias[j], dense) or BIAS_PER_ROW (bias[m], conv channels)' },
  // Plain-mode strides: [batch, row, k] of A, [batch, k, column] of B, [batch, row, column] of C.
  { name: 'a_sb', type: 'i32', doc: 'plain-mode strides of A: batch, row, k' },
  { name: 'a_sm', type: 'i32' },
  { name: 'a_sk', type: 'i32' },
  { name: 'b_sb', type: 'i32', doc: 'of B: batch, k, column' },
  { name: 'b_sk', type: 'i32' },
  { name: 'b_sn', type: 'i32' },
  { name: 'c_sb', type: 'i32', doc: 'of C: batch, row, column' },
  { name: 'c_sm', type: 'i32' },
  { name: 'c_sn', type: 'i32' },
  // Forward-conv geometry (ConvGeometry in matmul.ts): x [nimg, xc, xh, xw] -> y [nimg, yc, yh, yw].
  { name: 'nimg', type: 'i32', doc: 'forward conv: x [nimg, xc, xh, xw] -> y [nimg, yc, yh, yw]' },
  { name: 'xc', type: 'i32' },
  { name: 'xh', type: 'i32' },
  { name: 'xw', type: 'i32' },
  { name: 'yc', type: 'i32' },
  { name: 'yh', type: 'i32' },
  { name: 'yw', type: 'i32' },
  { name: 'kh', type: 'i32', doc: 'kernel height' },
  { name: 'kw', type: 'i32', doc: 'kernel width' },
  { name: 'sh', type: 'i32', doc: 'stride' },
  { name: 'sw', type: 'i32' },
  { name: 'ph', type: 'i32', doc: 'padding' },
  { name: 'pw', type: 'i32' },
] as const);

defineGeneratedLib(
  'gemm_params',
  'src/kernels/gemm-layout.ts',
  [
    GEMM_PARAMS.wgsl(),
    wgslEnumConstants('A', A_MODE),
    wgslEnumConstants('B', B_MODE),
    wgslEnumConstants('C', C_MODE),
    wgslEnumConstants('BIAS', BIAS_MODE),
    wgslEnumConstants('B', B_VEC4),
  ].join('\n'),
);
