// The activation codes of every fused epilogue and of the activation kernels, declared once: the WGSL
// constants ACT_NONE, ACT_RELU, ... are generated from ACTIVATION_CODE (generated:activation_codes,
// imported by lib/common.wgsl, so by every shader that imports common). The registry imports this
// module, so the constants are defined whenever any kernel module is loaded.
import { defineGeneratedLib } from '../gpu/shaders.js';
import { wgslEnumConstants } from '../gpu/uniform-layout.js';

export type Activation = 'none' | 'relu' | 'leakyRelu' | 'sigmoid' | 'tanh';

/** WGSL ACT_<NAME> (screaming case of the key). */
export const ACTIVATION_CODE: Readonly<Record<Activation, number>> = { none: 0, relu: 1, leakyRelu: 2, sigmoid: 3, tanh: 4 };

defineGeneratedLib('activation_codes', 'src/kernels/activation-codes.ts', wgslEnumConstants('ACT', ACTIVATION_CODE));
