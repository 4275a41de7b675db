"""The checkpoint store's AWS adapters (boto3 clients injected): S3 objects and the DynamoDB table."""
