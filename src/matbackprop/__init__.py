"""matbackprop: matrix backpropagation for structured layers in PyTorch."""
