"""An example downstream status consumer: prints execution state changes as they happen."""
