"""Tests of fkp.cli."""
