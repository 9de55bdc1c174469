output "queue_url" {
  description = "The jobs queue URL: SQS_QUEUE_URL for workers and clients."
  value       = aws_sqs_queue.flowcraft_jobs.url
}

output "queue_arn" {
  value = aws_sqs_queue.flowcraft_jobs.arn
}

output "dlq_url" {
  value = aws_sqs_queue.flowcraft_jobs_dlq.url
}

output "dlq_arn" {
  value = aws_sqs_queue.flowcraft_jobs_dlq.arn
}

output "context_table_name" {
  value = aws_dynamodb_table.flowcraft_contexts.name
}

output "status_table_name" {
  value = aws_dynamodb_table.flowcraft_statuses.name
}

output "coordination_table_name" {
  value = aws_dynamodb_table.flowcraft_coordination.name
}

output "table_arns" {
  value = {
    contexts     = aws_dynamodb_table.flowcraft_contexts.arn
    statuses     = aws_dynamodb_table.flowcraft_statuses.arn
    coordination = aws_dynamodb_table.flowcraft_coordination.arn
  }
}

output "worker_policy_arn" {
  description = "Attach to the role your workers and clients run under."
  value       = aws_iam_policy.flowcraft_worker.arn
}

output "worker_policy_json" {
  value = aws_iam_policy.flowcraft_worker.policy
}
