// Placed first (`//! import enable_subgroups` as a shader's first line) by shaders that use subgroup
// builtins; such shaders compile only on devices created with the 'subgroups' feature.
enable subgroups;
