"""Measuring and tuning recognition: calibration, evaluation on photos and face sets, model packs,
conversion (TensorFlow.js → ONNX) and quantisation."""
