"""The NIMA model: its torch-free description (spec, devices), the network (nima),
checkpoints, the registry of model files, the runtimes (PyTorch, ONNX Runtime), losses
and the words for reasons."""
