"""Image classification on cluttered real digits with CNN attention (SE, CBAM, non-local,
residual attention) and a small ViT; attention maps scored against the digit's box."""
