"""The model zoo: PyTorch nets (``models.nets``) and their training/export script
(``python -m models.train NAME``). Needs the ``models`` extra (torch, onnxscript)."""
