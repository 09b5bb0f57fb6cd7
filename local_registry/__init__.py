"""A real Confluent-compatible schema registry on any machine: Apicurio Registry 2.4.2 (in-memory
storage) built from Maven Central, run with java on a free loopback port."""
