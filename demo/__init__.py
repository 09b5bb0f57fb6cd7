"""The README's main command: a run of the service's flow on an embedded local broker."""
