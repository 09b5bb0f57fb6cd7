"""A real Apache Kafka broker on any machine: assembled from Maven Central, run with java."""
