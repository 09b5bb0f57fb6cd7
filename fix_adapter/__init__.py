"""A FIX 4.4 OMS adapter on the Kafka contract: `trade-tickets` in, FIX orders out, execution
reports back as `order-events` (docs/fix.md)."""
