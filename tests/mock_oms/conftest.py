"""The mock OMS's tests drive a real processor and gateway (`testkit.processor`, `testkit.gateway`)."""
