"""Shared test and benchmark helpers: builders, harnesses that run real processes against a
real broker, seeded streams and their reference folds. Not part of the shipped packages."""
