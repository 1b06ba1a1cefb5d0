"""The S3 export as a table Athena queries: a Glue database and table with partition projection (no crawler), an
Athena workgroup whose results go, encrypted, to a bucket of its own, and the named queries of ``queries/``.

The table's columns are ``queries/table.json``, the one definition the local DuckDB view (tools/history_query.py)
uses too; the named queries are the ``queries/*.sql`` files, unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Sequence

from aws_cdk import Duration, Fn, RemovalPolicy, Stack
from aws_cdk import aws_athena as athena
from aws_cdk import aws_glue as glue
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from constructs import Construct

from .settings import DEFAULT_EXPORT_PREFIX, check_export_prefix

try:  # acknowledgments of validation rules (cdk-nag reads them) came with later aws-cdk-lib 2.x releases
    from aws_cdk import Acknowledgment, Validations
except ImportError:  # an older aws-cdk-lib (the package supports 2.100.0 on): nothing to acknowledge with
    Acknowledgment = Validations = None

QUERIES_DIR = Path(__file__).resolve().parent / "queries"
#: The first day partition projection offers; Athena reads no partition before it.
DEFAULT_PROJECTION_START = "2025-01-01"
#: Query results are kept this long, then deleted.
DEFAULT_RESULTS_EXPIRE_DAYS = 7
#: Every query of the workgroup stops after scanning this many bytes (Athena's per-query data usage control).
DEFAULT_BYTES_SCANNED_CUTOFF = 10 * 1024**3
HOURS = ",".join(f"{h:02d}" for h in range(24))


def table_definition() -> dict:
    """``queries/table.json``: the table's name, columns and partition keys, types as Hive names them."""
    return json.loads((QUERIES_DIR / "table.json").read_text())


def hive_type(column_type: str | dict) -> str:
    """A column's Glue (Hive) type, names lower-cased as Athena and the OpenX JSON SerDe match them."""
    if isinstance(column_type, str):
        return column_type
    fields = ",".join(f"{name.lower()}:{hive_type(t)}" for name, t in column_type["struct"].items())
    return f"struct<{fields}>"


def named_query_files() -> dict[str, str]:
    """The named queries, by name (the file's stem), in name order."""
    return {path.stem: path.read_text() for path in sorted(QUERIES_DIR.glob("*.sql"))}


def query_description(sql: str) -> str:
    """The query's leading comment, as one line (at most Athena's 1024 characters)."""
    lines = [line[2:].strip() for line in sql.splitlines() if line.startswith("--")]
    text = " ".join(lines)
    return text[:1024]


def glue_name(text: str) -> str:
    """A Glue database name made of ``text``: lower-case letters, digits and underscores."""
    name = "".join(c if c.isalnum() else "_" for c in text.lower()).strip("_")
    return name[:255] or "invocation_history"


#: Why the results bucket has no access logs (cdk-nag's AwsSolutions-S1).
RESULTS_ACCESS_LOGS_REASON = (
    "the results bucket holds only Athena's query results for this workgroup, written by Athena for whoever "
    "runs a query and deleted after days; an access-log bucket would need the same exception itself, and Athena "
    "already records every query (the workgroup's history and CloudTrail)"
)


class InvocationHistoryTable(Construct):
    """The export's objects as the Athena table ``invocation_history`` with the named queries.

    Example::

        InvocationHistoryTable(self, "History", bucket=export_bucket, functions=[api_function])

    Then, in the Athena console, pick the workgroup (``workgroup_name``) and run a saved query.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        bucket: s3.IBucket,
        functions: Sequence[lambda_.IFunction],
        prefix: str = DEFAULT_EXPORT_PREFIX,
        database_name: Optional[str] = None,
        workgroup_name: Optional[str] = None,
        projection_start: str = DEFAULT_PROJECTION_START,
        results_expire_days: int = DEFAULT_RESULTS_EXPIRE_DAYS,
        bytes_scanned_cutoff: int = DEFAULT_BYTES_SCANNED_CUTOFF,
    ) -> None:
        """
        :param bucket: the bucket the functions export to (``ExtensionSettings(export_bucket=...)``).
        :param functions: the functions whose history the table reads: partition projection enumerates their names
            (the ``function=`` of the keys). Objects of other functions under the prefix are not read.
        :param prefix: the export's key prefix. Default: ``invocation-history/``, the extension's default.
        :param database_name: Default: the stack's name and this construct's id, as a Glue name.
        :param workgroup_name: Default: the stack's name and this construct's id.
        :param projection_start: the first day (``YYYY-MM-DD``) partition projection offers. Default: 2025-01-01.
        :param results_expire_days: days after which query results are deleted. Default: 7.
        :param bytes_scanned_cutoff: bytes a query may scan before Athena stops it. Default: 10 GiB.
        """
        super().__init__(scope, id)
        check_export_prefix(prefix)
        if not functions:
            raise ValueError(f"InvocationHistoryTable '{id}': functions is empty: pass the functions that export")
        if not 1 <= results_expire_days <= 36_500:
            raise ValueError(f"InvocationHistoryTable '{id}': results_expire_days={results_expire_days}: pass 1 to 36500")
        if not bytes_scanned_cutoff >= 10 * 1024**2:
            raise ValueError(
                f"InvocationHistoryTable '{id}': bytes_scanned_cutoff={bytes_scanned_cutoff}: Athena's least is 10 MiB"
            )
        stack = Stack.of(self)
        definition = table_definition()
        self.table_name: str = definition["name"]
        self.database_name: str = database_name or glue_name(f"{stack.stack_name}_{id}")
        self.workgroup_name: str = workgroup_name or f"{stack.stack_name}-{id}"

        self.database = glue.CfnDatabase(
            self, "Database", catalog_id=stack.account,
            database_input=glue.CfnDatabase.DatabaseInputProperty(
                name=self.database_name, description="Invocation History: the S3 export's objects"
            ),
        )  # fmt: skip
        location = f"s3://{bucket.bucket_name}/{prefix}"
        self.table = glue.CfnTable(
            self, "Table", catalog_id=stack.account, database_name=self.database_name,
            table_input=glue.CfnTable.TableInputProperty(
                name=self.table_name,
                description=definition["description"],
                table_type="EXTERNAL_TABLE",
                parameters={
                    "classification": "json",
                    "compressionType": "gzip",
                    # Partition projection: Athena computes the partitions from these rules, no crawler, no
                    # MSCK REPAIR; the keys are <prefix>function=<name>/date=YYYY-MM-DD/hour=HH/.
                    "projection.enabled": "true",
                    "projection.function.type": "enum",
                    "projection.function.values": Fn.join(",", [fn.function_name for fn in functions]),
                    "projection.date.type": "date",
                    "projection.date.format": "yyyy-MM-dd",
                    "projection.date.range": f"{projection_start},NOW",
                    "projection.date.interval": "1",
                    "projection.date.interval.unit": "DAYS",
                    "projection.hour.type": "enum",
                    "projection.hour.values": HOURS,
                    "storage.location.template": location + "function=${function}/date=${date}/hour=${hour}/",
                },
                partition_keys=[
                    glue.CfnTable.ColumnProperty(name=p["name"], type=hive_type(p["type"]))
                    for p in definition["partitionKeys"]
                ],
                storage_descriptor=glue.CfnTable.StorageDescriptorProperty(
                    location=location,
                    input_format="org.apache.hadoop.mapred.TextInputFormat",
                    output_format="org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat",
                    serde_info=glue.CfnTable.SerdeInfoProperty(
                        serialization_library="org.openx.data.jsonserde.JsonSerDe",
                        # A line that is not JSON (never written by the extension) is NULLs, not a failed query.
                        parameters={"ignore.malformed.json": "true", "case.insensitive": "true"},
                    ),
                    columns=[
                        glue.CfnTable.ColumnProperty(name=c["name"].lower(), type=hive_type(c["type"]))
                        for c in definition["columns"]
                    ],
                ),
            ),
        )  # fmt: skip
        self.table.add_resource_dependency(self.database)

        self.results_bucket = s3.Bucket(
            self, "Results",
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            minimum_tls_version=1.2,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[s3.LifecycleRule(id="ExpireResults", expiration=Duration.days(results_expire_days))],
            removal_policy=RemovalPolicy.RETAIN,
        )  # fmt: skip
        if Validations is not None:
            acknowledgment = Acknowledgment(id="AwsSolutions-S1", reason=RESULTS_ACCESS_LOGS_REASON)
            Validations.of(self.results_bucket).acknowledge(acknowledgment)
        self.workgroup = athena.CfnWorkGroup(
            self, "WorkGroup", name=self.workgroup_name,
            description="Invocation History: the named queries over the S3 export",
            recursive_delete_option=True,  # its saved queries and history go with the stack
            work_group_configuration=athena.CfnWorkGroup.WorkGroupConfigurationProperty(
                enforce_work_group_configuration=True,
                publish_cloud_watch_metrics_enabled=True,
                bytes_scanned_cutoff_per_query=bytes_scanned_cutoff,
                result_configuration=athena.CfnWorkGroup.ResultConfigurationProperty(
                    output_location=f"s3://{self.results_bucket.bucket_name}/",
                    encryption_configuration=athena.CfnWorkGroup.EncryptionConfigurationProperty(
                        encryption_option="SSE_S3"
                    ),
                ),
            ),
        )  # fmt: skip
        self.named_queries: dict[str, athena.CfnNamedQuery] = {}
        for name, sql in named_query_files().items():
            query = athena.CfnNamedQuery(
                self, f"Query-{name}", name=name, database=self.database_name, query_string=sql,
                description=query_description(sql), work_group=self.workgroup.ref,
            )  # fmt: skip
            query.add_resource_dependency(self.database)
            self.named_queries[name] = query

