"""Tests of fkp.models."""
