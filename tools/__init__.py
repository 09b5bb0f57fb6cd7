"""Helpers for integrators: publish a proposal as the upstream system would, sign a webhook body."""
