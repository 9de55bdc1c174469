"""Run state storage: DynamoDB (the product) and memory (fast tests, overhead benchmarks)."""
