// Uniform blocks declared once in TS (src/gpu/uniform-layout.ts): the generated WGSL struct and the
// packed bytes must agree. The GPU tests let the WGSL compiler lay the generated struct out and read
// every field back, so a packing offset that differs from the compiler's shows up as a wrong value.
import { readdirSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../src/gpu/engine.js';
import { loadShader } from '../src/gpu/shaders.js';
import { UniformLayout, camelCase, screamingCase, wgslEnumConstants, type UniformFieldSpec } from '../src/gpu/uniform-layout.js';
import { A_MODE, B_MODE, B_VEC4, BIAS_MODE, C_MODE, GEMM_PARAMS } from '../src/kernels/gemm-layout.js';
import { BN_PARAMS } from '../src/kernels/batchnorm2d.js';
import { ACTIVATION_CODE } from '../src/kernels/activation-codes.js';
import { testEngine } from './helpers.js';

const SMALL = new UniformLayout('Small', [
  { name: 'count', type: 'u32' },
  { name: 'k_chunk', type: 'u32', doc: 'k per chunk' },
  { name: 'offset', type: 'i32' },
  { name: 'scale', type: 'f32' },
  { name: 'inv_m', type: 'f32' },
] as const);

describe('UniformLayout', () => {
  it('lays scalar fields out 4 bytes apart and rounds the block to 16 bytes', () => {
    expect(SMALL.fields.map((f) => [f.name, f.key, f.offset])).toEqual([
      ['count', 'count', 0],
      ['k_chunk', 'kChunk', 4],
      ['offset', 'offset', 8],
      ['scale', 'scale', 12],
      ['inv_m', 'invM', 16],
    ]);
    expect(SMALL.byteSize).toBe(32);
    expect(new UniformLayout('One', [{ name: 'a', type: 'u32' }] as const).byteSize).toBe(16);
    expect(new UniformLayout('Four', ['a', 'b', 'c', 'd'].map((name) => ({ name, type: 'u32' as const }))).byteSize).toBe(16);
    // The GEMM core's 32 fields: 128 bytes.
    expect(GEMM_PARAMS.fields.length).toBe(32);
    expect(GEMM_PARAMS.byteSize).toBe(128);
    // Batch norm's 18: 72 bytes, bound as 80.
    expect(BN_PARAMS.fields.length).toBe(18);
    expect(BN_PARAMS.byteSize).toBe(80);
  });

  it('generates the WGSL struct with the fields in order, typed, with their docs', () => {
    const text = SMALL.wgsl();
    expect(text.startsWith('struct Small {\n')).toBe(true);
    const fields = [...text.matchAll(/^\s+(\w+): (\w+),/gm)].map((m) => `${m[1]}:${m[2]}`);
    expect(fields).toEqual(['count:u32', 'k_chunk:u32', 'offset:i32', 'scale:f32', 'inv_m:f32']);
    expect(text).toMatch(/k_chunk: u32,\s+\/\/ k per chunk\n/);
  });

  it('packs a named object at the fields offsets (u32, i32 and f32 bits)', () => {
    const bytes = SMALL.pack({ count: 7, kChunk: 0xffffffff, offset: -3, scale: 0.1, invM: 1 / 3 });
    expect(bytes.byteLength).toBe(32);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    expect(view.getUint32(0, true)).toBe(7);
    expect(view.getUint32(4, true)).toBe(0xffffffff);
    expect(view.getInt32(8, true)).toBe(-3);
    expect(view.getFloat32(12, true)).toBe(Math.fround(0.1));
    expect(view.getFloat32(16, true)).toBe(Math.fround(1 / 3));
    expect([...bytes.slice(20)]).toEqual(new Array(12).fill(0));
  });

  it('rejects a missing field, an unknown field and out-of-range integers', () => {
    const ok = { count: 1, kChunk: 2, offset: 3, scale: 4, invM: 5 };
    const { kChunk: _dropped, ...missing } = ok;
    expect(() => SMALL.pack(missing as typeof ok)).toThrow(/Small\.kChunk is missing/);
    expect(() => SMALL.pack({ ...ok, k_chunk: 2 } as typeof ok)).toThrow(/Small has no field\(s\) k_chunk/);
    expect(() => SMALL.pack({ ...ok, count: -1 })).toThrow(/Small\.count = -1 is not a u32/);
    expect(() => SMALL.pack({ ...ok, count: 1.5 })).toThrow(/not a u32/);
    expect(() => SMALL.pack({ ...ok, count: 2 ** 32 })).toThrow(/not a u32/);
    expect(() => SMALL.pack({ ...ok, offset: 2 ** 31 })).toThrow(/Small\.offset = 2147483648 is not an i32/);
    expect(() => SMALL.pack({ ...ok, scale: '1' as unknown as number })).toThrow(/not a number/);
    // The host object's type has the same keys: these fail to compile as well as at run time.
    // @ts-expect-error missing field
    expect(() => SMALL.pack({ count: 1, offset: 3, scale: 4, invM: 5 })).toThrow();
    // @ts-expect-error unknown field
    expect(() => SMALL.pack({ ...ok, extra: 1 })).toThrow(/no field\(s\) extra/);
  });

  it('rejects field names that are not WGSL identifiers, and names that collide once camel-cased', () => {
    expect(() => new UniformLayout('Bad', [{ name: 'a-b', type: 'u32' }])).toThrow(/not a WGSL identifier/);
    expect(() => new UniformLayout('Twice', [{ name: 'k_chunk', type: 'u32' }, { name: 'kChunk', type: 'u32' }])).toThrow(/declared twice/);
  });

  it('names enum constants PREFIX_SCREAMING_CASE and generates them as u32 consts', () => {
    expect(camelCase('chunks_per_plane')).toBe('chunksPerPlane');
    expect(screamingCase('convWT')).toBe('CONV_W_T');
    expect(screamingCase('im2colT')).toBe('IM2COL_T');
    expect(screamingCase('vec4Columns')).toBe('VEC4_COLUMNS');
    expect(wgslEnumConstants('A', { plain: 0, im2colT: 4 })).toBe('const A_PLAIN: u32 = 0u;\nconst A_IM2COL_T: u32 = 4u;\n');
  });
});

describe('generated shader libraries', () => {
  it('give the GEMM shaders one Params struct and every mode constant, and the .wgsl files none of their own', () => {
    for (const name of ['matmul', 'matmul_subgroups', 'matmul_vec4']) {
      const { code } = loadShader(name);
      expect(code.match(/struct Params \{/g)?.length, name).toBe(1);
      expect(code).toContain(GEMM_PARAMS.wgsl());
      for (const [prefix, modes] of [['A', A_MODE], ['B', B_MODE], ['C', C_MODE], ['BIAS', BIAS_MODE], ['B', B_VEC4]] as const)
        for (const [key, v] of Object.entries(modes)) {
          const decl = new RegExp(`const ${prefix}_${screamingCase(key)}: u32 = (\\d+)u;`, 'g');
          expect([...code.matchAll(decl)].map((m) => Number(m[1])), `${name}: ${prefix}.${key}`).toEqual([v]);
        }
    }
  });

  it('leave no hand-written copy of a generated struct or mode constant in the .wgsl files', () => {
    for (const file of ['lib/gemm', 'matmul', 'matmul_subgroups', 'matmul_vec4', 'batchnorm2d']) {
      const text = readFileSync(new URL(`../shaders/${file}.wgsl`, import.meta.url), 'utf8');
      expect(text, file).not.toMatch(/^\s*struct Params\b/m);
      expect(text, file).not.toMatch(/^\s*const (A|B|C|BIAS)_\w+\s*:/m);
      // The GEMM core's switches name their modes.
      expect(text, file).not.toMatch(/case \d+u?:/);
    }
  });

  it('give every shader that imports common the ACT_* codes once, from ACTIVATION_CODE, and no .wgsl file a copy', () => {
    const dir = new URL('../shaders/', import.meta.url);
    const shaders = readdirSync(dir).filter((f) => f.endsWith('.wgsl')).map((f) => f.slice(0, -5));
    const withCommon = shaders.filter((n) => /^\/\/!\s*import common\s*$/m.test(readFileSync(new URL(`${n}.wgsl`, dir), 'utf8')));
    expect(withCommon).toEqual(expect.arrayContaining(['activation', 'conv2d', 'matmul', 'matmul_vec4']));
    for (const name of withCommon) {
      const { code } = loadShader(name);
      for (const [key, v] of Object.entries(ACTIVATION_CODE)) {
        const decl = new RegExp(`const ACT_${screamingCase(key)}: u32 = (\\d+)u;`, 'g');
        expect([...code.matchAll(decl)].map((m) => Number(m[1])), `${name}: ACT_${screamingCase(key)}`).toEqual([v]);
      }
      // The generated constants come before common's functions that switch on them.
      expect(code.indexOf('const ACT_NONE'), name).toBeLessThan(code.indexOf('fn activate('));
    }
    for (const file of [...shaders, ...readdirSync(new URL('lib/', dir)).filter((f) => f.endsWith('.wgsl')).map((f) => `lib/${f.slice(0, -5)}`)])
      expect(readFileSync(new URL(`${file}.wgsl`, dir), 'utf8'), file).not.toMatch(/^\s*const ACT_\w+\s*:/m);
  });

  it('give batchnorm2d its Params struct', () => {
    const { code } = loadShader('batchnorm2d');
    expect(code.match(/struct Params \{/g)?.length).toBe(1);
    expect(code).toContain(BN_PARAMS.wgsl());
  });
});

describe('generated struct on the GPU', () => {
  let e: Engine;
  beforeAll(async () => {
    e = await testEngine();
  });
  afterAll(() => e?.destroy());

  /**
   * Compiles a shader that declares `layout`'s generated struct and copies each field (bit pattern) to
   * an i32 output, dispatches it with `bytes` and returns what it wrote.
   */
  async function readBack(name: string, layout: UniformLayout<readonly UniformFieldSpec[]>, bytes: Uint8Array): Promise<Int32Array> {
    const n = layout.fields.length;
    const copies = layout.fields.map((f, i) => `  out[${i}] = bitcast<i32>(p.${f.name});`).join('\n');
    e.registerShader(
      name,
      [
        layout.wgsl(),
        `@group(0) @binding(0) var<uniform> p: ${layout.structName};`,
        '@group(0) @binding(1) var<storage, read_write> out: array<i32>;',
        '@compute @workgroup_size(1)',
        'fn main() {',
        copies,
        '}',
      ].join('\n'),
    );
    const out = e.empty([n], 'i32');
    e.dispatch({ shader: name, uniforms: bytes, bindings: [out], workgroups: [1], label: name });
    const got = (await out.toArray()) as Int32Array;
    out.dispose();
    return got;
  }

  /** A distinct value per field (negative for i32, fractional for f32) and its expected bit pattern. */
  function probe(layout: UniformLayout<readonly UniformFieldSpec[]>) {
    const values: Record<string, number> = {};
    layout.fields.forEach((f, i) => {
      values[f.key] = f.type === 'u32' ? 1000 + i : f.type === 'i32' ? -(2000 + i) : 0.25 + i;
    });
    const bits = new Int32Array(layout.fields.length);
    const view = new DataView(bits.buffer);
    layout.fields.forEach((f, i) => {
      if (f.type === 'f32') view.setFloat32(i * 4, values[f.key], true);
      else view.setInt32(i * 4, values[f.key], true);
    });
    return { values, bits };
  }

  it("reads back every field of GEMM_PARAMS as packed (the compiler's offsets are the packer's)", async () => {
    const { values, bits } = probe(GEMM_PARAMS);
    const got = await readBack('probe_gemm_params', GEMM_PARAMS, GEMM_PARAMS.pack(values as Parameters<typeof GEMM_PARAMS.pack>[0]));
    expect(got.length).toBe(32);
    expect([...got]).toEqual([...bits]);
  });

  it('reads back every field of the batch-norm block, and of a block with u32, i32 and f32 fields', async () => {
    for (const [name, layout] of [['probe_bn_params', BN_PARAMS], ['probe_small', SMALL]] as const) {
      const { values, bits } = probe(layout);
      const got = await readBack(name, layout, (layout as UniformLayout<readonly UniformFieldSpec[]>).pack(values));
      expect([...got], name).toEqual([...bits]);
    }
  });
});
