"""Job queues: SQS (the product) and memory (fast tests, overhead benchmarks)."""
