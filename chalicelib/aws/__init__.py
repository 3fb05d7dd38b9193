"""The AWS wiring: Rekognition, DynamoDB and S3 through boto3."""
