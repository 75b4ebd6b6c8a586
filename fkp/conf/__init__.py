"""Hydra configs, shipped inside the package (a module, so Hydra finds them from a wheel)."""
