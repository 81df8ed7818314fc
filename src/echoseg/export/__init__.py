"""Export trained models to ONNX and OpenVINO (fp32 or int8), with metadata and self-checks."""
