"""torch -> ONNX export of a model folder (onnx_export, needs torch) and the ONNX Runtime engine that serves it
(engine, numpy + onnxruntime only). Import the submodule you need; this package file imports nothing."""
