"""Deploys infra/template.yaml on a running MiniStack: the step of
scripts/local-stack that talks to the emulator (boto3, from MiniStack's venv).

    local-stack.py deploy  ENDPOINT STATE_DIR BIN_DIR [Name=Value ...]
    local-stack.py outputs ENDPOINT STATE_DIR
    local-stack.py target  ENDPOINT STATE_DIR NAME URL BASELINE

deploy uploads each function's binary (BIN_DIR/<crate>) as a provided.al2023
zip, makes the database's log group when DatabaseLogGroup names one (RDS
makes it on AWS), deploys the template as one CloudFormation stack (TemplateURL: the file
is over the 51,200-byte TemplateBody limit), then checks the deployed state
against the template and applies, with a printed line each, what MiniStack
ignored. It writes STATE_DIR/outputs.json, which the end-to-end tests read.
"""

import hashlib
import io
import json
import os
import re
import sys
import time
import zipfile

import boto3
import yaml
from botocore.config import Config
from botocore.exceptions import ClientError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEMPLATE = os.path.join(ROOT, "infra", "template.yaml")
STACK = os.environ.get("GRANTWARDEN_STACK_NAME", "grantwarden")
DEPLOY_BUCKET = "grantwarden-local-deploy"
REGION = "us-east-1"

# What a local run needs beside the template's defaults: the binaries are
# built for this machine, scans run every minute, and the revoking roles'
# secrets are the local PostgreSQL's.
LOCAL_PARAMETERS = {
    "Architecture": "x86_64",
    "ScanInterval": "1minute",
}


def say(line):
    print(f"local-stack: {line}", file=sys.stderr, flush=True)


def client(endpoint, service):
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"max_attempts": 3}, s3={"addressing_style": "path"}),
    )


class CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags (!Ref, !Sub, ...) kept as {tag: value}."""


def _tagged(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {suffix: value}


CfnLoader.add_multi_constructor("!", _tagged)


def template():
    with open(TEMPLATE) as f:
        return yaml.load(f, Loader=CfnLoader)


def functions():
    """(directory under functions/, crate name) of every function."""
    out = []
    for d in sorted(os.listdir(os.path.join(ROOT, "functions"))):
        manifest = os.path.join(ROOT, "functions", d, "Cargo.toml")
        if not os.path.exists(manifest):
            continue
        with open(manifest) as f:
            name = re.search(r'^name\s*=\s*"([^"]+)"', f.read(), re.M).group(1)
        out.append((d, name))
    return out


def zipped(path):
    """The binary as `bootstrap` in a zip (stored: the emulator unpacks it at once)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        info = zipfile.ZipInfo("bootstrap", date_time=(2020, 1, 1, 0, 0, 0))
        info.external_attr = 0o755 << 16
        with open(path, "rb") as f:
            z.writestr(info, f.read())
    return buf.getvalue()


def upload_code(s3, bin_dir):
    """Uploads every function's zip; returns {directory: s3 uri}."""
    try:
        s3.create_bucket(Bucket=DEPLOY_BUCKET)
    except ClientError as e:
        if e.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
    uris = {}
    for d, name in functions():
        path = os.path.join(bin_dir, name)
        if not os.path.exists(path):
            sys.exit(f"local-stack: {path} is missing (cargo build --bins)")
        body = zipped(path)
        key = f"code/{name}-{hashlib.sha256(body).hexdigest()[:16]}.zip"
        s3.put_object(Bucket=DEPLOY_BUCKET, Key=key, Body=body)
        uris[d] = f"s3://{DEPLOY_BUCKET}/{key}"
        say(f"{name}: {len(body) / 1048576:.1f} MiB uploaded")
    return uris


def database_log_group(endpoint, overrides):
    """The database's log group (DatabaseLogGroup), made when it is missing, as
    RDS makes it when an instance exports its PostgreSQL log
    (EnableCloudwatchLogsExports): the template subscribes the queries
    function to it and does not create it."""
    group = overrides.get("DatabaseLogGroup")
    if not group:
        return
    try:
        client(endpoint, "logs").create_log_group(logGroupName=group)
        say(f"log group {group} made, as the database's log export would make it")
    except ClientError as e:
        if e.response["Error"]["Code"] != "ResourceAlreadyExistsException":
            raise


def deploy_template(endpoint, uris, overrides):
    s3, cfn = client(endpoint, "s3"), client(endpoint, "cloudformation")
    with open(TEMPLATE) as f:
        text = f.read()
    for d, uri in uris.items():
        text, n = re.subn(rf"CodeUri: \.\./functions/{re.escape(d)}\n", f"CodeUri: {uri}\n", text)
        if n != 1:
            sys.exit(f"local-stack: infra/template.yaml has {n} CodeUri lines for functions/{d}")
    key = f"templates/{hashlib.sha256(text.encode()).hexdigest()[:16]}.yaml"
    s3.put_object(Bucket=DEPLOY_BUCKET, Key=key, Body=text.encode())
    url = f"{endpoint}/{DEPLOY_BUCKET}/{key}"
    params = dict(LOCAL_PARAMETERS)
    params.update(overrides)
    parameters = [{"ParameterKey": k, "ParameterValue": v} for k, v in sorted(params.items())]
    caps = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"]
    try:
        cfn.describe_stacks(StackName=STACK)
        exists = True
    except ClientError:
        exists = False
    started = time.monotonic()
    if exists:
        try:
            cfn.update_stack(StackName=STACK, TemplateURL=url, Parameters=parameters, Capabilities=caps)
        except ClientError as e:
            if "No updates" not in str(e):
                raise
    else:
        cfn.create_stack(StackName=STACK, TemplateURL=url, Parameters=parameters, Capabilities=caps)
    while True:
        stack = cfn.describe_stacks(StackName=STACK)["Stacks"][0]
        status = stack["StackStatus"]
        if status.endswith("_COMPLETE") and "ROLLBACK" not in status:
            break
        if status.endswith("FAILED") or "ROLLBACK" in status:
            events = cfn.describe_stack_events(StackName=STACK)["StackEvents"]
            reasons = [f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason')}" for e in events if "FAILED" in e["ResourceStatus"]]
            sys.exit(f"local-stack: stack {status}\n  " + "\n  ".join(reasons[:10]))
        if time.monotonic() - started > 300:
            sys.exit(f"local-stack: stack still {status} after 300 s")
        time.sleep(0.5)
    count = len(cfn.describe_stack_resources(StackName=STACK)["StackResources"])
    say(f"stack {STACK}: {status}, {count} resources, {time.monotonic() - started:.1f} s")
    return params


def resources(cfn):
    out = {}
    for r in cfn.describe_stack_resources(StackName=STACK)["StackResources"]:
        out[r["LogicalResourceId"]] = r["PhysicalResourceId"]
    return out


def param(value, params, tpl):
    """A template value that is a literal or a {Ref: parameter}."""
    if isinstance(value, dict) and "Ref" in value:
        name = value["Ref"]
        return params.get(name, tpl["Parameters"][name].get("Default"))
    return value


def ensure_deployed_state(endpoint, params):
    """What MiniStack ignores on create, checked on the deployed resources and applied."""
    tpl = template()
    cfn = client(endpoint, "cloudformation")
    res = resources(cfn)
    s3, ddb, lam = client(endpoint, "s3"), client(endpoint, "dynamodb"), client(endpoint, "lambda")
    applied = []

    for logical, spec in tpl["Resources"].items():
        props = spec.get("Properties", {})
        if spec["Type"] == "AWS::S3::Bucket":
            bucket = res[logical]
            lock = props.get("ObjectLockConfiguration")
            if lock:
                want = lock["Rule"]["DefaultRetention"]
                mode, days = param(want["Mode"], params, tpl), int(param(want["Days"], params, tpl))
                try:
                    got = s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]
                except ClientError:
                    got = {}
                rule = got.get("Rule", {}).get("DefaultRetention", {})
                if got.get("ObjectLockEnabled") != "Enabled" or rule.get("Mode") != mode or rule.get("Days") != days:
                    s3.put_object_lock_configuration(
                        Bucket=bucket,
                        ObjectLockConfiguration={
                            "ObjectLockEnabled": "Enabled",
                            "Rule": {"DefaultRetention": {"Mode": mode, "Days": days}},
                        },
                    )
                    applied.append(f"{logical}: Object Lock {mode} {days} days (PutObjectLockConfiguration)")
            rules = props.get("LifecycleConfiguration", {}).get("Rules")
            if rules:
                try:
                    got = s3.get_bucket_lifecycle_configuration(Bucket=bucket).get("Rules", [])
                except ClientError:
                    got = []
                if len(got) != len(rules):
                    s3.put_bucket_lifecycle_configuration(
                        Bucket=bucket, LifecycleConfiguration={"Rules": [lifecycle_rule(r, params, tpl) for r in rules]}
                    )
                    applied.append(f"{logical}: {len(rules)} lifecycle rules (PutBucketLifecycleConfiguration)")
        elif spec["Type"] == "AWS::DynamoDB::Table":
            table = res[logical]
            ttl = props.get("TimeToLiveSpecification")
            if ttl:
                got = ddb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
                if got.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
                    ddb.update_time_to_live(
                        TableName=table, TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True}
                    )
                    applied.append(f"{logical}: TTL on {ttl['AttributeName']} (UpdateTimeToLive)")
            if props.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled"):
                got = ddb.describe_continuous_backups(TableName=table)["ContinuousBackupsDescription"]
                if got.get("PointInTimeRecoveryDescription", {}).get("PointInTimeRecoveryStatus") != "ENABLED":
                    ddb.update_continuous_backups(
                        TableName=table, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
                    )
                    applied.append(f"{logical}: point-in-time recovery (UpdateContinuousBackups)")
        elif spec["Type"] == "AWS::Serverless::Function":
            name = res[logical]
            reserved = props.get("ReservedConcurrentExecutions")
            if reserved is not None:
                want = int(param(reserved, params, tpl))
                got = lam.get_function_concurrency(FunctionName=name).get("ReservedConcurrentExecutions")
                if got != want:
                    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=want)
                    applied.append(f"{logical}: reserved concurrency {want} (PutFunctionConcurrency)")
            for event in props.get("Events", {}).values():
                scaling = event.get("Properties", {}).get("ScalingConfig")
                if event["Type"] != "SQS" or not scaling:
                    continue
                want = int(param(scaling["MaximumConcurrency"], params, tpl))
                queue = res[event["Properties"]["Queue"]["GetAtt"].split(".")[0]]
                for m in lam.list_event_source_mappings(FunctionName=name)["EventSourceMappings"]:
                    if not m["EventSourceArn"].endswith(queue.rsplit("/", 1)[-1]):
                        continue
                    # a parameter reference arrives as a string, which the
                    # emulator's reads show as a number while its SQS poller
                    # fails on it every second (stalling every SQS mapping):
                    # always set it again
                    lam.update_event_source_mapping(UUID=m["UUID"], ScalingConfig={"MaximumConcurrency": want})
                    applied.append(f"{logical}: SQS mapping MaximumConcurrency {want} as a number (UpdateEventSourceMapping)")
        elif spec["Type"] == "AWS::ApiGatewayV2::Stage" and props.get("DefaultRouteSettings"):
            gw = client(endpoint, "apigatewayv2")
            api = res[props["ApiId"]["Ref"]]
            want = props["DefaultRouteSettings"]
            got = gw.get_stage(ApiId=api, StageName=props["StageName"]).get("DefaultRouteSettings", {})
            if any(got.get(k) != v for k, v in want.items()):
                gw.update_stage(ApiId=api, StageName=props["StageName"], DefaultRouteSettings=want)
                applied.append(f"{logical}: default route throttling {want} (UpdateStage)")
    for line in applied:
        say(f"MiniStack ignored it on create, applied after deploy: {line}")
    # SSE on tables and buckets has no observable effect on an emulator and
    # no read-back there: said once, not applied
    say("not checked on the emulator: DynamoDB SSESpecification, bucket encryption (no effect locally)")
    return applied


def lifecycle_rule(rule, params, tpl):
    out = {"ID": rule["Id"], "Status": rule["Status"], "Filter": {"Prefix": rule.get("Prefix", "")}}
    if "ExpirationInDays" in rule:
        out["Expiration"] = {"Days": int(param(rule["ExpirationInDays"], params, tpl))}
    if "NoncurrentVersionExpiration" in rule:
        out["NoncurrentVersionExpiration"] = {"NoncurrentDays": rule["NoncurrentVersionExpiration"]["NoncurrentDays"]}
    if "AbortIncompleteMultipartUpload" in rule:
        out["AbortIncompleteMultipartUpload"] = {
            "DaysAfterInitiation": rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"]
        }
    return out


def configure(endpoint):
    """The configuration the functions read at start, put where they read it
    when it is not there yet (an operator's own is never overwritten): the
    example policy registry and scoring, and an empty target list."""
    cfn, s3 = client(endpoint, "cloudformation"), client(endpoint, "s3")
    bucket = resources(cfn)["DataBucket"]
    files = {
        "config/policy/registry.yaml": os.path.join(ROOT, "infra", "policy.example.yaml"),
        "config/scoring.yaml": os.path.join(ROOT, "infra", "scoring.yaml"),
    }
    for key, path in files.items():
        try:
            s3.head_object(Bucket=bucket, Key=key)
        except ClientError:
            with open(path, "rb") as f:
                s3.put_object(Bucket=bucket, Key=key, Body=f.read())
            say(f"s3://{bucket}/{key} from {os.path.relpath(path, ROOT)}")
    try:
        s3.head_object(Bucket=bucket, Key="config/targets.txt")
    except ClientError:
        s3.put_object(Bucket=bucket, Key="config/targets.txt", Body=b"")
        say(f"s3://{bucket}/config/targets.txt: no targets yet (add one: scripts/local-stack target NAME URL BASELINE)")


def add_target(endpoint, name, url, baseline):
    """A target: its reader's and revoker's secrets (the same local role), its
    baseline, and its line in config/targets.txt."""
    from urllib.parse import unquote, urlparse

    u = urlparse(url)
    secret = json.dumps({
        "engine": "postgres",
        "host": u.hostname or "127.0.0.1",
        "port": u.port or 5432,
        "username": unquote(u.username or "postgres"),
        "password": unquote(u.password or ""),
        "dbname": unquote(u.path.lstrip("/")) or "postgres",
    })
    cfn, s3, sm = client(endpoint, "cloudformation"), client(endpoint, "s3"), client(endpoint, "secretsmanager")
    stack = cfn.describe_stacks(StackName=STACK)["Stacks"][0]
    params = {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}
    tpl = template()
    for prefix in ("SecretPrefix", "RevokerSecretPrefix"):
        name_ = params.get(prefix, tpl["Parameters"][prefix]["Default"]) + name
        try:
            sm.create_secret(Name=name_, SecretString=secret)
        except ClientError:
            sm.put_secret_value(SecretId=name_, SecretString=secret)
    bucket = resources(cfn)["DataBucket"]
    with open(baseline, "rb") as f:
        s3.put_object(Bucket=bucket, Key=f"config/baselines/{name}.yaml", Body=f.read())
    listed = s3.get_object(Bucket=bucket, Key="config/targets.txt")["Body"].read().decode().split()
    if name not in listed:
        s3.put_object(Bucket=bucket, Key="config/targets.txt", Body=("\n".join(listed + [name]) + "\n").encode())
    say(f"target {name}: {u.hostname}:{u.port or 5432}/{u.path.lstrip('/')}, baseline {baseline}; scanned at the next schedule")


def write_outputs(endpoint, state_dir, params):
    cfn = client(endpoint, "cloudformation")
    stack = cfn.describe_stacks(StackName=STACK)["Stacks"][0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    res = resources(cfn)
    api = res["IntakeApi"]
    lam = client(endpoint, "lambda")
    functions = {}
    for logical, spec in template()["Resources"].items():
        if spec["Type"] == "AWS::Serverless::Function":
            conf = lam.get_function_configuration(FunctionName=res[logical])
            functions[logical] = {
                "name": conf["FunctionName"],
                "arn": conf["FunctionArn"],
                "environment": conf.get("Environment", {}).get("Variables", {}),
            }
    out = {
        "endpoint": endpoint,
        "region": REGION,
        "stack": STACK,
        "parameters": params,
        # the emulator serves an HTTP API's $default stage under this path
        "intake_url": f"{endpoint}/_aws/execute-api/{api}",
        "outputs": outputs,
        "resources": res,
        "functions": functions,
    }
    path = os.path.join(state_dir, "outputs.json")
    with open(path + ".tmp", "w") as f:
        json.dump(out, f, indent=2, sort_keys=True)
    os.replace(path + ".tmp", path)
    return out


def main():
    cmd, endpoint, state_dir = sys.argv[1], sys.argv[2], sys.argv[3]
    if cmd == "deploy":
        bin_dir = sys.argv[4]
        overrides = dict(a.split("=", 1) for a in sys.argv[5:])
        uris = upload_code(client(endpoint, "s3"), bin_dir)
        database_log_group(endpoint, overrides)
        params = deploy_template(endpoint, uris, overrides)
        ensure_deployed_state(endpoint, params)
        configure(endpoint)
        out = write_outputs(endpoint, state_dir, params)
    elif cmd == "target":
        add_target(endpoint, sys.argv[4], sys.argv[5], sys.argv[6])
        return
    elif cmd == "outputs":
        with open(os.path.join(state_dir, "outputs.json")) as f:
            out = json.load(f)
    else:
        sys.exit(f"local-stack.py: unknown command {cmd}")
    print(json.dumps({"intake_url": out["intake_url"], **out["outputs"]}, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
