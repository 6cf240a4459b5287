"""The YOLOv5 family (ultralytics): ``train`` (``facewear train yolo``), ``detector`` (the ``.pt`` and ONNX
detectors behind the ``Detector`` interface) and ``export`` (ONNX fp32 / fp16 / int8 and the agreement check)."""
