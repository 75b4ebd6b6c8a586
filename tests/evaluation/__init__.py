"""Tests of fkp.evaluation."""
