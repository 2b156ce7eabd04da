"""LogBERT: the torch module, training, ONNX export, the ONNX Runtime scorer and the detection rule.

Only `logbert.py`, `train.py` and `export.py` import torch; serving imports the rest."""
