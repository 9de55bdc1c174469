# The AWS resources flowcraft-sqs runs on: the seed document's queue and three tables (same
# names, same keys), plus what production needs: a dead-letter queue with a redrive policy,
# encryption at rest, TTL on the coordination table, and the IAM policy for workers and
# clients.
#
#   cd deploy/terraform && terraform init && AWS_REGION=us-east-1 terraform apply
#   export SQS_QUEUE_URL=$(terraform output -raw queue_url)
#
# No provider block: the region and credentials come from the environment, as for the
# worker (AWS_REGION, the credentials chain), and the directory can also be used as a
# module (`module "flowcraft" { source = "./deploy/terraform" }`).

terraform {
  required_version = ">= 1.3"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.0"
    }
  }
}

# --- SQS ---------------------------------------------------------------------------------

# Jobs that failed max_receive_count times land here, kept as long as SQS allows (14 days)
# for inspection and redrive. It must outlive the source queue's retention: a message keeps
# its original enqueue time when it moves to the DLQ.
resource "aws_sqs_queue" "flowcraft_jobs_dlq" {
  name                      = var.dlq_name
  message_retention_seconds = 1209600
  sqs_managed_sse_enabled   = true
  tags                      = var.tags
}

resource "aws_sqs_queue" "flowcraft_jobs" {
  name                       = var.queue_name
  visibility_timeout_seconds = var.visibility_timeout_seconds
  message_retention_seconds  = var.message_retention_seconds
  # SSE-SQS: encrypted at rest with keys SQS owns, so workers need no KMS permission.
  sqs_managed_sse_enabled = true
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.flowcraft_jobs_dlq.arn
    maxReceiveCount     = var.max_receive_count
  })
  tags = var.tags
}

# Only the jobs queue may use the DLQ as its dead-letter queue.
resource "aws_sqs_queue_redrive_allow_policy" "flowcraft_jobs_dlq" {
  queue_url = aws_sqs_queue.flowcraft_jobs_dlq.id
  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.flowcraft_jobs.arn]
  })
}

# --- DynamoDB ----------------------------------------------------------------------------
# server_side_encryption enabled without a key ARN: the AWS managed key (aws/dynamodb),
# whose key policy lets DynamoDB use it for the account, so workers need no KMS permission.

resource "aws_dynamodb_table" "flowcraft_contexts" {
  name                        = var.context_table_name
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "runId"
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = "runId"
    type = "S"
  }

  server_side_encryption {
    enabled = true
  }

  point_in_time_recovery {
    enabled = var.point_in_time_recovery
  }

  tags = var.tags
}

resource "aws_dynamodb_table" "flowcraft_statuses" {
  name                        = var.status_table_name
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "runId"
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = "runId"
    type = "S"
  }

  server_side_encryption {
    enabled = true
  }

  point_in_time_recovery {
    enabled = var.point_in_time_recovery
  }

  tags = var.tags
}

resource "aws_dynamodb_table" "flowcraft_coordination" {
  name                        = var.coordination_table_name
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = var.coordination_key
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = var.coordination_key
    type = "S"
  }

  # Locks and counters carry an expiry time (epoch seconds) in `ttl`; DynamoDB deletes them.
  ttl {
    attribute_name = "ttl"
    enabled        = true
  }

  server_side_encryption {
    enabled = true
  }

  point_in_time_recovery {
    enabled = var.point_in_time_recovery
  }

  tags = var.tags
}

# --- IAM ---------------------------------------------------------------------------------
# Exactly the actions the worker, the client and the reconciler call, on exactly these
# resources; tests/unit/test_iam_policy.py derives the list from the package's code and
# fails when the two differ. The DLQ gets no grant: SQS moves messages there itself, and
# redriving them is an operator's job, done with the operator's credentials.

resource "aws_iam_policy" "flowcraft_worker" {
  name        = var.policy_name
  description = "flowcraft-sqs workers and clients: the job queue and the three tables"
  policy = templatefile("${path.module}/../iam-policy.json", {
    queue_arn              = aws_sqs_queue.flowcraft_jobs.arn
    context_table_arn      = aws_dynamodb_table.flowcraft_contexts.arn
    status_table_arn       = aws_dynamodb_table.flowcraft_statuses.arn
    coordination_table_arn = aws_dynamodb_table.flowcraft_coordination.arn
  })
  tags = var.tags
}

# E.g. the role of the EC2 instance profile the workers run under.
resource "aws_iam_role_policy_attachment" "flowcraft_worker" {
  for_each   = toset(var.attach_to_role_names)
  role       = each.value
  policy_arn = aws_iam_policy.flowcraft_worker.arn
}
