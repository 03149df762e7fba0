"""Evaluations of one layer on any data file of the documented formats."""
