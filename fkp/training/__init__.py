"""Training with Lightning: the LightningModule (`module`), callbacks that keep every record
(`callbacks`), checkpoints read as data and resume checks (`checkpoints`), run trackers
(`trackers`), export to ONNX, TorchScript and slim checkpoints (`export`), and the table
and figure comparing runs (`report`).

May import: fkp.models, fkp.data, fkp.evaluation.metrics, fkp.runtime, and the leaf modules.
"""
