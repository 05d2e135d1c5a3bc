"""Deployment: ONNX export checked in onnxruntime, and upscaling of image files."""
