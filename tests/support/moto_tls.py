"""moto enforces a bucket policy's statements but not their conditions
(moto 5.2, FakeBucket.put_bucket_policy's note): the TLS-only statement that
`make aws-setup` puts on the bucket (a Deny when aws:SecureTransport is
false) would refuse every request. Every request to moto stands for one
made over HTTPS, as the app's are: such a statement never applies."""

import json

TLS_ONLY_CONDITION = {"Bool": {"aws:SecureTransport": "false"}}


def permission_over_tls(bucket, action: str, resource: str):
    """FakeBucket.get_permission, for a request made over TLS."""
    from moto.iam.access_control import IAMPolicy, PermissionResult

    if bucket.policy is None:
        return PermissionResult.NEUTRAL
    policy = json.loads(bucket.policy)
    statements = policy.get("Statement", [])
    statements = [statements] if isinstance(statements, dict) else statements
    applying = [statement for statement in statements if statement.get("Condition") != TLS_ONLY_CONDITION]
    if not applying:
        return PermissionResult.NEUTRAL
    return IAMPolicy(json.dumps({**policy, "Statement": applying})).is_action_permitted(action, resource)
