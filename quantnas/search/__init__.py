"""Differentiable quantization-aware architecture search."""
