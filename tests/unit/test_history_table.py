"""InvocationHistoryTable: the Glue table over the S3 export (partition projection, no crawler), the Athena workgroup
with encrypted results, and the named queries, as the template carries them."""

from __future__ import annotations

import aws_cdk as cdk
import pytest
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Match, Template

from invocation_history_cdk import InvocationHistoryTable
from invocation_history_cdk.history_table import hive_type, named_query_files, table_definition

from .conftest import ENV, new_app


def synthesized(tmp_path, **props) -> tuple[cdk.Stack, InvocationHistoryTable, Template]:
    app = new_app(tmp_path)
    stack = cdk.Stack(app, "Orders", env=ENV)
    bucket = s3.Bucket.from_bucket_name(stack, "Exports", "orders-exports")
    functions = [lambda_.Function.from_function_name(stack, name, name) for name in ("orders-api", "orders-worker")]
    table = InvocationHistoryTable(stack, "History", bucket=bucket, functions=functions, **props)
    return stack, table, Template.from_stack(stack)


def only(template: Template, type_: str) -> dict:
    resources = template.find_resources(type_)
    assert len(resources) == 1, resources
    return next(iter(resources.values()))["Properties"]


def test_the_table_has_the_exports_columns_and_projects_its_keys(tmp_path):
    # GIVEN two functions exporting to a bucket under a prefix of their own
    _, table, template = synthesized(tmp_path, prefix="history/", projection_start="2026-01-01")
    # THEN the table's columns are the definition the local view uses (names lower-cased, as Athena has them)
    properties = only(template, "AWS::Glue::Table")
    table_input = properties["TableInput"]
    definition = table_definition()
    assert table_input["Name"] == "invocation_history" == table.table_name
    assert [(c["Name"], c["Type"]) for c in table_input["StorageDescriptor"]["Columns"]] == [
        (c["name"].lower(), hive_type(c["type"])) for c in definition["columns"]
    ]
    assert [(c["Name"], c["Type"]) for c in table_input["PartitionKeys"]] == [
        ("function", "string"), ("date", "string"), ("hour", "string")
    ]  # fmt: skip
    # ... and partitions are projected from the keys' layout: no crawler, no partitions to add
    parameters = table_input["Parameters"]
    assert parameters["projection.enabled"] == "true"
    assert parameters["projection.function.values"] == "orders-api,orders-worker"
    assert parameters["projection.date.range"] == "2026-01-01,NOW" and parameters["projection.date.format"] == "yyyy-MM-dd"
    assert parameters["projection.hour.values"].split(",") == [f"{h:02d}" for h in range(24)]
    assert parameters["storage.location.template"] == (
        "s3://orders-exports/history/function=${function}/date=${date}/hour=${hour}/"
    )
    assert table_input["StorageDescriptor"]["Location"] == "s3://orders-exports/history/"
    assert table_input["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"] == "org.openx.data.jsonserde.JsonSerDe"
    assert template.find_resources("AWS::Glue::Crawler") == {}
    assert only(template, "AWS::Glue::Database")["DatabaseInput"]["Name"] == table.database_name == "orders_history"


def test_the_workgroup_writes_encrypted_results_to_a_bucket_of_its_own(tmp_path):
    stack, table, template = synthesized(tmp_path, results_expire_days=3)
    configuration = only(template, "AWS::Athena::WorkGroup")["WorkGroupConfiguration"]
    assert configuration["EnforceWorkGroupConfiguration"] is True, "users cannot send results elsewhere, unencrypted"
    result = configuration["ResultConfiguration"]
    assert result["EncryptionConfiguration"] == {"EncryptionOption": "SSE_S3"}
    results_bucket = stack.get_logical_id(table.results_bucket.node.default_child)
    assert result["OutputLocation"] == {"Fn::Join": ["", ["s3://", {"Ref": results_bucket}, "/"]]}
    template.has_resource_properties("AWS::S3::Bucket", {
        "BucketEncryption": Match.object_like({"ServerSideEncryptionConfiguration": Match.any_value()}),
        "LifecycleConfiguration": {"Rules": [Match.object_like({"ExpirationInDays": 3})]},
        "PublicAccessBlockConfiguration": Match.object_like({"BlockPublicAcls": True, "RestrictPublicBuckets": True}),
    })  # fmt: skip


def test_every_named_query_is_saved_in_the_workgroup_unchanged(tmp_path):
    stack, table, template = synthesized(tmp_path)
    saved = template.find_resources("AWS::Athena::NamedQuery")
    workgroup = {"Ref": stack.get_logical_id(table.workgroup)}
    by_name = {q["Properties"]["Name"]: q["Properties"] for q in saved.values()}
    files = named_query_files()
    assert set(by_name) == set(files) and len(files) == 5
    for name, sql in files.items():
        assert by_name[name]["QueryString"] == sql
        assert by_name[name]["Database"] == table.database_name and by_name[name]["WorkGroup"] == workgroup
        assert 0 < len(by_name[name]["Description"]) <= 1024


@pytest.mark.parametrize(
    ("props", "named"),
    [({"functions": []}, "functions"), ({"prefix": "/abs"}, "export_prefix"), ({"results_expire_days": 0}, "results_expire_days")],
)
def test_bad_props_are_refused_by_name(tmp_path, props, named):
    app = new_app(tmp_path)
    stack = cdk.Stack(app, "Orders", env=ENV)
    bucket = s3.Bucket.from_bucket_name(stack, "Exports", "orders-exports")
    kwargs = {"bucket": bucket, "functions": [lambda_.Function.from_function_name(stack, "Fn", "orders-api")], **props}
    with pytest.raises(ValueError, match=named):
        InvocationHistoryTable(stack, "History", **kwargs)
