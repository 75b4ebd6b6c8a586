"""Measuring models: box protocols and summaries (`protocols`), NME/FR/AUC metrics (`metrics`),
the robustness suite (`robustness`) and dlib side by side (`dlib_baseline`).

May import: fkp.runtime, fkp.geometry, fkp.landmarks, fkp.viz, torch (metrics), matplotlib
(figures, through matplotlib.figure only); never Hydra.
"""
