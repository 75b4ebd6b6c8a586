"""Tests of fkp.data."""
