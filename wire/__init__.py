"""Avro wire contracts of the execution integration service (see docs/wire.md).

serde: single-object encode/decode; topics: topic kinds, keys; errors: DecodeError/EncodeError;
schemas: loads schemas/*.avsc; decimals: the decimal-string logical type; explain: encode diagnostics.
"""
