"""The S3 export's grant: what a function's role needs for the extension to write its history to a bucket."""

from __future__ import annotations

from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3

from .settings import DEFAULT_EXPORT_PREFIX, check_export_prefix


def grant_export(grantee: iam.IGrantable, bucket: s3.IBucket, prefix: str = DEFAULT_EXPORT_PREFIX) -> iam.Grant:
    """Allow ``grantee`` what the export needs: ``s3:PutObject`` on ``<bucket>/<prefix>*`` and nothing else in S3 (the
    extension writes new objects only: no multipart upload, no ACL, no read); with a bucket encrypted by a customer
    managed KMS key, also ``kms:GenerateDataKey`` on that key, only through S3 in the bucket's region.

    Only the grantee's policy changes: a bucket or key of another account must allow the role in its own policy.
    """
    check_export_prefix(prefix)
    grant = iam.Grant.add_to_principal(
        grantee=grantee, actions=["s3:PutObject"], resource_arns=[bucket.arn_for_objects(prefix + "*")]
    )
    key = bucket.encryption_key
    if key is not None:
        # S3 asks KMS for a data key for each object it encrypts; nothing else calls the key for the export.
        grant = grant.combine(iam.Grant.add_to_principal(
            grantee=grantee, actions=["kms:GenerateDataKey"], resource_arns=[key.key_arn],
            conditions={"StringEquals": {"kms:ViaService": f"s3.{bucket.env.region}.amazonaws.com"}},
        ))
    return grant
