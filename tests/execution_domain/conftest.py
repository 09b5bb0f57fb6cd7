"""Shared builders and strategies of the domain tests live in `testkit.domain`."""
