"""Tests of fkp.runtime."""
