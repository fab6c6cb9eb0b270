"""The three functions of the route table: Python 3.12+ on arm64, in the VPC, with the dependency layer,
SnapStart, and their settings in the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra_cdk.constants import FUNCTIONS_DIR
from infra_cdk.functions import function_logical_id
from player_sessions.routes import COUNTRY_STARTS, FUNCTIONS, INGEST_EVENTS, PLAYER_DATA, LambdaFunction
from tests.infra.conftest import Synthesized
from tests.infra.intrinsics import render

FUNCTION_IDS = {
    "ingest_events": "IngestEventsFunction",
    "player_sessions": "PlayerSessionsFunction",
    "country_starts": "CountryStartsFunction",
    "player_data": "PlayerDataFunction",
}


def function_properties(synthesized: Synthesized, function: LambdaFunction) -> dict:
    return synthesized.template_json["Resources"][function_logical_id(function)]["Properties"]


def test_each_function_of_the_route_table_has_a_stable_logical_id(synthesized: Synthesized) -> None:
    # When
    functions = synthesized.resources("AWS::Lambda::Function")

    # Then: the ids `sam local invoke` takes, one per function folder
    assert {function.name: function_logical_id(function) for function in FUNCTIONS} == FUNCTION_IDS
    assert set(FUNCTION_IDS.values()) <= set(functions)


@pytest.mark.parametrize("function", FUNCTIONS, ids=lambda f: f.name)
def test_function_runs_python_3_12_or_newer_on_arm64(
    synthesized: Synthesized, function: LambdaFunction
) -> None:
    # When
    properties = function_properties(synthesized, function)

    # Then
    assert properties["Runtime"] == "python3.14"
    assert tuple(int(part) for part in properties["Runtime"].removeprefix("python").split(".")) >= (3, 12)
    assert properties["Architectures"] == ["arm64"]
    assert properties["Handler"] == "handler.lambda_handler"
    assert properties["MemorySize"] == 1024
    # The privacy function's erasure of a heavy player works until just before API Gateway's 29 s.
    assert properties["Timeout"] == (27 if function == PLAYER_DATA else 10)
    assert properties["TracingConfig"] == {"Mode": "Active"}


@pytest.mark.parametrize("function", FUNCTIONS, ids=lambda f: f.name)
def test_function_code_is_its_folder_and_the_shared_code_comes_from_the_layer(
    synthesized: Synthesized, function: LambdaFunction
) -> None:
    # Given
    resource = synthesized.template_json["Resources"][function_logical_id(function)]
    layers = synthesized.resources("AWS::Lambda::LayerVersion")

    # When
    code_dir = synthesized.assembly_dir / resource["Metadata"]["aws:asset:path"]

    # Then
    assert sorted(p.name for p in code_dir.iterdir()) == sorted(
        p.name for p in (FUNCTIONS_DIR / function.name).iterdir() if p.name != "__pycache__"
    )
    assert resource["Properties"]["Layers"] == [{"Ref": layer_id} for layer_id in layers]


def test_the_layer_is_for_the_functions_runtime_and_architecture(synthesized: Synthesized) -> None:
    # When
    (layer,) = synthesized.resources("AWS::Lambda::LayerVersion").values()

    # Then
    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.14"]
    assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]
    shipped = Path(synthesized.assembly_dir / layer["Metadata"]["aws:asset:path"])
    assert (shipped / "python" / "player_sessions" / "settings.py").is_file()
    assert (shipped / "python" / "cassandra" / "cluster.py").is_file()


@pytest.mark.parametrize("function", FUNCTIONS, ids=lambda f: f.name)
def test_function_runs_in_the_private_subnets_behind_the_functions_security_group(
    synthesized: Synthesized, function: LambdaFunction
) -> None:
    # Given
    subnets = synthesized.resources("AWS::EC2::Subnet")
    functions_group = synthesized.stack.resolve(
        synthesized.stack.network.functions_security_group.security_group_id
    )

    # When
    vpc_config = function_properties(synthesized, function)["VpcConfig"]

    # Then
    assert sorted(ref["Ref"] for ref in vpc_config["SubnetIds"]) == sorted(subnets)
    assert all(subnet["Properties"]["MapPublicIpOnLaunch"] is False for subnet in subnets.values())
    assert vpc_config["SecurityGroupIds"] == [functions_group]


@pytest.mark.parametrize("function", FUNCTIONS, ids=lambda f: f.name)
def test_cold_starts_are_restored_from_a_snapshot_of_a_published_version(
    synthesized: Synthesized, function: LambdaFunction
) -> None:
    # Given
    logical_id = function_logical_id(function)

    # When
    aliases = [
        alias["Properties"]
        for alias in synthesized.resources("AWS::Lambda::Alias").values()
        if alias["Properties"]["FunctionName"] == {"Ref": logical_id}
    ]

    # Then
    assert function_properties(synthesized, function)["SnapStart"] == {"ApplyOn": "PublishedVersions"}
    assert len(aliases) == 1
    assert aliases[0]["Name"] == "live"
    version_id = aliases[0]["FunctionVersion"]["Fn::GetAtt"][0]
    version = synthesized.template_json["Resources"][version_id]
    assert version["Type"] == "AWS::Lambda::Version"
    assert version["Properties"]["FunctionName"] == {"Ref": logical_id}


@pytest.mark.parametrize("function", FUNCTIONS, ids=lambda f: f.name)
def test_settings_reach_the_function_as_environment(
    synthesized: Synthesized, function: LambdaFunction
) -> None:
    # When
    environment = render(function_properties(synthesized, function)["Environment"]["Variables"])

    # Then
    assert environment["PLAYER_SESSIONS_DATABASE_MODE"] == "keyspaces"
    assert environment["PLAYER_SESSIONS_AWS_REGION"] == "<AWS::Region>"
    assert environment["PLAYER_SESSIONS_KEYSPACE"] == "player_sessions"
    assert environment["PLAYER_SESSIONS_RETENTION_DAYS"] == "365"
    cache_id = synthesized.stack.resolve(synthesized.stack.cache.cache.logical_id)
    assert environment["PLAYER_SESSIONS_REDIS_URL"] == (
        f"rediss://<{cache_id}.Endpoint.Address>:<{cache_id}.Endpoint.Port>/0"
    )
    assert environment["POWERTOOLS_SERVICE_NAME"] == "player-sessions"
    assert environment["POWERTOOLS_METRICS_NAMESPACE"] == "PlayerSessions"


def test_only_the_functions_that_use_a_key_are_told_where_it_is(synthesized: Synthesized) -> None:
    # Given the two keys: the cursor key (the country listing) and the player hash key (ingest, privacy)
    secrets = synthesized.resources("AWS::SecretsManager::Secret")
    cursor_id, hash_id = sorted(secrets, key=lambda logical_id: "PlayerHash" in logical_id)

    # When
    told = {
        function.name: (
            function_properties(synthesized, function)["Environment"]["Variables"].get(
                "PLAYER_SESSIONS_CURSOR_SECRET_ARN"
            ),
            function_properties(synthesized, function)["Environment"]["Variables"].get(
                "PLAYER_SESSIONS_PLAYER_HASH_SECRET_ARN"
            ),
        )
        for function in FUNCTIONS
    }

    # Then
    assert told == {
        function.name: (
            {"Ref": cursor_id} if function == COUNTRY_STARTS else None,
            {"Ref": hash_id} if function in (INGEST_EVENTS, PLAYER_DATA) else None,
        )
        for function in FUNCTIONS
    }
    for secret_id in (cursor_id, hash_id):
        secret = secrets[secret_id]["Properties"]
        assert secret["GenerateSecretString"] == {"ExcludePunctuation": True, "PasswordLength": 64}
