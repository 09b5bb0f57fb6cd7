"""An independent FIX counterparty on any machine: QuickFIX/J's example Executor, assembled from
Maven Central and run with java (for the FIX adapter's tests and the demo)."""
