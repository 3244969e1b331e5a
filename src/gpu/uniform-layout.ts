// Uniform blocks and shader constants described once, in TypeScript. A kernel's uniform block used to be
// written twice, as a WGSL `struct` and as a positional array on the host, and its mode integers as TS
// and WGSL constants that had to agree by hand (issue 10). Here one ordered list of named fields gives
// both the WGSL struct text (placed in the shader by the loader, see `//! import generated:` in
// shaders.ts) and the packing of a named object into the uniform buffer; and a TS enum object gives
// the WGSL `const` declarations.
//
// Naming: a field is named once, in WGSL's snake_case (`k_chunk`); the host object uses its camelCase
// form (`kChunk`), derived mechanically (CamelCase below). Enum keys are camelCase (`im2colT`) and
// become PREFIX_SCREAMING_CASE constants (`A_IM2COL_T`).

/** The WGSL scalar types a uniform field may have (all 4 bytes, 4-byte aligned). */
export type UniformScalar = 'u32' | 'i32' | 'f32';

export interface UniformFieldSpec {
  /** WGSL field name (snake_case); the host object's key is its camelCase form. */
  readonly name: string;
  readonly type: UniformScalar;
  /** Placed as a comment after the field in the generated struct. */
  readonly doc?: string;
}

/** `k_chunk` -> `kChunk` (WGSL field name to host object key). */
export type CamelCase<S extends string> = S extends `${infer Head}_${infer Tail}` ? `${Head}${Capitalize<CamelCase<Tail>>}` : S;

/** The host object a layout packs: one number per field, keyed by the field's camelCase name. */
export type UniformValues<Fields extends readonly UniformFieldSpec[]> = {
  [F in Fields[number] as CamelCase<F['name']>]: number;
};

export function camelCase(name: string): string {
  return name.replace(/_([a-zA-Z0-9])/g, (_m, c: string) => c.toUpperCase());
}

/** Size and alignment of each scalar (WGSL's SizeOf / AlignOf). */
const SCALAR_SIZE = 4;
const SCALAR_ALIGN = 4;
/**
 * Uniform blocks are bound with a size that is a multiple of 16 bytes: the uniform address space
 * aligns structs to 16, and a binding smaller than the next 16-byte boundary can fail validation on
 * some backends.
 */
const UNIFORM_BLOCK_ALIGN = 16;

const roundUp = (x: number, to: number) => Math.ceil(x / to) * to;

export interface UniformField {
  readonly name: string;
  readonly key: string;
  readonly type: UniformScalar;
  /** Byte offset in the block (as the WGSL compiler lays the struct out). */
  readonly offset: number;
  readonly doc?: string;
}

/** One uniform block: its WGSL struct and the packing of a named host object into its bytes. */
export class UniformLayout<Fields extends readonly UniformFieldSpec[]> {
  readonly fields: readonly UniformField[];
  /** Bytes of a packed block (the struct's size rounded up to 16). */
  readonly byteSize: number;
  private readonly byKey = new Map<string, UniformField>();

  constructor(
    /** WGSL struct name. */
    readonly structName: string,
    specs: Fields,
  ) {
    let offset = 0;
    this.fields = specs.map((s) => {
      if (!/^[A-Za-z][A-Za-z0-9_]*$/.test(s.name)) throw new Error(`wgsl-nn: uniform field name '${s.name}' of ${structName} is not a WGSL identifier`);
      offset = roundUp(offset, SCALAR_ALIGN);
      const field: UniformField = { name: s.name, key: camelCase(s.name), type: s.type, offset, doc: s.doc };
      offset += SCALAR_SIZE;
      if (this.byKey.has(field.key)) throw new Error(`wgsl-nn: uniform field '${field.key}' of ${structName} is declared twice`);
      this.byKey.set(field.key, field);
      return field;
    });
    this.byteSize = Math.max(UNIFORM_BLOCK_ALIGN, roundUp(offset, UNIFORM_BLOCK_ALIGN));
  }

  /** The WGSL declaration of the struct (fields in order, with their docs as comments). */
  wgsl(): string {
    const width = Math.max(...this.fields.map((f) => f.name.length + f.type.length + 3));
    const lines = this.fields.map((f) => {
      const decl = `${f.name}: ${f.type},`;
      return f.doc ? `  ${decl.padEnd(width)} // ${f.doc}` : `  ${decl}`;
    });
    return `struct ${this.structName} {\n${lines.join('\n')}\n}\n`;
  }

  /**
   * The block's bytes for `values`. Throws on a missing or unknown field, a u32 that is not an integer
   * in [0, 2^32), an i32 that is not an integer in [-2^31, 2^31), or a value that is not a number.
   */
  pack(values: UniformValues<Fields>): Uint8Array {
    const given = values as Record<string, unknown>;
    const unknown = Object.keys(given).filter((k) => !this.byKey.has(k));
    if (unknown.length) throw new Error(`wgsl-nn: ${this.structName} has no field(s) ${unknown.join(', ')}`);
    const buf = new ArrayBuffer(this.byteSize);
    const view = new DataView(buf);
    for (const f of this.fields) {
      const v = given[f.key];
      if (v === undefined) throw new Error(`wgsl-nn: ${this.structName}.${f.key} is missing`);
      if (typeof v !== 'number') throw new Error(`wgsl-nn: ${this.structName}.${f.key} = ${String(v)} is not a number`);
      if (f.type === 'f32') {
        view.setFloat32(f.offset, v, true);
      } else if (f.type === 'u32') {
        if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new Error(`wgsl-nn: ${this.structName}.${f.key} = ${v} is not a u32`);
        view.setUint32(f.offset, v, true);
      } else {
        if (!Number.isInteger(v) || v < -0x80000000 || v > 0x7fffffff) throw new Error(`wgsl-nn: ${this.structName}.${f.key} = ${v} is not an i32`);
        view.setInt32(f.offset, v, true);
      }
    }
    return new Uint8Array(buf);
  }
}

/** `im2colT` -> `IM2COL_T`, `convWT` -> `CONV_W_T`: every capital starts a word. */
export function screamingCase(key: string): string {
  return key.replace(/(?!^)([A-Z])/g, '_$1').toUpperCase();
}

/**
 * WGSL `const` declarations of a TS enum object: `{ plain: 0, im2colT: 4 }` with prefix 'A' gives
 * `const A_PLAIN: u32 = 0u;` and `const A_IM2COL_T: u32 = 4u;`.
 */
export function wgslEnumConstants(prefix: string, values: Readonly<Record<string, number>>): string {
  return Object.entries(values)
    .map(([key, v]) => {
      if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new Error(`wgsl-nn: ${prefix}.${key} = ${v} is not a u32`);
      return `const ${prefix}_${screamingCase(key)}: u32 = ${v}u;\n`;
    })
    .join('');
}
