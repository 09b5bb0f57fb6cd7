"""Avro wire contracts of the execution integration service (see docs/wire.md).

serde: single-object encode/decode (any released writer version); formats: the framing per topic
(Confluent Schema Registry framing when SCHEMA_REGISTRY_URL is set); history: released schema versions;
compatibility: the compatibility gate; topics: topic kinds, keys; errors: DecodeError/EncodeError;
schemas: loads schemas/*.avsc; decimals: the decimal-string logical type; explain: encode diagnostics.
"""
