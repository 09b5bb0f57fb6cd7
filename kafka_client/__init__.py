"""Kafka client settings shared by every process of the service (processor, gateway, tools)."""
