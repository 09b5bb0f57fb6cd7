"""A mock OMS speaking the Kafka contract a real OMS adapter would: the RFC's
MockExecutionProvider as a separate process, for the demo and end-to-end tests."""
