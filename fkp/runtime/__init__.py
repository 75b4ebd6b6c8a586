"""Using a model: face detection, framing, keypoints, refinement and video tracking, with NumPy,
OpenCV and onnxruntime only (PyTorch only for a checkpoint or runtime="torch").

May import: fkp.geometry, fkp.landmarks, fkp.errors, fkp.plain; never the training stack
(torch, Lightning, Hydra, albumentations, matplotlib) at module level.
"""
