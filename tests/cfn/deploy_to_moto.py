"""Deploys template.yaml to the local emulator (moto server mode) the way `sam deploy` would.

moto's CloudFormation ignores the Serverless transform, so the template is translated first with
aws-sam-translator (its managed-policy loader reads moto's IAM), the functions' code is "packaged"
as a placeholder zip in moto's S3 (moto never runs it), and the stack is created from the
translated body.

moto cannot create every resource type of the template. Those resources are taken out before the
stack is created and every reference to them is replaced by a marker string
`EMULATOR-SKIPPED:<LogicalId>[.<Attribute>]`, so the caller can still check that an environment
variable or an output points at the right resource. The JSON printed on stdout lists them.

Usage: python deploy_to_moto.py TEMPLATE ENDPOINT STACK [Key=Value ...]
Prints one JSON document: status, skipped resources, physical ids, functions with their deployed
environment, outputs and the translated template's parameter defaults.
"""

import io
import json
import os
import re
import sys
import time
import zipfile

import boto3
from moto.cloudformation.parsing import get_model_map
from samcli.yamlhelper import yaml_parse
from samtranslator.translator.managed_policy_translator import ManagedPolicyLoader
from samtranslator.translator.transform import transform

MARK = "EMULATOR-SKIPPED:"


def marker(logical_id, attr=None):
    return MARK + logical_id + ("." + attr if attr else "")


def replace_refs(node, skipped):
    """Rewrites Ref / GetAtt / Sub / DependsOn that name a skipped resource."""
    if isinstance(node, list):
        return [replace_refs(n, skipped) for n in node]
    if not isinstance(node, dict):
        return node
    if len(node) == 1:
        (key, value), = node.items()
        if key == "Ref" and value in skipped:
            return marker(value)
        if key == "Fn::GetAtt":
            target, attr = value if isinstance(value, list) else value.split(".", 1)
            if target in skipped:
                return marker(target, attr)
        if key == "Fn::Sub":
            text, variables = (value, {}) if isinstance(value, str) else (value[0], value[1])

            def sub(match):
                name = match.group(1)
                logical, _, attr = name.partition(".")
                if logical in skipped and name not in variables:
                    return marker(logical, attr or None)
                return match.group(0)

            text = re.sub(r"\$\{([A-Za-z0-9_.:]+)\}", sub, text)
            variables = replace_refs(variables, skipped)
            return {"Fn::Sub": [text, variables] if variables else text}
    out = {}
    for key, value in node.items():
        if key == "DependsOn":
            deps = [value] if isinstance(value, str) else value
            deps = [d for d in deps if d not in skipped]
            if deps:
                out[key] = deps
            continue
        out[key] = replace_refs(value, skipped)
    return out


def main():
    template_path, endpoint, stack = sys.argv[1:4]
    params = dict(arg.split("=", 1) for arg in sys.argv[4:])
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    kw = dict(endpoint_url=endpoint, region_name=os.environ["AWS_DEFAULT_REGION"],
              aws_access_key_id="testing", aws_secret_access_key="testing")

    with open(template_path) as f:
        sam = yaml_parse(f.read())

    # `sam package`: code goes to the artifacts bucket, CodeUri points at it.
    s3 = boto3.client("s3", **kw)
    bucket = stack.lower() + "-artifacts"
    s3.create_bucket(Bucket=bucket)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("bootstrap", "#!/bin/sh\nexit 1\n")
    s3.put_object(Bucket=bucket, Key="code.zip", Body=buf.getvalue())
    sam.setdefault("Globals", {}).setdefault("Function", {})["CodeUri"] = f"s3://{bucket}/code.zip"
    for res in sam["Resources"].values():
        if res.get("Type") == "AWS::Serverless::Function":
            res.setdefault("Properties", {}).pop("CodeUri", None)

    binaries = {
        k: ((v.get("Metadata") or {}).get("BuildProperties") or {}).get("Binary")
        for k, v in sam["Resources"].items()
        if v.get("Type") == "AWS::Serverless::Function"
    }
    translated = transform(sam, params, ManagedPolicyLoader(boto3.client("iam", **kw)))

    supported = get_model_map()
    resources = translated["Resources"]
    skipped = {k: v["Type"] for k, v in resources.items() if v["Type"] not in supported}
    skipped_properties = {k: resources.pop(k).get("Properties", {}) for k in skipped}
    translated = replace_refs(translated, skipped)

    cfn = boto3.client("cloudformation", **kw)
    cfn.create_stack(
        StackName=stack,
        TemplateBody=json.dumps(translated),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()],
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
    )
    deadline = time.time() + 120
    while True:
        st = cfn.describe_stacks(StackName=stack)["Stacks"][0]
        if not st["StackStatus"].endswith("_IN_PROGRESS") or time.time() > deadline:
            break
        time.sleep(0.5)
    failures = [
        {"id": e["LogicalResourceId"], "reason": e.get("ResourceStatusReason")}
        for e in cfn.describe_stack_events(StackName=stack)["StackEvents"]
        if e["ResourceStatus"].endswith("FAILED")
    ]
    physical = {}
    for page in cfn.get_paginator("list_stack_resources").paginate(StackName=stack):
        for r in page["StackResourceSummaries"]:
            physical[r["LogicalResourceId"]] = {"type": r["ResourceType"], "id": r.get("PhysicalResourceId")}
    lam = boto3.client("lambda", **kw)
    functions = {}
    for logical, r in physical.items():
        if r["type"] != "AWS::Lambda::Function":
            continue
        conf = lam.get_function_configuration(FunctionName=r["id"])
        functions[logical] = {
            "name": conf["FunctionName"],
            "env": (conf.get("Environment") or {}).get("Variables", {}),
            "memory": conf.get("MemorySize"),
            "timeout": conf.get("Timeout"),
            "architectures": conf.get("Architectures"),
        }
    print(json.dumps({
        "status": st["StackStatus"],
        "reason": st.get("StackStatusReason"),
        "failures": failures,
        "skipped": skipped,
        "skipped_properties": skipped_properties,
        "binaries": binaries,
        "translated_types": sorted({v["Type"] for v in resources.values()}),
        "physical": physical,
        "functions": functions,
        "outputs": {o["OutputKey"]: o.get("OutputValue") for o in st.get("Outputs", [])},
    }))


if __name__ == "__main__":
    main()
