"""Tests of fkp.training."""
