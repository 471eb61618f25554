"""Networks built on the layers: backbones (EfficientNet-Lite0, VGG-16 with HED weights) and the experiment models."""
