"""Trained policies shipped with mlsysgym: ONNX files, each with a JSON card (training data,
seeds, CPU time, the target fingerprint it was trained on). ``malloc_gnn.onnx``: the
mallocGame graph-network policy of :mod:`mlsysgym.agents.learned_malloc`."""
