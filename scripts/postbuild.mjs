// copies nothing yet: shaders are read from the package's shaders/ folder at run time

