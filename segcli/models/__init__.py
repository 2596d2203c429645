"""Models: the registry (a leaf the models register into), weights, devices, precision, blocks."""
