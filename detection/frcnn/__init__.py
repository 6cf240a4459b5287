"""The Faster R-CNN family (torchvision, MobileNetV2 + FPN): ``model`` (build, checkpoints, pre/post-processing),
``train`` (``facewear train frcnn``), ``detector`` (the checkpoint and ONNX detectors behind the ``Detector``
interface) and ``export`` (ONNX fp32 / fp16, the float16 checkpoint, the agreement check)."""
